"""The JSON API (documented at ``/docs``, schema at ``/openapi.json``): the CLI's ``--json`` answers over HTTP."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, File, HTTPException, Path, Query, Request, UploadFile
from fastapi.responses import Response

from mm_platform.serve.service import MAX_K, MAX_PAGE, LakeBrowser, NotFound, check_fusion

__all__ = ["ID_PATTERN", "MAX_UPLOAD_BYTES", "api_router", "read_upload"]

ID_PATTERN = r"^[0-9a-f]{32}$"
"""Media and derived ids: 32 hex characters (``mm_platform.ids``). Anything else is refused before a lookup."""
MAX_UPLOAD_BYTES = 20 * 1024 * 1024

MediaId = Annotated[str, Path(pattern=ID_PATTERN, description="A media id (32 hex characters).")]
Snapshot = Annotated[int | None, Query(ge=0, description="Snapshot seq (default: the latest).")]
K = Annotated[int, Query(ge=1, le=MAX_K, description="Number of hits.")]
Where = Annotated[str | None, Query(max_length=2000, description="A safe filter, as `mmp search --where`.")]
Fusion = Annotated[str, Query(description="auto | scale | rrf | group (how models' lists combine).")]


class CliJSON(Response):
    """JSON encoded exactly as ``mmp … --json`` encodes it (``json.dumps(…, default=str)``), so a client gets
    byte-for-byte the values the CLI prints, not a re-encoding of them."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json.dumps(content, default=str).encode()


api_router = APIRouter(prefix="/api", tags=["api"], default_response_class=CliJSON)

def browser_of(request: Request) -> LakeBrowser:
    browser = request.app.state.browser
    assert isinstance(browser, LakeBrowser)
    return browser


@api_router.get("/search", summary="Search by text or by an item (more like this)")
def api_search(
    request: Request,
    q: Annotated[str | None, Query(max_length=2000, description="Text query.")] = None,
    like: Annotated[str | None, Query(pattern=ID_PATTERN, description="Media id: more like this.")] = None,
    k: K = 24,
    where: Where = None,
    snapshot: Snapshot = None,
    fusion: Fusion = "auto",
) -> CliJSON:
    """The hits `mmp search TEXT --json` prints (the same function); `like` queries by an item instead."""
    browser = browser_of(request)
    options: dict[str, Any] = {"k": k, "where": where, "seq": snapshot, "fusion": check_fusion(fusion)}
    if (q is None) == (like is None):
        raise HTTPException(400, "give either q (text) or like (a media id)")
    if like is not None:
        return CliJSON(browser.like(like, **options))
    return CliJSON(browser.search(str(q), **options))


async def read_upload(image: UploadFile) -> bytes:
    data = await image.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        raise HTTPException(413, f"an image query is at most {MAX_UPLOAD_BYTES} bytes")
    if not data:
        raise HTTPException(400, "the uploaded image is empty")
    return data


@api_router.post("/search/image", summary="Search by an uploaded image")
async def api_search_image(
    request: Request,
    image: Annotated[UploadFile, File(description="A JPEG, PNG, WebP … (kept in memory, never stored).")],
    k: K = 24,
    where: Where = None,
    snapshot: Snapshot = None,
) -> CliJSON:
    data = await read_upload(image)
    return CliJSON(browser_of(request).search(data, k=k, where=where, seq=snapshot))


@api_router.get("/items/{media_id}", summary="One media object: rows in every table, lineage")
def api_item(request: Request, media_id: MediaId, snapshot: Snapshot = None) -> CliJSON:
    return CliJSON(browser_of(request).item(media_id, snapshot))


@api_router.get("/lineage", summary="Lineage of a media id, URI or key (as `mmp lineage REF --json`)")
def api_lineage(
    request: Request,
    ref: Annotated[str, Query(min_length=1, max_length=4096, description="Media id, URI or source key.")],
    snapshot: Snapshot = None,
) -> CliJSON:
    return CliJSON(browser_of(request).lineage(ref, snapshot))


@api_router.get("/snapshots", summary="Every readable snapshot")
def api_snapshots(request: Request) -> CliJSON:
    return CliJSON(browser_of(request).snapshots())


@api_router.get("/diff", summary="What changed from snapshot a to b (as `mmp diff A B --json`, plus objects by key)")
def api_diff(
    request: Request,
    a: Annotated[int, Query(ge=0)],
    b: Annotated[int, Query(ge=0)],
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
) -> CliJSON:
    return CliJSON(browser_of(request).diff(a, b, limit))


@api_router.get("/quarantine", summary="Rejected objects, filterable by reason")
def api_quarantine(
    request: Request,
    reason: Annotated[str | None, Query(max_length=64)] = None,
    snapshot: Snapshot = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> CliJSON:
    return CliJSON(browser_of(request).quarantine(reason or None, snapshot, limit, offset))


@api_router.get("/media/{media_id}/thumbnail", summary="The thumbnail JPEG (from the derived table)")
def api_thumbnail(request: Request, media_id: MediaId, snapshot: Snapshot = None) -> Response:
    thumb = browser_of(request).thumbnail(media_id, snapshot)
    if thumb is None:
        raise NotFound(f"no thumbnail for {media_id}")
    return Response(thumb.data, media_type=thumb.mime_type, headers={"Cache-Control": "private, max-age=300"})


@api_router.get("/derived/{derived_id}", summary="A derived row's bytes (keyframe, thumbnail)")
def api_derived(
    request: Request,
    derived_id: Annotated[str, Path(pattern=ID_PATTERN)],
    snapshot: Snapshot = None,
) -> Response:
    thumb = browser_of(request).derived_bytes(derived_id, snapshot)
    if thumb is None:
        raise NotFound(f"no bytes for derived row {derived_id}")
    return Response(thumb.data, media_type=thumb.mime_type, headers={"Cache-Control": "private, max-age=300"})
