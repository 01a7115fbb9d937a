"""A branch's publish protocol and snapshots: isolated publishes on the fork snapshot's files, zero copy.

A branch runs the same write–audit–publish protocol as main (its own compare-and-swap ``_publish_log``, the
same named fault points), but its "commit" of a table writes a file list (``branch_store``) instead of a
Delta commit: main's logs never see a branch's files, so main's readers (and other branches') cannot.
Readers of a branch read its file lists with pyarrow, as main's readers read ``_table_states/``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import cast

import pyarrow as pa
import pyarrow.dataset as ds
from deltalake import DeltaTable

from mm_platform.errors import ConfigError
from mm_platform.lake.audit import CheckResult
from mm_platform.lake.branch_files import flat_actions, main_files, with_changes
from mm_platform.lake.branch_store import BranchStore
from mm_platform.lake.catalog import TableCatalog
from mm_platform.lake.files import delta_dataset
from mm_platform.lake.handles import LatestTables
from mm_platform.lake.operations import Restore
from mm_platform.lake.publish import Publisher
from mm_platform.lake.publish_events import append_terminal
from mm_platform.lake.publish_log import ABORTED, LogEntry, LogState, PublishLog
from mm_platform.lake.snapshot import Snapshot, select_snapshot
from mm_platform.lake.stage import Stage, TableWrite, fingerprint
from mm_platform.lake.staged import PublishResult, StagedPartition
from mm_platform.lake.storage import LakeLocation
from mm_platform.lake.table_commit import APP_ID
from mm_platform.lake.table_state import read_state
from mm_platform.log import get_logger, kv

log = get_logger("mm_platform.lake.branch")


class Schemaish:
    """What ``DeltaTable.schema()`` gives the protocol: ``to_arrow()``."""

    def __init__(self, schema: pa.Schema) -> None:
        self._schema = schema

    def to_arrow(self) -> pa.Schema:
        return self._schema


class BranchTable:
    """One table of a branch at one version, with the parts of a ``DeltaTable`` the protocol uses."""

    def __init__(self, store: BranchStore, name: str, version: int) -> None:
        self.store = store
        self.name = name
        self._version = version
        found = store.read_version(name, version)
        if found is None:  # the fork: main's Delta version
            fork = store.record().fork_versions.get(name, 0)
            self.files, schema = main_files(store.location, name, fork)
            self.applied_seq = 0
        else:
            self.files, schema, self.applied_seq = found
        self._schema = schema

    def version(self) -> int:
        return self._version

    def schema(self) -> Schemaish:
        return Schemaish(self._schema)

    def arrow_schema(self) -> pa.Schema:
        return self._schema

    def get_add_actions(self, flatten: bool = False) -> pa.Table:
        return flat_actions(self.files) if flatten else self.files

    def transaction_version(self, app_id: str) -> int | None:
        return self.applied_seq if app_id == APP_ID and self.applied_seq else None

    def file_uris(self) -> list[str]:
        return [self.store.location.uri(self.name, str(p)) for p in self.files.column("path").to_pylist()]

    def update_incremental(self) -> None:
        """A branch table object is one version; ``BranchTables.latest`` opens the newest."""


class BranchTables(LatestTables):
    """The branch's tables at their latest versions (what staging and applying start from)."""

    def __init__(self, store: BranchStore) -> None:
        super().__init__(store.location)
        self.store = store

    def latest(self, name: str) -> DeltaTable:
        table = BranchTable(self.store, name, self.store.latest_version(name))
        return cast(DeltaTable, table)  # duck-typed: version, schema, get_add_actions, transaction_version

    def current(self, name: str) -> DeltaTable:
        return self.latest(name)


