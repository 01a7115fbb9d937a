"""Invariants of a lake that tests check after they run: one copy of every row, no gaps in the publish log."""

from __future__ import annotations

from collections import Counter

import pyarrow as pa

from mm_platform.catalog import CATALOG
from mm_platform.lake import Lake, Snapshot


def table_rows(snapshot: Snapshot, name: str) -> list[dict[str, object]]:
    """A table's rows, sorted by key, without per-file ordering noise."""
    rows = snapshot.table(name).to_pylist()
    key = CATALOG[name].key
    return sorted(rows, key=lambda r: tuple(str(r[k]) for k in key))


def snapshot_content(snapshot: Snapshot) -> dict[str, list[dict[str, object]]]:
    return {name: table_rows(snapshot, name) for name in CATALOG}


def assert_no_duplicate_keys(snapshot: Snapshot) -> None:
    for name, spec in CATALOG.items():
        keys = snapshot.table(name, columns=list(spec.key)).to_pylist()
        counts = Counter(tuple(row.values()) for row in keys)
        duplicated = {k: c for k, c in counts.items() if c > 1}
        assert not duplicated, f"{name}: duplicate keys {list(duplicated)[:5]}"


def assert_log_has_no_gap(lake: Lake) -> list[int]:
    """Published seqs run 1..n without a gap, each intent closed exactly once; returns the seqs."""
    state = lake.state()
    published = [e.publish_seq for e in state.published()]
    assert published == list(range(1, len(published) + 1)), f"publish seqs have a gap: {published}"
    intents = [e.publish_seq for e in state.entries if e.event == "intent"]
    assert len(intents) == len(set(intents)), f"an intent seq was claimed twice: {intents}"
    assert state.open_intent() is None
    return [int(s) for s in published if s is not None]


def partition_counts(snapshot: Snapshot, name: str) -> dict[str, int]:
    table = snapshot.table(name, columns=["partition"])
    return {
        row["partition"]: row["count"]
        for row in table.group_by("partition")
        .aggregate([([], "count_all")])
        .rename_columns(["partition", "count"])
        .to_pylist()
    }


def as_table(rows: list[dict[str, object]]) -> pa.Table:
    return pa.Table.from_pylist(rows)
