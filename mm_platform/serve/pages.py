"""Server-rendered pages (Jinja2, autoescaped; no JavaScript): search, item, snapshots, diff, quarantine."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Path, Query, Request, UploadFile
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape

from mm_platform.errors import MMPlatformError
from mm_platform.search.fusion import FUSIONS
from mm_platform.serve.api import ID_PATTERN, browser_of, read_upload
from mm_platform.serve.service import MAX_K, MAX_PAGE, check_fusion

__all__ = ["page_router", "render_error"]

page_router = APIRouter(include_in_schema=False)
_ENV = Environment(loader=PackageLoader("mm_platform.serve", "templates"), autoescape=select_autoescape(["html"]))


def _short(value: Any, n: int = 12) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= n else text[:n] + "…"


_ENV.filters["short"] = _short


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    snapshots = browser_of(request).snapshots()
    html = _ENV.get_template(template).render(request=request, all_snapshots=snapshots, **context)
    return HTMLResponse(html, status_code=status_code)


def render_error(request: Request, message: str, hint: str | None, status_code: int) -> HTMLResponse:
    return render(request, "error.html", status_code=status_code, message=message, hint=hint)


def _optional_int(value: str | None) -> int | None:
    """Form fields arrive as text; an empty one means "not given"."""
    if value is None or value.strip() == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise MMPlatformError(f"{value!r} is not a number", hint="pick a snapshot from the list") from None


def _groups(hits: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    """Hits in display groups: one per route and model when grouped, else a single list."""
    if not hits or hits[0]["fusion"] != "group":
        return [("", hits)]
    out: dict[str, list[dict[str, Any]]] = {}
    for hit in hits:
        out.setdefault(f"{hit['route']} · {hit['model_id']}", []).append(hit)
    return list(out.items())


def _search_page(request: Request, hits: list[dict[str, Any]] | None, started: float, **form: Any) -> HTMLResponse:
    browser = browser_of(request)
    seq = form.get("snapshot")
    searched = browser.snapshot(seq).seq if hits is not None else None
    return render(
        request,
        "search.html",
        hits=hits,
        groups=_groups(hits or []),
        searched_seq=searched,
        fusions=FUSIONS,
        models=sorted({f"{h['route']} · {h['model_id']}" for h in hits or []}),
        elapsed_ms=(time.perf_counter() - started) * 1e3,
        max_k=MAX_K,
        **form,
    )


@page_router.get("/search", response_class=HTMLResponse)
def search_page(
    request: Request,
    q: Annotated[str | None, Query(max_length=2000)] = None,
    like: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    where: Annotated[str | None, Query(max_length=2000)] = None,
    snapshot: Annotated[str | None, Query(max_length=12)] = None,
    k: Annotated[int, Query(ge=1, le=MAX_K)] = 24,
    fusion: Annotated[str, Query(max_length=8)] = "auto",
) -> HTMLResponse:
    started = time.perf_counter()
    seq = _optional_int(snapshot)
    form = {"q": q or "", "like": like, "where": where or "", "snapshot": seq, "k": k, "fusion": check_fusion(fusion)}
    browser = browser_of(request)
    hits = None
    if like:
        hits = browser.like(like, k=k, where=where or None, seq=seq, fusion=fusion)
    elif q:
        hits = browser.search(q, k=k, where=where or None, seq=seq, fusion=fusion)
    return _search_page(request, hits, started, **form)


@page_router.post("/search/image", response_class=HTMLResponse)
async def search_image_page(
    request: Request,
    image: Annotated[UploadFile, File()],
    where: Annotated[str, Form(max_length=2000)] = "",
    snapshot: Annotated[str, Form(max_length=12)] = "",
    k: Annotated[int, Form(ge=1, le=MAX_K)] = 24,
) -> HTMLResponse:
    started = time.perf_counter()
    data = await read_upload(image)
    seq = _optional_int(snapshot)
    hits = browser_of(request).search(data, k=k, where=where or None, seq=seq)
    form = {"q": "", "like": None, "where": where, "snapshot": seq, "k": k, "fusion": "auto",
            "uploaded": image.filename or "uploaded image"}
    return _search_page(request, hits, started, **form)


@page_router.get("/items/{media_id}", response_class=HTMLResponse)
def item_page(
    request: Request,
    media_id: Annotated[str, Path(pattern=ID_PATTERN)],
    snapshot: Annotated[int | None, Query(ge=0)] = None,
) -> HTMLResponse:
    item = browser_of(request).item(media_id, snapshot)
    return render(request, "item.html", item=item, lineage=item["lineage"])


@page_router.get("/snapshots", response_class=HTMLResponse)
def snapshots_page(request: Request) -> HTMLResponse:
    return render(request, "snapshots.html")


@page_router.get("/diff", response_class=HTMLResponse)
def diff_page(
    request: Request,
    a: Annotated[int, Query(ge=0)],
    b: Annotated[int, Query(ge=0)],
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
) -> HTMLResponse:
    diff = browser_of(request).diff(a, b, limit)
    return render(request, "diff.html", diff=diff, a=a, b=b)


@page_router.get("/quarantine", response_class=HTMLResponse)
def quarantine_page(
    request: Request,
    reason: Annotated[str | None, Query(max_length=64)] = None,
    snapshot: Annotated[int | None, Query(ge=0)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> HTMLResponse:
    listing = browser_of(request).quarantine(reason or None, snapshot, limit, offset)
    return render(request, "quarantine.html", listing=listing)



@page_router.get("/docs", response_class=HTMLResponse)
def api_docs_page(request: Request) -> HTMLResponse:
    """The API, read from the app's own OpenAPI schema (``/openapi.json``), rendered without scripts."""
    schema = request.app.openapi()
    endpoints = [
        {
            "method": method.upper(),
            "path": path,
            "summary": op.get("summary", ""),
            "description": op.get("description", ""),
            "params": [
                {"name": p["name"], "in": p["in"], "required": p.get("required", False),
                 "description": p.get("description", "")}
                for p in op.get("parameters", [])
            ],
        }
        for path, ops in schema["paths"].items()
        for method, op in ops.items()
    ]
    return render(request, "docs.html", endpoints=endpoints, title=schema["info"]["title"],
                  description=schema["info"].get("description", ""))