@dataclass(frozen=True)
class BranchSnapshot(Snapshot):
    """A published state of a branch: its tables at branch versions (0: the fork snapshot's version)."""

    store: BranchStore | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, snapshot: Snapshot, store: BranchStore) -> BranchSnapshot:
        return cls(
            location=snapshot.location,
            seq=snapshot.seq,
            table_versions=dict(snapshot.table_versions),
            published_at=snapshot.published_at,
            partition=snapshot.partition,
            catalog=snapshot.catalog,
            kind="fork" if snapshot.seq == 0 else snapshot.kind,
            branch=store.name,
            store=store,
        )

    def _store(self) -> BranchStore:
        assert self.store is not None
        return self.store

    def _fork_version(self, name: str) -> int:
        return int(self._store().record().fork_versions.get(name, 0))

    def _recorded(self, name: str) -> tuple[pa.Table, pa.Schema, int] | None:
        return self._store().read_version(name, self.version_of(name))

    def table_token(self, name: str) -> tuple[str, int]:
        version = self.version_of(name)
        if version == 0 and self._recorded(name) is None:
            return ("main", self._fork_version(name))
        return (f"branch:{self._store().name}", version)

    def delta_table(self, name: str) -> DeltaTable:
        if self.table_token(name)[0] != "main":
            raise ConfigError(
                f"table {name} on branch {self._store().name} is not a Delta version",
                hint="read it with snapshot.table() or snapshot.dataset()",
            )
        if name not in self._cache:
            options = dict(self.location.storage_options)
            self._cache[name] = DeltaTable(
                self.location.uri(name), version=self._fork_version(name), storage_options=options
            )
        return self._cache[name]

    def dataset(self, name: str) -> ds.Dataset:
        if name not in self._datasets:
            recorded = self._recorded(name)
            if recorded is None:
                main_state = read_state(self.location, name, self._fork_version(name))
                if main_state is not None:
                    paths, schema = main_state
                    files = [self.location.fs_path(name, p) for p in paths]
                    dataset = ds.dataset(files, schema=schema, format="parquet", filesystem=self.location.fs)
                else:
                    dataset = cast(ds.Dataset, delta_dataset(self.location, self.delta_table(name)))
            else:
                table_files, schema, _ = recorded
                paths = [self.location.fs_path(name, str(p)) for p in table_files.column("path").to_pylist()]
                dataset = ds.dataset(paths, schema=schema, format="parquet", filesystem=self.location.fs)
            self._datasets[name] = dataset
        return self._datasets[name]

    def file_uris(self, name: str) -> list[str]:
        recorded = self._recorded(name)
        if recorded is None:
            return list(self.delta_table(name).file_uris())
        return [self.location.uri(name, str(p)) for p in recorded[0].column("path").to_pylist()]

    def files(self, name: str) -> pa.Table:
        """The file list (path, size, stats) of the table in this snapshot."""
        recorded = self._recorded(name)
        return recorded[0] if recorded is not None else main_files(self.location, name, self._fork_version(name))[0]


class BranchPublisher(Publisher):
    """The publish protocol on a branch: a table's apply step records a file list instead of a Delta commit."""

    def __init__(self, location: LakeLocation, catalog: TableCatalog, store: BranchStore) -> None:
        super().__init__(location, catalog, auto_compact_files=None)
        self.store = store
        self.log = PublishLog(location, store.log_name)
        self.tables = BranchTables(store)
        self.stage_id_prefix = f"{store.name}~"

    def base_snapshot(self, state: LogState) -> Snapshot:
        return BranchSnapshot.of(select_snapshot(self.location, self.catalog, state), self.store)

    def stage(
        self,
        partition: str,
        writes: Mapping[str, TableWrite],
        *,
        run_id: str = "",
        code_version: str = "",
        stage_id: str | None = None,
    ) -> StagedPartition:
        stage_id = self.namespaced(stage_id or fingerprint(partition, writes))
        return super().stage(partition, writes, run_id=run_id, code_version=code_version, stage_id=stage_id)

    def publish(self, stage: Stage, checks: Sequence[CheckResult] = ()) -> PublishResult:
        return super().publish(replace(stage, audit={**stage.audit, "branch": self.store.name}), checks)

    def _apply_table(self, name: str, stage: Stage, seq: int) -> int:
        current = cast(BranchTable, self.tables.latest(name))
        version = current.version()
        if current.applied_seq >= seq:
            return version  # applied already (a roll-forward after a crash)
        if isinstance(stage.operation, Restore):
            target = stage.operation.versions[name]
            if target == version:
                return version
            source = BranchTable(self.store, name, target)
            files, schema = source.files, source.arrow_schema()
        else:
            staged = stage.tables[name]
            files = with_changes(current.files, staged.adds, [r.path for r in staged.removes])
            schema = staged.schema
        # Under an open intent only this publish writes the table; a second process rolling the same intent
        # forward writes the same record (same base, same stage), so the write is idempotent.
        self.store.write_version(name, version + 1, files, schema, seq)
        log.info("applied %s", kv(branch=self.store.name, table=name, seq=seq, version=version + 1))
        return version + 1

    def _abort(self, intent: LogEntry, reason: str) -> LogEntry:
        for name, base in intent.table_versions.items():
            current = cast(BranchTable, self.tables.latest(name))
            if current.version() != base and current.applied_seq >= (intent.publish_seq or 0):
                source = BranchTable(self.store, name, base)
                self.store.write_version(name, current.version() + 1, source.files, source.arrow_schema(), 0)
        log.warning("aborted %s", kv(branch=self.store.name, seq=intent.publish_seq, reason=reason))
        return append_terminal(self.log, LogEntry(**{**intent.__dict__, "message": reason}), ABORTED, {})
