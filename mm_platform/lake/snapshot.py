"""Reading a published snapshot: every table at the version its ``published`` event pins.

Readers never look at a table's latest version, so a publish that is half applied is invisible to them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
from deltalake import DeltaTable

from mm_platform.errors import SnapshotExpiredError, SnapshotNotFoundError
from mm_platform.lake.catalog import TableCatalog
from mm_platform.lake.files import delta_dataset
from mm_platform.lake.publish_log import LogEntry, LogHead, LogState
from mm_platform.lake.storage import LakeLocation
from mm_platform.lake.table_state import read_state


@dataclass(frozen=True)
class Snapshot:
    """One published state of the whole lake."""

    location: LakeLocation
    seq: int
    """Publish sequence number; 0 is the empty lake before any publish."""
    table_versions: Mapping[str, int]
    """The Delta version of each table that this snapshot pins."""
    catalog: TableCatalog = field(compare=False, repr=False)
    """The lake's tables (what ``version_of`` accepts)."""
    published_at: datetime | None = None
    partition: str | None = None
    kind: str = "publish"
    branch: str | None = None
    """The branch this snapshot is of (None: main); its ``seq`` and versions are the branch's own."""
    _cache: dict[str, DeltaTable] = field(default_factory=dict, compare=False, repr=False)
    _datasets: dict[str, ds.Dataset] = field(default_factory=dict, compare=False, repr=False)

    def version_of(self, name: str) -> int:
        self.catalog.spec(name)  # a clear error for an unknown table
        return int(self.table_versions.get(name, 0))

    def table_token(self, name: str) -> tuple[str, int]:
        """What identifies the table's content: equal tokens, equal rows (across main and branches)."""
        return ("main", self.version_of(name))

    def delta_table(self, name: str) -> DeltaTable:
        """The delta-rs table at the pinned version (for DuckDB, Polars or your own reader)."""
        if name not in self._cache:
            self._cache[name] = DeltaTable(
                self.location.uri(name),
                version=self.version_of(name),
                storage_options=dict(self.location.storage_options),
            )
        return self._cache[name]

    def schema(self, name: str) -> pa.Schema:
        return self.dataset(name).schema

    def dataset(self, name: str) -> ds.Dataset:
        """The table's files at the pinned version as a pyarrow dataset (readable by DuckDB and Polars)."""
        if name not in self._datasets:
            recorded = read_state(self.location, name, self.version_of(name))
            if recorded is not None:  # the publisher's record of this version: no Delta log replay
                paths, schema = recorded
                files = [self.location.fs_path(name, path) for path in paths]
                dataset = ds.dataset(files, schema=schema, format="parquet", filesystem=self.location.fs)
            else:
                dataset = delta_dataset(self.location, self.delta_table(name))
            assert isinstance(dataset, ds.Dataset)
            self._datasets[name] = dataset
        return self._datasets[name]

    def table(self, name: str, columns: Sequence[str] | None = None, filter: Any = None) -> pa.Table:
        """The table's rows in this snapshot as Arrow."""
        return self.dataset(name).to_table(columns=list(columns) if columns else None, filter=filter)

    def file_uris(self, name: str) -> list[str]:
        return list(self.delta_table(name).file_uris())

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "kind": self.kind,
            "partition": self.partition,
            "published_at": None if self.published_at is None else self.published_at.isoformat(),
            "table_versions": dict(self.table_versions),
            **({"branch": self.branch} if self.branch else {}),
        }


def empty_snapshot(location: LakeLocation, catalog: TableCatalog) -> Snapshot:
    versions = {name: 0 for name in catalog}
    return Snapshot(location=location, seq=0, table_versions=versions, catalog=catalog, kind="empty")


def snapshot_from_entry(location: LakeLocation, catalog: TableCatalog, entry: LogEntry) -> Snapshot:
    assert entry.publish_seq is not None
    return Snapshot(
        location=location,
        seq=entry.publish_seq,
        table_versions=dict(entry.table_versions),
        catalog=catalog,
        published_at=entry.created_at,
        partition=entry.partition,
        kind=entry.kind,
    )


def select_snapshot(
    location: LakeLocation,
    catalog: TableCatalog,
    state: LogState,
    seq: int | None = None,
    as_of: datetime | None = None,
) -> Snapshot:
    """The latest snapshot, the one with sequence ``seq``, or the latest published at or before ``as_of``."""
    published = state.published()
    if seq is not None:
        if seq == 0:
            chosen = None
        else:
            chosen = next((e for e in published if e.publish_seq == seq), None)
            if chosen is None:
                last = published[-1].publish_seq if published else 0
                raise SnapshotNotFoundError(
                    f"no published snapshot with seq {seq}", hint=f"published seqs run from 1 to {last}"
                )
    elif as_of is not None:
        earlier = [e for e in published if e.created_at <= as_of]
        if not earlier and published:
            raise SnapshotNotFoundError(
                f"no snapshot was published at or before {as_of.isoformat()}",
                hint=f"the first was published at {published[0].created_at.isoformat()}",
            )
        chosen = earlier[-1] if earlier else None
    else:
        chosen = published[-1] if published else None
    return _readable(location, catalog, chosen, state.vacuum_horizon())


def latest_snapshot(location: LakeLocation, catalog: TableCatalog, head: LogHead) -> Snapshot:
    """The latest snapshot from the log's head (what ``select_snapshot`` returns without seq or time)."""
    return _readable(location, catalog, head.latest, head.vacuum_horizon)


def _readable(location: LakeLocation, catalog: TableCatalog, chosen: LogEntry | None, horizon: int) -> Snapshot:
    if chosen is None:
        return empty_snapshot(location, catalog)
    if chosen.publish_seq is not None and chosen.publish_seq < horizon:
        raise SnapshotExpiredError(
            f"snapshot {chosen.publish_seq} was vacuumed (snapshots below {horizon} are gone)",
            hint="restore it from a backup or an export; keep more snapshots in `mmp vacuum --keep`",
        )
    return snapshot_from_entry(location, catalog, chosen)
