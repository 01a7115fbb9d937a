"""S3 event notifications as they arrive from SQS: parsed into plain object events, nothing else.

A message body is an S3 notification (``{"Records": [...]}``), the same wrapped by SNS
(``{"Type": "Notification", "Message": "<json>"}``), or S3's ``s3:TestEvent`` sent when notifications are
configured. Keys arrive URL-encoded (``a+b%2Fc.jpg`` is ``a b/c.jpg``). Events for one key can arrive twice
and out of order; their ``sequencer`` orders them (AWS: right-pad the shorter with zeros, then compare).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import unquote_plus

__all__ = ["CREATED", "REMOVED", "ObjectEvent", "UnreadableMessage", "later", "parse_message", "sequencer_key"]

CREATED: Literal["created"] = "created"
REMOVED: Literal["removed"] = "removed"


class UnreadableMessage(ValueError):
    """A message body that is not an S3 notification (neither plain nor SNS-wrapped)."""


@dataclass(frozen=True)
class ObjectEvent:
    """One S3 object change, decoded."""

    bucket: str
    key: str
    """The object key, URL-decoded."""
    kind: Literal["created", "removed"]
    """``created`` (any ObjectCreated:*) or ``removed`` (ObjectRemoved:Delete / DeleteMarkerCreated)."""
    sequencer: str
    """S3's per-key order of events (hex); compare with :func:`sequencer_key`."""
    size_bytes: int | None = None
    etag: str | None = None
    version_id: str | None = None
    event_time: datetime | None = None

    @property
    def order(self) -> tuple[str, int]:
        """Sort key among events of the same object: the sequencer, then created-before-removed on a tie.

        Without a sequencer (some S3-compatible stores, moto) the event time in microseconds stands in."""
        if self.sequencer:
            mark = self.sequencer
        elif self.event_time is not None:
            mark = f"{int(self.event_time.timestamp() * 1_000_000):016X}"
        else:
            mark = ""
        return sequencer_key(mark), 0 if self.kind == CREATED else 1


def sequencer_key(sequencer: str, width: int = 32) -> str:
    """A string whose order is the sequencers' order: upper-cased, right-padded with zeros (as AWS says)."""
    return sequencer.upper().ljust(max(width, len(sequencer)), "0")


def later(a: ObjectEvent, b: ObjectEvent) -> ObjectEvent:
    """The later of two events for the same object (the second on an exact duplicate)."""
    return a if a.order > b.order else b


def parse_message(body: str) -> list[ObjectEvent]:
    """The object events in one SQS message body; ``[]`` for a test event or events of other kinds.

    Raises :class:`UnreadableMessage` for a body that is no S3 notification at all.
    """
    try:
        doc = json.loads(body)
    except json.JSONDecodeError as exc:
        raise UnreadableMessage(f"not JSON: {exc}") from exc
    if isinstance(doc, dict) and doc.get("Type") == "Notification" and isinstance(doc.get("Message"), str):
        return parse_message(doc["Message"])  # SNS fan-out: the S3 notification is a string inside
    if not isinstance(doc, dict):
        raise UnreadableMessage("not a JSON object")
    if doc.get("Event") == "s3:TestEvent":
        return []
    records = doc.get("Records")
    if not isinstance(records, list):
        raise UnreadableMessage("no Records and no s3:TestEvent")
    events = [_record(r) for r in records]
    return [e for e in events if e is not None]


def _record(record: Any) -> ObjectEvent | None:
    if not isinstance(record, dict):
        raise UnreadableMessage("a record is not a JSON object")
    name = str(record.get("eventName", ""))
    if name.startswith("ObjectCreated:"):
        kind: Literal["created", "removed"] = CREATED
    elif name.startswith("ObjectRemoved:"):
        kind = REMOVED
    else:
        return None  # restores, lifecycle transitions, replication: not a change of the object's bytes
    try:
        s3 = record["s3"]
        obj = s3["object"]
        bucket = s3["bucket"]["name"]
        key = unquote_plus(obj["key"])
        sequencer = str(obj.get("sequencer") or "")
    except (KeyError, TypeError) as exc:
        raise UnreadableMessage(f"{name} record lacks {exc}") from exc
    etag = obj.get("eTag") or obj.get("etag")
    version = obj.get("versionId")
    return ObjectEvent(
        bucket=bucket,
        key=key,
        kind=kind,
        sequencer=sequencer,
        size_bytes=int(obj["size"]) if obj.get("size") is not None else None,
        etag=str(etag).strip('"') if etag else None,
        version_id=None if version in (None, "", "null") else str(version),
        event_time=_time(record.get("eventTime")),
    )


def _time(raw: object) -> datetime | None:
    if not isinstance(raw, str):
        return None
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return None
