"""The audit trail as people read it: one row per publish event with who, why, how, and what a merge did."""

from __future__ import annotations

from typing import Any

from mm_platform.lake.lake import Lake
from mm_platform.lake.operations import Erase
from mm_platform.lake.publish_log import ABORTED, INTENT, PUBLISHED, REJECTED, LogEntry

_SHOWN = (PUBLISHED, REJECTED, ABORTED)


def event_row(entry: LogEntry) -> dict[str, Any]:
    """A log event with its audit fields flattened (``mmp log``, export manifests)."""
    audit = dict(entry.audit)
    merge = audit.get("merge")
    detail = ""
    if merge:
        base = f"branch snapshot {merge['base_seq']}" if merge.get("base_seq") else f"fork {merge.get('fork_seq')}"
        detail = f"merge {merge['source']}@{merge['source_seq']} into {merge.get('into', 'main')} (base: {base})"
        if merge.get("conflicts"):
            how = f"resolved by --prefer {merge['prefer']}" if merge.get("prefer") else "refused"
            detail += f"; {merge['conflicts']} conflict(s) {how}"
    elif entry.kind == Erase.kind:
        detail = "erasure"
    elif entry.event == REJECTED and entry.message:
        detail = entry.message[:200]
    return {
        "seq": entry.publish_seq,
        "event": entry.event,
        "kind": entry.kind,
        "partition": entry.partition,
        "at": entry.created_at.isoformat(),
        "actor": audit.get("actor", ""),
        "message": audit.get("message") or entry.message or "",
        "command": audit.get("command", "") or (f"run {entry.run_id}" if entry.run_id else ""),
        "run_id": entry.run_id or "",
        "branch": audit.get("branch", ""),
        "merge": merge,
        "detail": detail,
        "row_counts": dict(entry.row_counts),
    }


def log_events(lake: Lake, *, include_intents: bool = False, up_to_seq: int | None = None) -> list[dict[str, Any]]:
    """The lake's (or branch's) publish events, oldest first."""
    shown = (*_SHOWN, INTENT) if include_intents else _SHOWN
    rows = []
    for entry in lake.state().entries:
        if entry.event not in shown:
            continue
        if up_to_seq is not None and entry.publish_seq is not None and entry.publish_seq > up_to_seq:
            continue
        rows.append(event_row(entry))
    return rows
