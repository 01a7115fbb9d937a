"""Reconciliation as a streaming diff: listing chunks against the published media rows of the same key range.

The safety net for missed events and the discovery of sources without notifications (local folders). The
listing is cut into key-ordered chunks; each chunk comes with the active media rows of its key range
``(lower, upper]``, so a chunk's diff needs only that chunk in memory, and full batches leave as soon as they
fill. Nothing here reads or writes: the caller (:mod:`mm_platform.ingest.scan`) pages the listing, reads the
media rows and saves what comes out; a tick resumes after the last key the previous one finished.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

import pyarrow as pa
import pyarrow.compute as pc

from mm_platform.ids import media_id_for
from mm_platform.ingest.batches import DEFAULT_MAX_OBJECTS, INGEST_BATCH, BatchManifest, erasure_batch, listed_batch
from mm_platform.ingest.ledger import DiscoveryLedger, PendingBatch
from mm_platform.sources import DeletedMedia

__all__ = ["ListingChunk", "ReconcileCursor", "Reconciler"]

MEDIA_COLUMNS = ["media_id", "uri", "key", "etag", "version_id"]


@dataclass(frozen=True)
class ReconcileCursor:
    """Where the paged listing stands: a few scalars, whatever the number of objects (the Dagster cursor)."""

    after: str | None = None
    """The last key the current pass has finished; ``None``: the next tick starts a pass."""
    passes: int = 0
    """Passes completed."""
    ticks: int = 0

    def to_json(self) -> str:
        return json.dumps({"after": self.after, "passes": self.passes, "ticks": self.ticks}, sort_keys=True)

    @classmethod
    def from_json(cls, raw: str | None) -> ReconcileCursor:
        if not raw:
            return cls()
        doc = json.loads(raw)
        if "after" not in doc:  # a cursor of the old whole-listing sensor: start a pass
            return cls(ticks=int(doc.get("ticks", 0)))
        return cls(after=doc["after"], passes=int(doc["passes"]), ticks=int(doc["ticks"]))


@dataclass(frozen=True)
class ListingChunk:
    """Listed objects with keys in ``(lower, upper]`` (sorted), and the active media rows of that range."""

    listed: pa.Table
    """Columns :data:`~mm_platform.sources.listing.LISTING_SCHEMA`, sorted by key."""
    media: pa.Table
    """Columns :data:`MEDIA_COLUMNS`: the source's active rows whose key is in the range."""
    lower: str | None
    upper: str | None
    """``None``: the listing ended; the range is open above."""


