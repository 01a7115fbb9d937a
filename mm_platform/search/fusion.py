"""One result list from several routes' lists, without comparing scores that are not comparable.

A cosine of one model says nothing about a cosine of another: a CLIP text→image cosine of −0.4 may be a
strong match while a MiniLM text→text cosine of 0.06 is noise. So routes are combined by one of:

* ``scale`` — every route's hits carry a cosine in the *same* model's space (the label bridge scores an image
  by the text model's cosine between the query and its labels, the text route by the text model's cosine to
  the document): interleave by that cosine. Chosen automatically when all routes share that space.
* ``rrf`` — reciprocal rank fusion (Cormack et al. 2009): a hit's fused score is ``Σ 1 / (60 + rank)`` over
  the routes that found it; only ranks are used, never raw scores. Chosen automatically otherwise.
* ``group`` — no fusion: each route's own top k, one group after the other (route, then model), each in its
  own order and scale.

``single`` is reported when one route answered (nothing to combine).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from mm_platform.errors import ConfigError

__all__ = ["FUSIONS", "RRF_K", "Fusion", "RouteHits", "fuse"]

Fusion = Literal["auto", "scale", "rrf", "group"]
FUSIONS: tuple[str, ...] = ("auto", "scale", "rrf", "group")
RRF_K = 60
"""The constant of reciprocal rank fusion (the value of the original paper; damps the top ranks' weight)."""

Ranked = tuple[str, float, str, str, float | None]
"""(media_id, score, route, model_id, score on the common scale or the fused score)."""


@dataclass(frozen=True)
class RouteHits:
    """One route's hits, best first."""

    route: str
    model_id: str
    scale_model: str
    """The model in whose space ``Ranked[4]`` is a cosine (routes sharing it can be interleaved by it)."""
    hits: list[Ranked]


def fuse(per_route: Sequence[RouteHits], k: int, fusion: str = "auto") -> tuple[list[Ranked], str]:
    """The combined hits (``Ranked[4]``: the score that ordered them, None for one route) and the method used."""
    if fusion not in FUSIONS:
        raise ConfigError(f"unknown fusion {fusion!r}", hint="use one of " + ", ".join(FUSIONS))
    answered = [r for r in per_route if r.hits]
    if len(per_route) <= 1 or len(answered) <= 1:
        hits = answered[0].hits[:k] if answered else []
        return [(*h[:4], None) for h in hits], "single"
    same_space = len({r.scale_model for r in per_route}) == 1
    if fusion == "auto":
        fusion = "scale" if same_space else "rrf"
    if fusion == "scale":
        if not same_space:
            spaces = sorted({f"{r.route}: {r.scale_model}" for r in per_route})
            raise ConfigError(
                "scores of these routes live in different models' spaces and cannot be interleaved: "
                + "; ".join(spaces),
                hint="use fusion 'rrf' (ranks) or 'group' (one list per model)",
            )
        merged = sorted((h for r in per_route for h in r.hits), key=lambda h: h[4] or 0.0, reverse=True)
        return merged[:k], "scale"
    if fusion == "group":
        ordered = sorted(per_route, key=lambda r: (r.route, r.model_id))
        return [(*h[:4], None) for r in ordered for h in r.hits[:k]], "group"
    return _rrf(per_route, k), "rrf"


def _rrf(per_route: Sequence[RouteHits], k: int) -> list[Ranked]:
    """Reciprocal rank fusion; a media item found by several routes keeps its best route's row."""
    fused: dict[str, float] = {}
    best: dict[str, tuple[int, Ranked]] = {}
    for route in per_route:
        for rank, hit in enumerate(route.hits, start=1):
            fused[hit[0]] = fused.get(hit[0], 0.0) + 1.0 / (RRF_K + rank)
            if hit[0] not in best or rank < best[hit[0]][0]:
                best[hit[0]] = (rank, hit)
    # Ties (equal ranks in different routes) break by route name, then id: stable across runs.
    order = sorted(fused, key=lambda m: (-fused[m], best[m][1][2], m))
    return [(*best[m][1][:4], fused[m]) for m in order[:k]]
