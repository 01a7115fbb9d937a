"""Discovery's memory, kept in the lake (``_discovery/<source id>/ledger.json``), never in the Dagster cursor.

It holds, per source: the batches requested and not yet finished (their manifests are in ``_batches/``),
the last event acted on per recently changed key (so duplicate and late S3 events change nothing), and the
events that wait because their key is in an unfinished batch (a key is in at most one unfinished batch, so
an erasure can never overtake the ingest of the same key, nor the reverse). Its size follows the recent
change rate and the bounded number of pending batches, not the number of objects in the source.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Any

from mm_platform.ingest.batches import BATCHES_DIR
from mm_platform.ingest.events import ObjectEvent
from mm_platform.lake.storage import LakeLocation

__all__ = [
    "DISCOVERY_DIR",
    "DiscoveryLedger",
    "KeyMark",
    "PendingBatch",
    "load_ledger",
    "published_marker",
    "rejected_marker",
    "save_ledger",
    "source_id",
]

DISCOVERY_DIR = "_discovery"
DEFAULT_HORIZON_S = 3600.0
"""How long the last event per key is remembered. S3 duplicates and reorderings come within minutes;
anything older is caught by reconciliation, which compares the source itself with the lake."""
MAX_MARKS = 50_000
"""At most this many marks are kept (the newest): a burst of a million uploads must not make the ledger,
rewritten each tick, a million entries. A duplicate arriving after its mark was dropped re-ingests the
same version, which reuses every result by content hash."""


def source_id(source_uri: str) -> str:
    """A short stable folder name for a source URI."""
    return hashlib.sha256(source_uri.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class KeyMark:
    """The last change of one key that discovery acted on."""

    order: str
    """The event's sequencer order (:func:`~mm_platform.ingest.events.sequencer_key`); ``""`` for a change
    found by listing (no event): any event after it is newer."""
    kind: str
    """``created`` or ``removed``."""
    batch_id: str
    at: float
    """Unix time it was recorded (for the horizon)."""


@dataclass(frozen=True)
class PendingBatch:
    """A batch whose manifest is saved and whose run was requested, not yet published or failed."""

    batch_id: str
    kind: str
    keys: tuple[str, ...]
    created_at: float


@dataclass(frozen=True)
class DiscoveryLedger:
    """What one source's discovery remembers between ticks."""

    marks: dict[str, KeyMark] = field(default_factory=dict)
    pending: dict[str, PendingBatch] = field(default_factory=dict)
    deferred: dict[str, ObjectEvent] = field(default_factory=dict)
    """key → the latest event waiting for its key's pending batch to finish."""

    def busy_keys(self) -> set[str]:
        """Keys inside a pending batch."""
        return {key for batch in self.pending.values() for key in batch.keys}

    def finish(self, batch_ids: set[str]) -> DiscoveryLedger:
        """The ledger without the given batches in its pending set (published, failed or given up)."""
        if not batch_ids & self.pending.keys():
            return self
        return replace(self, pending={b: p for b, p in self.pending.items() if b not in batch_ids})

    def pruned(self, now: float, horizon_s: float = DEFAULT_HORIZON_S, max_marks: int = MAX_MARKS) -> DiscoveryLedger:
        """Forget marks older than the horizon, and the oldest beyond ``max_marks``."""
        marks = {k: m for k, m in self.marks.items() if now - m.at <= horizon_s}
        if len(marks) > max_marks:
            newest = sorted(marks.items(), key=lambda item: item[1].at)[-max_marks:]
            marks = dict(newest)
        return self if marks == self.marks else replace(self, marks=marks)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "marks": {k: [m.order, m.kind, m.batch_id, m.at] for k, m in self.marks.items()},
            "pending": {
                b: {"kind": p.kind, "keys": list(p.keys), "created_at": p.created_at} for b, p in self.pending.items()
            },
            "deferred": {k: _event_doc(e) for k, e in self.deferred.items()},
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any] | None) -> DiscoveryLedger:
        if not doc:
            return cls()
        return cls(
            marks={k: KeyMark(str(v[0]), str(v[1]), str(v[2]), float(v[3])) for k, v in doc["marks"].items()},
            pending={
                b: PendingBatch(b, p["kind"], tuple(p["keys"]), float(p["created_at"]))
                for b, p in doc["pending"].items()
            },
            deferred={k: ObjectEvent(**_event_args(e)) for k, e in doc["deferred"].items()},
        )


def _event_doc(event: ObjectEvent) -> dict[str, Any]:
    return {
        "bucket": event.bucket,
        "key": event.key,
        "kind": event.kind,
        "sequencer": event.sequencer,
        "size_bytes": event.size_bytes,
        "etag": event.etag,
        "version_id": event.version_id,
        "event_time": event.event_time.isoformat() if event.event_time else None,
    }


def _event_args(doc: dict[str, Any]) -> dict[str, Any]:
    from datetime import datetime

    return {**doc, "event_time": datetime.fromisoformat(doc["event_time"]) if doc.get("event_time") else None}


def _path(source_uri: str) -> str:
    return f"{DISCOVERY_DIR}/{source_id(source_uri)}/ledger.json"


def load_ledger(location: LakeLocation, source_uri: str) -> DiscoveryLedger:
    return DiscoveryLedger.from_json(location.read_json(_path(source_uri)))


def save_ledger(location: LakeLocation, source_uri: str, ledger: DiscoveryLedger) -> None:
    """Written whole in one atomic write (a local rename or one S3 PUT)."""
    location.write_json(_path(source_uri), ledger.to_json())


def published_marker(batch_id: str) -> str:
    """The file ``publish_batch`` leaves once a batch's publish is durable."""
    return f"{BATCHES_DIR}/{batch_id}.published.json"


def rejected_marker(batch_id: str) -> str:
    """The file ``stage_batch`` leaves when a batch's audit rejected it (nothing of it was published)."""
    return f"{BATCHES_DIR}/{batch_id}.rejected.json"


def finished_batches(location: LakeLocation, ledger: DiscoveryLedger, now: float, give_up_s: float) -> set[str]:
    """Pending batches that are over: published, rejected by their audit, or pending longer than ``give_up_s``
    (a run that never ran; reconciliation finds its objects again). One small read per pending batch."""
    done: set[str] = set()
    for batch_id, pending in ledger.pending.items():
        if location.exists(published_marker(batch_id)) or now - pending.created_at > give_up_s:
            done.add(batch_id)
            continue
        if location.exists(rejected_marker(batch_id)):
            done.add(batch_id)
    return done
