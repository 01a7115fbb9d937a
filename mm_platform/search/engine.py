"""``search``: top-k media for a text or image query in one snapshot, with an optional metadata filter."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mm_platform.embed import MiniLMTextEmbedder, embedder_for
from mm_platform.errors import ConfigError, MMPlatformError
from mm_platform.lake import Lake, Snapshot
from mm_platform.search.active import ActiveModel, ActiveModels, active_models
from mm_platform.search.bridge import bridge_scores
from mm_platform.search.filter_frame import MatchedMedia, matched_media
from mm_platform.search.filters import ParsedFilter, compile_filter
from mm_platform.search.fusion import RouteHits, fuse
from mm_platform.search.hits import DEFAULT_METADATA, SearchHit, filter_schema, hydrate
from mm_platform.search.index_store import IndexConfig, open_index
from mm_platform.search.memo import BoundedMemo
from mm_platform.search.routes import Query, Route, embed_query, plan_routes
from mm_platform.search.row_index import RowIndex
from mm_platform.tables import METADATA

__all__ = ["SearchError", "search"]

_MATCHING: BoundedMemo[tuple[str, int, str], MatchedMedia] = BoundedMemo(8)
Ranked = tuple[str, float, str, str, float | None]
"""(media_id, score, route, model_id, score on the scale common to routes)."""


class SearchError(MMPlatformError):
    """Nothing can be searched (no vectors for the query's kind in this snapshot)."""


def search(
    source: Lake | Snapshot,
    query: Query,
    *,
    k: int = 10,
    where: str | None = None,
    seq: int | None = None,
    image_model: str | None = None,
    text_model: str | None = None,
    columns: Sequence[str] = (),
    thumbnails: bool = True,
    config: IndexConfig | None = None,
    fusion: str = "auto",
    rows: RowIndex | None = None,
) -> list[SearchHit]:
    """The ``k`` media most similar to ``query`` (text, or an image path / bytes / PIL image).

    Reads one snapshot: ``source`` itself, or the lake's snapshot ``seq`` (default: the latest). ``where``
    filters on media and metadata columns (``mm_platform.search.filters``). ``image_model`` / ``text_model``
    (embedder specs, e.g. ``clip:<dir>``) pick other vectors than the active ones (``active_models``).
    ``fusion`` says how the lists of several routes (text → images and documents) become one
    (``mm_platform.search.fusion``); every hit names the method used. ``columns`` must be metadata columns.
    ``rows``: the snapshot's rows kept in memory by a long-lived caller (``RowIndex``), instead of a filtered
    read per query.
    """
    if k < 1:
        raise ConfigError(f"k must be at least 1, got {k}")
    snapshot = _snapshot(source, seq)
    if rows is not None and rows.snapshot.seq != snapshot.seq:
        raise ConfigError(f"rows of snapshot {rows.snapshot.seq} given for snapshot {snapshot.seq}")
    parsed = compile_filter(where, filter_schema(snapshot)) if where is not None else None
    _check_columns(snapshot, columns)
    routes = plan_routes(query, _models(snapshot, image_model, text_model))
    if not routes:
        kind = "text" if isinstance(query, str) else "image"
        raise SearchError(
            f"snapshot {snapshot.seq} has no media vectors a {kind} query can search",
            hint="ingest media first (mmp ingest), or pick another --snapshot",
        )
    allowed = _matching(snapshot, parsed) if parsed is not None else None
    per_route = [
        RouteHits(
            route.name,
            route.model.model_id,
            _scale_model(route),
            _run_route(snapshot, route, query, k, allowed, config),
        )
        for route in routes
    ]
    merged, method = fuse(per_route, k, fusion)
    wanted = [*DEFAULT_METADATA, *(parsed.columns if parsed else ()), *columns]
    return hydrate(snapshot, merged, columns=wanted, thumbnails=thumbnails, fusion=method, rows=rows)


def _check_columns(snapshot: Snapshot, columns: Sequence[str]) -> None:
    """Asked-for columns must exist: a typo (or a path) would otherwise be dropped without a word."""
    known = set(snapshot.schema(METADATA.name).names)
    unknown = [c for c in columns if c not in known]
    if unknown:
        raise ConfigError(
            f"unknown metadata column(s) {', '.join(repr(c) for c in unknown)}",
            hint="known: " + ", ".join(sorted(known - {"media_id"})),
        )


def _scale_model(route: Route) -> str:
    """The model in whose space the route's common-scale cosine lives (see ``_run_route``)."""
    return MiniLMTextEmbedder.MODEL_ID if route.name == "label-bridge" else route.model.model_id


def _matching(snapshot: Snapshot, parsed: ParsedFilter) -> MatchedMedia:
    """The filter's media, remembered per (lake, snapshot, filter): a snapshot never changes."""
    key = (snapshot.location.root, snapshot.seq, parsed.text)
    remembered = _MATCHING.get(key)
    if remembered is not None:
        return remembered
    matched = matched_media(snapshot, parsed)
    _MATCHING.put(key, matched)
    return matched


def _snapshot(source: Lake | Snapshot, seq: int | None) -> Snapshot:
    if isinstance(source, Snapshot):
        if seq is not None and seq != source.seq:
            raise ConfigError(f"given snapshot {source.seq} but seq={seq}", hint="pass the Lake to choose by seq")
        return source
    return source.snapshot(seq=seq)


def _models(snapshot: Snapshot, image_model: str | None, text_model: str | None) -> ActiveModels:
    active = active_models(snapshot)
    image = _override(active.image, image_model, "image")
    text = _override(active.text, text_model, "text")
    return ActiveModels(image, text)


def _override(active: ActiveModel | None, spec: str | None, modality: str) -> ActiveModel | None:
    if spec is None:
        return active
    embedder = embedder_for(spec, "image" if modality == "image" else "text")
    return ActiveModel(embedder.model_id, embedder.revision, vectors=0, last_seq=0)


def _run_route(
    snapshot: Snapshot, route: Route, query: Query, k: int, allowed: MatchedMedia | None, config: IndexConfig | None
) -> list[Ranked]:
    """The route's top ``k``, best first, each with its key on the common scale (see ``_merge``)."""
    if not route.uses_vectors:
        assert isinstance(query, str)
        found = bridge_scores(snapshot, route.model.model_id, query)
        ids, scores, cosines = found.media_ids, found.scores, found.cosines
        if allowed is not None:
            keep = pc.is_in(ids, value_set=allowed.ids).to_numpy(zero_copy_only=False)
            ids, scores, cosines = ids.filter(pa.array(keep)), scores[keep], cosines[keep]
        order = np.argsort(-scores, kind="stable")[:k]
        common = np.minimum.accumulate(cosines[order]) if len(order) else cosines[order]
        return [
            (str(ids[int(i)].as_py()), float(scores[i]), route.name, route.model.model_id, float(c))
            for i, c in zip(order, common, strict=True)
        ]
    index = open_index(snapshot, route.model.model_id, config)
    hits = index.search(embed_query(route, query), k, index.allowed(allowed))
    return [(media_id, score, route.name, route.model.model_id, score) for media_id, score in hits]
