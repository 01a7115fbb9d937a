"""The events of the ``_publish_log`` as values: one event (``LogEntry``), the log at one version
(``LogState``), and its head (``LogHead``, what a reader of the latest snapshot needs).

Field names and event names are the log's on-disk format (``mmp log``, lineage and the audit trail read them).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from mm_platform.lake.schemas import PUBLISH_LOG

INTENT, PUBLISHED, ABORTED, REJECTED, VACUUMED = "intent", "published", "aborted", "rejected", "vacuumed"

# ``audit`` (JSON: actor, message, command, branch, merge) came later: older logs gain it on their next append.
LOG_SCHEMA = pa.schema(
    [*PUBLISH_LOG.schema, pa.field("log_version", pa.int64(), nullable=False), pa.field("audit", pa.string())]
)


@dataclass(frozen=True)
class LogEntry:
    """One event of the publish protocol."""

    event: str
    kind: str
    publish_seq: int | None = None
    partition: str | None = None
    stage_id: str | None = None
    table_versions: Mapping[str, int] = field(default_factory=dict)
    """intent: the versions before; published: the versions every reader pins."""
    row_counts: Mapping[str, int] = field(default_factory=dict)
    checks: list[dict[str, Any]] | None = None
    message: str | None = None
    run_id: str | None = None
    code_version: str | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    log_version: int = -1
    """The Delta version of ``_publish_log`` that holds this event (its position in the total order)."""
    audit: Mapping[str, Any] = field(default_factory=dict)
    """Who and why (``audit_trail.AuditInfo``); for merges also source branch, base snapshot, conflicts."""

    def to_row(self, log_version: int) -> dict[str, Any]:
        return {
            "publish_seq": self.publish_seq,
            "event": self.event,
            "kind": self.kind,
            "partition": self.partition,
            "stage_id": self.stage_id,
            "table_versions": list(self.table_versions.items()),
            "row_counts": list(self.row_counts.items()),
            "checks": None if self.checks is None else json.dumps(self.checks, default=str),
            "message": self.message,
            "run_id": self.run_id,
            "code_version": self.code_version,
            "created_at": self.created_at,
            "log_version": log_version,
            "audit": json.dumps(dict(self.audit), default=str) if self.audit else None,
        }

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> LogEntry:
        return cls(
            event=row["event"],
            kind=row["kind"],
            publish_seq=row["publish_seq"],
            partition=row["partition"],
            stage_id=row["stage_id"],
            table_versions=dict(row["table_versions"] or []),
            row_counts=dict(row["row_counts"] or []),
            checks=None if row["checks"] is None else json.loads(row["checks"]),
            message=row["message"],
            run_id=row["run_id"],
            code_version=row["code_version"],
            created_at=row["created_at"],
            log_version=row["log_version"],
            audit=json.loads(row["audit"]) if row.get("audit") else {},
        )


@dataclass(frozen=True)
class LogState:
    """The log as of one Delta version, folded into the protocol's state."""

    version: int
    entries: tuple[LogEntry, ...]

    def published(self) -> list[LogEntry]:
        return [e for e in self.entries if e.event == PUBLISHED]

    def latest_published(self) -> LogEntry | None:
        published = self.published()
        return published[-1] if published else None

    def open_intent(self) -> LogEntry | None:
        closed = {e.publish_seq for e in self.entries if e.event in (PUBLISHED, ABORTED)}
        for entry in reversed(self.entries):
            if entry.event == INTENT:
                return None if entry.publish_seq in closed else entry
        return None

    def next_seq(self) -> int:
        seqs = [e.publish_seq for e in self.entries if e.event == INTENT and e.publish_seq is not None]
        return max(seqs, default=0) + 1

    def find(self, event: str, *, stage_id: str | None = None, seq: int | None = None) -> LogEntry | None:
        for entry in reversed(self.entries):
            if entry.event != event:
                continue
            if stage_id is not None and entry.stage_id != stage_id:
                continue
            if seq is not None and entry.publish_seq != seq:
                continue
            return entry
        return None

    def vacuum_horizon(self) -> int:
        """Snapshots below this sequence number had their files vacuumed away."""
        horizons = [int(e.row_counts.get("expired_below_seq", 0)) for e in self.entries if e.event == VACUUMED]
        return max(horizons, default=0)

    def __iter__(self) -> Iterator[LogEntry]:
        return iter(self.entries)


@dataclass(frozen=True)
class LogHead:
    """What a reader of the latest snapshot needs, read without the log's history."""

    version: int
    latest: LogEntry | None
    """The latest ``published`` event."""
    vacuum_horizon: int

    @classmethod
    def of(cls, state: LogState) -> LogHead:
        return cls(version=state.version, latest=state.latest_published(), vacuum_horizon=state.vacuum_horizon())

    def to_json(self) -> str:
        latest = self.latest
        return json.dumps(
            {
                "vacuum_horizon": self.vacuum_horizon,
                "latest": None
                if latest is None
                else {
                    "publish_seq": latest.publish_seq,
                    "kind": latest.kind,
                    "partition": latest.partition,
                    "stage_id": latest.stage_id,
                    "table_versions": dict(latest.table_versions),
                    "created_at": latest.created_at.isoformat(),
                    "log_version": latest.log_version,
                },
            }
        )

    @classmethod
    def from_json(cls, version: int, text: str) -> LogHead:
        doc = json.loads(text)
        latest = doc["latest"]
        entry = None
        if latest is not None:
            entry = LogEntry(
                event=PUBLISHED,
                **{**latest, "created_at": datetime.fromisoformat(latest["created_at"])},
            )
        return cls(version=version, latest=entry, vacuum_horizon=int(doc["vacuum_horizon"]))
