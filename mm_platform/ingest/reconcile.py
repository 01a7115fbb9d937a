"""Reconciliation as a streaming diff: listing chunks against the published media rows of the same key range.

The safety net for missed events and the discovery of sources without notifications (local folders). The
listing is cut into key-ordered chunks; each chunk comes with the active media rows of its key range
``(lower, upper]``, so a chunk's diff needs only that chunk in memory, and full batches leave as soon as they
fill. Nothing here reads or writes: the caller (:mod:`mm_platform.ingest.scan`) pages the listing, reads the
media rows and saves what comes out; a tick resumes after the last key the previous one finished.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace

import pyarrow as pa

from mm_platform.ingest.batches import DEFAULT_MAX_OBJECTS, INGEST_BATCH, BatchManifest, erasure_batch, ingest_batches
from mm_platform.ingest.ledger import DiscoveryLedger, PendingBatch
from mm_platform.sources import DeletedMedia, ObjectInfo

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

    objects: Sequence[ObjectInfo]
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
        self._marks = dict(ledger.marks)
        self._pending = dict(ledger.pending)
        self._ledger = ledger
        self._fresh: list[ObjectInfo] = []
        self._gone: list[DeletedMedia] = []
        self._gone_keys: list[str] = []
        self.listed = 0
        self.counts = {"new": 0, "changed": 0, "deleted": 0, "busy": 0}

    def feed(self, chunk: ListingChunk) -> list[BatchManifest]:
        """Diff one chunk; return the batches that became full."""
        media = chunk.media
        row_of = {key: row for row, key in enumerate(media.column("key").to_pylist())}
        ids: list[str] = media.column("media_id").to_pylist()
        etags = media.column("etag").to_pylist()
        versions = media.column("version_id").to_pylist()
        seen = bytearray(len(row_of))
        for obj in chunk.objects:
            self.listed += 1
            row = row_of.get(obj.key)
            if row is not None:
                seen[row] = 1
                if obj.etag == etags[row] and obj.version_id == versions[row]:
                    continue
            if self._busy and obj.key in self._busy:
                self.counts["busy"] += 1
                continue
            if self.erased and obj.media_id in self.erased:
                continue
            self.counts["new" if row is None else "changed"] += 1
            self._fresh.append(obj)
        if self.deletions:
            keys: list[str] = media.column("key").to_pylist()
            uris: list[str] = media.column("uri").to_pylist()
            for row, key in enumerate(keys):
                if seen[row]:
                    continue
                if key in self._busy:
                    self.counts["busy"] += 1
                    continue
                self.counts["deleted"] += 1
                self._gone.append(DeletedMedia(media_id=ids[row], uri=uris[row]))
                self._gone_keys.append(key)
        return self._take(final=False)

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
        while len(self._fresh) >= self.max_objects or (final and self._fresh):
            chunk, self._fresh = self._fresh[: self.max_objects], self._fresh[self.max_objects :]
            out += ingest_batches(self.source_uri, chunk, self.max_objects)
        while len(self._gone) >= self.max_objects or (final and self._gone):
            gone, self._gone = self._gone[: self.max_objects], self._gone[self.max_objects :]
            keys, self._gone_keys = self._gone_keys[: len(gone)], self._gone_keys[len(gone) :]
            batch = erasure_batch(self.source_uri, gone)
            self._record(batch, tuple(keys))
            out.append(batch)
        for batch in out:
            if batch.kind == INGEST_BATCH:
                self._record(batch, tuple(o.key for o in batch.objects))
        return out

    def _record(self, batch: BatchManifest, keys: tuple[str, ...]) -> None:
        # No new marks: a listing has no sequencer, and a key's last event mark (if any) must stay, so a
        # late duplicate of that event stays stale. Pending is what keeps the key out of other batches.
        if self.remember:
            self._pending[batch.batch_id] = PendingBatch(batch.batch_id, batch.kind, keys, self.now)
