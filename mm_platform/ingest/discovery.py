"""A one-shot decision over a whole listing held in memory: (listing, published media, cursor) → batches.

Kept for small sources, tests and benchmarks that hand over a complete listing. The sensors and `mmp ingest`
do not use it: they page the listing and diff it chunk by chunk (:mod:`mm_platform.ingest.scan`), keep
pending work in the lake (:mod:`mm_platform.ingest.ledger`) and read S3 events (:mod:`.coalesce`), so their
cost and their cursor do not grow with the source. This cursor does (it lists every requested URI).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

import pyarrow as pa

from mm_platform.ingest.batches import DEFAULT_MAX_OBJECTS, BatchManifest, erasure_batch, ingest_batches
from mm_platform.sources import ObjectInfo, diff_listing


@dataclass(frozen=True)
class DiscoveryCursor:
    """Object versions requested but not yet seen published, and media whose erasure was requested."""

    requested: dict[str, str] = field(default_factory=dict)
    """uri → the version fingerprint (ETag / VersionId) requested for it."""
    erasing: frozenset[str] = frozenset()
    """media ids with an erasure batch in flight."""
    ticks: int = 0
    """Ticks so far; every Nth tick reconciles deletions."""

    def to_json(self) -> str:
        doc = {"requested": self.requested, "erasing": sorted(self.erasing), "ticks": self.ticks}
        return json.dumps(doc, sort_keys=True)

    @classmethod
    def from_json(cls, raw: str | None) -> DiscoveryCursor:
        if not raw:
            return cls()
        doc = json.loads(raw)
        return cls(
            requested=dict(doc.get("requested", {})),
            erasing=frozenset(doc.get("erasing", [])),
            ticks=int(doc.get("ticks", 0)),
        )


def _version(info: ObjectInfo) -> str:
    return f"{info.etag}|{info.version_id}"


def decide(
    source: str,
    listing: Iterable[ObjectInfo],
    published_media: pa.Table,
    cursor: DiscoveryCursor,
    *,
    reconcile: bool = False,
    max_objects: int = DEFAULT_MAX_OBJECTS,
    erased: frozenset[str] = frozenset(),
) -> tuple[list[BatchManifest], DiscoveryCursor]:
    """The batches to create and run on this tick, and the next cursor.

    ``erased``: media ids erased on request (GDPR); they are never ingested again, even if still at the source.
    """
    diff = diff_listing(listing, published_media, source=source)
    fresh = [
        o for o in [*diff.new, *diff.changed] if cursor.requested.get(o.uri) != _version(o) and o.media_id not in erased
    ]
    # Keep only what is still pending: an object published at the requested version is done.
    pending = {o.uri: _version(o) for o in [*diff.new, *diff.changed] if o.uri in cursor.requested}
    pending.update({o.uri: _version(o) for o in fresh})
    batches = ingest_batches(source, fresh, max_objects)
    gone = [d for d in diff.deleted if d.media_id not in cursor.erasing] if reconcile else []
    erasing = cursor.erasing & {d.media_id for d in diff.deleted}
    if gone:
        batches.append(erasure_batch(source, gone))
        erasing |= {d.media_id for d in gone}
    return batches, DiscoveryCursor(requested=pending, erasing=frozenset(erasing), ticks=cursor.ticks + 1)