class Reconciler:
    """Feeds on chunks; hands out full batches at once and the partial ones at :meth:`finish`.

    Keys inside a pending batch are left alone (the next pass looks again), erased media are never
    ingested again, and every batch handed out enters the ledger's pending set with its keys.
    """

    def __init__(
        self,
        source_uri: str,
        ledger: DiscoveryLedger,
        now: float,
        *,
        max_objects: int = DEFAULT_MAX_OBJECTS,
        erased: frozenset[str] = frozenset(),
        deletions: bool = True,
        remember: bool = True,
    ) -> None:
        """``remember=False``: do not keep handed-out batches as pending (a one-shot plan that saves no
        ledger, like ``mmp ingest``), so memory stays flat over a whole pass."""
        self.source_uri = source_uri
        self.max_objects = max_objects
        self.erased = erased
        self.deletions = deletions
        self.remember = remember
        self.now = now
        self._busy = ledger.busy_keys()
        self._busy_keys = pa.array(sorted(self._busy), pa.string())  # once per scan, not per chunk
        self._marks = dict(ledger.marks)
        self._pending = dict(ledger.pending)
        self._ledger = ledger
        self._fresh: list[pa.Table] = []
        self._fresh_rows = 0
        self._gone: list[DeletedMedia] = []
        self._gone_keys: list[str] = []
        self.listed = 0
        self.counts = {"new": 0, "changed": 0, "deleted": 0, "busy": 0}

    def feed(self, chunk: ListingChunk) -> list[BatchManifest]:
        """Diff one chunk, in Arrow (no Python object per listed file); return the batches that became full."""
        listed, media = chunk.listed, chunk.media
        self.listed += listed.num_rows
        row = pc.index_in(listed.column("key"), value_set=media.column("key").combine_chunks())
        known = pc.is_valid(row)
        same = pc.and_(
            _same(pc.take(media.column("etag"), row), listed.column("etag")),
            _same(pc.take(media.column("version_id"), row), listed.column("version_id")),
        )
        fresh = pc.or_(pc.invert(known), pc.invert(pc.fill_null(same, False)))
        if self._busy:
            busy = pc.and_(fresh, pc.is_in(listed.column("key"), value_set=self._busy_keys))
            self.counts["busy"] += pc.sum(busy).as_py() or 0
            fresh = pc.and_(fresh, pc.invert(busy))
        taken, was_known = listed.filter(fresh), pc.filter(known, fresh)
        if self.erased and taken.num_rows:  # hashed only for what would be ingested, not the whole listing
            uris = taken.column("uri").to_pylist()
            kept = pa.array([media_id_for(uri) not in self.erased for uri in uris], pa.bool_())
            taken, was_known = taken.filter(kept), pc.filter(was_known, kept)
        changed = pc.sum(was_known).as_py() or 0
        self.counts["changed"] += changed
        self.counts["new"] += taken.num_rows - changed
        if taken.num_rows:
            self._fresh.append(taken)
            self._fresh_rows += taken.num_rows
        if self.deletions and media.num_rows:
            self._feed_deletions(media, pc.is_in(media.column("key"), value_set=listed.column("key").combine_chunks()))
        return self._take(final=False)

    def _feed_deletions(self, media: pa.Table, seen: pa.ChunkedArray | pa.Array) -> None:
        gone = media.filter(pc.invert(seen))
        columns = (gone.column(name).to_pylist() for name in ("media_id", "uri", "key"))
        for media_id, uri, key in zip(*columns, strict=True):
            if key in self._busy:
                self.counts["busy"] += 1
                continue
            self.counts["deleted"] += 1
            self._gone.append(DeletedMedia(media_id=media_id, uri=uri))
            self._gone_keys.append(key)

    def waiting_batches(self) -> int:
        """Partial batches :meth:`finish` would hand out."""
        return int(bool(self._fresh)) + int(bool(self._gone))

    def finish(self) -> list[BatchManifest]:
        """The remaining (partial) batches."""
        return self._take(final=True)

    @property
    def ledger(self) -> DiscoveryLedger:
        """The ledger with every batch handed out so far pending."""
        return replace(self._ledger, marks=dict(self._marks), pending=dict(self._pending))

    def _take(self, *, final: bool) -> list[BatchManifest]:
        out: list[BatchManifest] = []
        if self._fresh_rows >= self.max_objects or (final and self._fresh_rows):
            fresh = pa.concat_tables(self._fresh)
            whole = fresh.num_rows if final else fresh.num_rows - fresh.num_rows % self.max_objects
            for start in range(0, whole, self.max_objects):
                out.append(listed_batch(self.source_uri, fresh.slice(start, min(self.max_objects, whole - start))))
            rest = fresh.slice(whole)
            self._fresh, self._fresh_rows = ([rest] if rest.num_rows else []), rest.num_rows
        while len(self._gone) >= self.max_objects or (final and self._gone):
            gone, self._gone = self._gone[: self.max_objects], self._gone[self.max_objects :]
            keys, self._gone_keys = self._gone_keys[: len(gone)], self._gone_keys[len(gone) :]
            batch = erasure_batch(self.source_uri, gone)
            self._record(batch, tuple(keys))
            out.append(batch)
        for batch in out:
            if batch.kind == INGEST_BATCH and self.remember:
                self._record(batch, batch.object_keys())
        return out

    def _record(self, batch: BatchManifest, keys: tuple[str, ...]) -> None:
        # No new marks: a listing has no sequencer, and a key's last event mark (if any) must stay, so a
        # late duplicate of that event stays stale. Pending is what keeps the key out of other batches.
        if self.remember:
            self._pending[batch.batch_id] = PendingBatch(batch.batch_id, batch.kind, keys, self.now)


def _same(published: pa.ChunkedArray | pa.Array, listed: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """Element-wise equality where two nulls are equal (an unversioned object has no VersionId on either side);
    null where only the published side is null (never equal; the caller reads null as "differs")."""
    return pc.if_else(pc.is_null(listed), pc.is_null(published), pc.equal(published, listed))
