"""The lake's snapshot history as the browser lists it: each snapshot with the publish log's run, message and
actor, and for an erasure who asked for it and why (the append-only ``erasures`` audit table)."""

from __future__ import annotations

from typing import Any

from mm_platform.erasure.table import ERASURES
from mm_platform.lake import Lake, Snapshot

__all__ = ["snapshot_history"]


def snapshot_history(lake: Lake) -> list[dict[str, Any]]:
    """What ``mmp snapshots --json`` prints, plus the publish log's run and message, and for an erasure
    who asked for it and why (the ``erasures`` audit table), where recorded."""
    extra = {e.publish_seq: e for e in lake.state().published()}
    snapshots = lake.snapshots()
    actors = _erasure_actors(snapshots[-1]) if snapshots else {}
    out = []
    for snap in snapshots:
        row = snap.to_dict()
        entry = extra.get(snap.seq)
        audit = dict(getattr(entry, "audit", None) or {})  # the publish log's audit trail, where recorded
        row["message"] = audit.get("message") or getattr(entry, "message", "") or ""
        row["run_id"] = getattr(entry, "run_id", "") or ""
        actor, reason = actors.get(str(snap.partition), ("", ""))
        row["actor"] = actor or audit.get("actor") or ""
        if reason:
            row["message"] = f"{row['message']} (reason: {reason})" if row["message"] else reason
        out.append(row)
    return out


def _erasure_actors(latest: Snapshot) -> dict[str, tuple[str, str]]:
    """``erasure:<id>`` partition → (requested_by, reason), from the append-only audit table."""
    if ERASURES.name not in latest.table_versions:
        return {}
    rows = latest.table(ERASURES.name, columns=["erasure_id", "requested_by", "reason"]).to_pylist()
    return {f"erasure:{r['erasure_id']}": (r["requested_by"], r["reason"]) for r in rows}
