"""``mmp status``: what a lake (or a branch) holds now, as one JSON-ready document."""

from __future__ import annotations

from typing import Any

from mm_platform.lake.branch_store import BranchRecord
from mm_platform.lake.publish_log import LogState
from mm_platform.lake.snapshot import Snapshot


def lake_status(root: str, latest: Snapshot, state: LogState) -> dict[str, Any]:
    """Main's latest snapshot, row counts, an open intent, and the last rejected stage's failing rows."""
    rows = {name: latest.delta_table(name).count() for name in latest.catalog}
    rejected = [e for e in state.entries if e.event == "rejected"]
    return {
        "lake": root,
        "snapshot": latest.to_dict(),
        "rows": rows,
        "snapshots": len(state.published()),
        "open_intent": _intent(state),
        "last_rejected": None
        if not rejected
        else {
            "partition": rejected[-1].partition,
            "reason": rejected[-1].message,
            "at": rejected[-1].created_at.isoformat(),
            "failing_rows": [
                {"check": check.get("name"), **row}
                for check in rejected[-1].checks or []
                if not check.get("passed")
                for row in check.get("failing_rows") or []
            ],
        },
    }


def branch_status(root: str, latest: Snapshot, state: LogState, record: BranchRecord) -> dict[str, Any]:
    """A branch's latest snapshot and row counts, with where it forked from."""
    return {
        "lake": root,
        "branch": record.name,
        "parent": record.parent,
        "fork_seq": record.fork_seq,
        "snapshot": latest.to_dict(),
        "rows": {name: latest.dataset(name).count_rows() for name in latest.catalog},
        "snapshots": len(state.published()),
        "open_intent": _intent(state),
        "last_rejected": None,
    }


def _intent(state: LogState) -> dict[str, Any] | None:
    intent = state.open_intent()
    return None if intent is None else {"seq": intent.publish_seq, "partition": intent.partition}
