"""Incremental staging: rows arrive in chunks and go to invisible Parquet files as they come.

Memory stays bounded whatever the partition's size (a buffer per table, flushed to a file past a size),
the key is checked across chunks, and the stage's id can follow its content (hashed as it is written).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from deltalake import DeltaTable

from mm_platform.errors import StageError
from mm_platform.lake import faults
from mm_platform.lake.catalog import TableCatalog
from mm_platform.lake.conform import conform
from mm_platform.lake.files import FileAdd, FileRemove, write_parquet_files
from mm_platform.lake.handles import LatestTables
from mm_platform.lake.operations import Write
from mm_platform.lake.parallel import map_parallel
from mm_platform.lake.schemas import TableSpec, joined_keys
from mm_platform.lake.stage import (
    RowFilter,
    Stage,
    StagedTable,
    file_actions,
    hash_rows,
    load_stage,
    replaced_rows_in,
    save_stage,
    schema_to_ipc,
)
from mm_platform.lake.storage import LakeLocation

FLUSH_BYTES = 64 * 1024 * 1024
FLUSH_ROWS = 250_000

# Re-writing the rows a stage keeps from the files it replaces is most of what a small re-run pays (files hold
# rows of the whole id range, so a 1% change re-writes the other 99% of those files). It starts as soon as a
# write names what it replaces, beside the fetch, analysis and model work, and ``finish`` takes it unless the
# filters, the table version or the schema changed since. Its own pool: ``finish`` waits on it from the lake's.
_REWRITES = ThreadPoolExecutor(max_workers=2, thread_name_prefix="mmp-rewrite")


@dataclass(frozen=True)
class _Rewrite:
    """One table's replaced files and its re-written survivors, computed ahead of ``finish``."""

    filters: tuple[RowFilter, ...]
    base_version: int
    target: pa.Schema
    result: Future[tuple[list[FileRemove], list[FileAdd]]]


@dataclass
class _TableBuffer:
    spec: TableSpec
    dt: DeltaTable
    target: pa.Schema
    digest: Any = field(default_factory=hashlib.sha256)
    pending: list[pa.Table] = field(default_factory=list)
    pending_bytes: int = 0
    adds: list[FileAdd] = field(default_factory=list)
    first_keys: pa.Array | None = None
    """The first write's keys: only a second write needs them as a set (most stages write once)."""
    seen: set[str] | None = None
    replace: dict[str, set[str]] = field(default_factory=dict)
    rows: int = 0
    rewrite: _Rewrite | None = None


class StageWriter:
    """Builds one stage: ``write`` chunks per table, then ``finish`` records the manifest."""

    def __init__(
        self,
        location: LakeLocation,
        catalog: TableCatalog,
        partition: str,
        *,
        operation: Write | None = None,
        run_id: str = "",
        code_version: str = "",
        stage_id: str | None = None,
        tables: LatestTables | None = None,
        id_prefix: str = "",
        message: str = "",
    ) -> None:
        self.location = location
        self.catalog = catalog
        self.id_prefix = id_prefix
        """Prepended to a content-derived stage id (a branch's stages never collide with main's)."""
        self.tables = tables or LatestTables(location)
        self.partition = partition
        self.operation = operation or Write()
        self.message = message
        self.run_id = run_id
        self.code_version = code_version
        self.stage_id = stage_id
        self._tag = stage_id or uuid.uuid4().hex[:16]
        self._tables: dict[str, _TableBuffer] = {}

    def _buffer(self, name: str) -> _TableBuffer:
        if name not in self._tables:
            spec = self.catalog.spec(name)
            dt = self.tables.latest(name)
            self._tables[name] = _TableBuffer(spec=spec, dt=dt, target=pa.schema(dt.schema().to_arrow()))
        return self._tables[name]

    def write(self, name: str, rows: pa.Table, replace: Sequence[RowFilter] = ()) -> None:
        """Stage rows for table ``name``; ``replace`` names published rows these rows supersede."""
        buffer = self._buffer(name)
        if replace:
            _add_filters(buffer, replace)
            self._rewrite_ahead(name, buffer)
        if rows.num_rows == 0:
            return
        conformed, buffer.target = conform(buffer.spec, buffer.target, rows, self.partition)
        self._check_keys(buffer, conformed)
        if self.stage_id is None:  # a given id was already derived from the content by the caller
            hash_rows(buffer.digest, conformed)
        buffer.rows += conformed.num_rows
        buffer.pending.append(conformed)
        buffer.pending_bytes += conformed.nbytes
        if buffer.pending_bytes >= FLUSH_BYTES or sum(t.num_rows for t in buffer.pending) >= FLUSH_ROWS:
            self._flush(name, buffer)

    def replace(self, names: Sequence[str], replace: Sequence[RowFilter]) -> None:
        """Name published rows the stage supersedes in several tables (``write`` of no rows, for each); their
        re-writes start largest table first (started last, the largest ends last, and the batch waits)."""
        buffers = {name: self._buffer(name) for name in names}
        if not replace:
            return
        actions = {name: file_actions(buffer.dt) for name, buffer in buffers.items()}
        for name in sorted(names, key=lambda name: -sum(a.get("size_bytes") or 0 for a in actions[name])):
            _add_filters(buffers[name], replace)
            self._rewrite_ahead(name, buffers[name], actions[name])

    def _check_keys(self, buffer: _TableBuffer, rows: pa.Table) -> None:
        keys = joined_keys(rows, buffer.spec.key)
        self._refuse_duplicates(buffer, len(keys) - pc.count_distinct(keys).as_py())
        if buffer.first_keys is None:
            buffer.first_keys = keys  # the first write: unique within itself is all there is to check
            return
        if buffer.seen is None:
            buffer.seen = set(buffer.first_keys.to_pylist())
        new = keys.to_pylist()
        self._refuse_duplicates(buffer, len(buffer.seen.intersection(new)))
        buffer.seen.update(new)

    def _refuse_duplicates(self, buffer: _TableBuffer, duplicates: int) -> None:
        if duplicates:
            raise StageError(
                f"table {buffer.spec.name}, partition {self.partition}: {duplicates} duplicate key(s) "
                f"on ({', '.join(buffer.spec.key)})",
                hint="each key may appear once per partition",
            )

    def _flush(self, name: str, buffer: _TableBuffer) -> None:
        if not buffer.pending:
            return
        # Earlier chunks may lack columns a later chunk added: bring them all to the current schema.
        chunks = [conform(buffer.spec, buffer.target, t, self.partition)[0] for t in buffer.pending]
        buffer.adds += write_parquet_files(self.location, name, pa.concat_tables(chunks), self._tag)
        buffer.pending, buffer.pending_bytes = [], 0

    def read(self, name: str, filter: pc.Expression) -> pa.Table:
        """Rows staged so far for table ``name`` that match ``filter`` (from memory and staged files)."""
        buffer = self._tables.get(name)
        if buffer is None:
            return pa.Table.from_pylist([], schema=self.catalog.spec(name).schema)
        parts = [conform(buffer.spec, buffer.target, t, self.partition)[0].filter(filter) for t in buffer.pending]
        if buffer.adds:
            paths = [self.location.fs_path(name, add.path) for add in buffer.adds]
            files = ds.dataset(paths, schema=buffer.target, format="parquet", filesystem=self.location.fs)
            parts.append(files.to_table(filter=filter))
        return pa.concat_tables(parts) if parts else pa.Table.from_pylist([], schema=buffer.target)

    def finish(self) -> Stage:
        """Flush, work out which published files the stage replaces, and save its manifest."""
        names = sorted(self._tables)
        # Tables are independent: write them side by side (Parquet encoding releases the GIL).
        finished = map_parallel(self._finish_table, names)
        tables = {table.table: table for table in finished}
        digest = hashlib.sha256(f"{self.operation.kind}\0{self.partition}".encode())
        for name in names:
            digest.update(f"\0{name}\0{self._tables[name].digest.hexdigest()}\0".encode())
            for row_filter in tables[name].replace:
                digest.update(f"{row_filter.column}={','.join(row_filter.values)};".encode())
        stage_id = self.stage_id or self.id_prefix + digest.hexdigest()[:24]
        existing = load_stage(self.location, stage_id)
        if existing is not None:
            # The same content was staged before (a re-run after a crash): keep that stage, drop ours.
            for staged in tables.values():
                for add in staged.adds:
                    self.location.delete_file(f"{staged.table}/{add.path}")
            return existing
        stage = Stage(
            stage_id=stage_id,
            partition=self.partition,
            operation=self.operation,
            tables=tables,
            run_id=self.run_id,
            code_version=self.code_version,
            message=self.message,
        )
        save_stage(self.location, stage)
        faults.fault_point("after_stage")
        return stage

    def _finish_table(self, name: str) -> StagedTable:
        buffer = self._tables[name]
        self._flush(name, buffer)
        filters = _filters(buffer)
        rewrite = buffer.rewrite
        if rewrite is not None and (rewrite.filters, rewrite.base_version, rewrite.target) == (
            filters,
            buffer.dt.version(),
            buffer.target,
        ):
            removes, rewritten = rewrite.result.result()
        else:
            self._drop_rewrite(name, buffer)
            actions = file_actions(buffer.dt) if filters else []
            removes, rewritten = self._rewrite(name, buffer.spec, buffer.target, actions, filters)
        return StagedTable(
            table=name,
            base_version=buffer.dt.version(),
            adds=(*buffer.adds, *rewritten),
            removes=tuple(removes),
            rows_added=buffer.rows,
            schema_ipc=schema_to_ipc(buffer.target),
            replace=filters,
            new_row_files=tuple(a.path for a in buffer.adds),
        )

    def _rewrite_ahead(self, name: str, buffer: _TableBuffer, actions: Sequence[dict[str, Any]] | None = None) -> None:
        """Start re-writing what the table's current filters replace (unless that already runs)."""
        filters = _filters(buffer)
        current = buffer.rewrite
        if current is not None and (current.filters, current.target) == (filters, buffer.target):
            return
        self._drop_rewrite(name, buffer)
        if actions is None:
            actions = file_actions(buffer.dt)  # read here: a delta-rs handle stays in the thread that opened it
        job = _REWRITES.submit(self._rewrite, name, buffer.spec, buffer.target, actions, filters)
        buffer.rewrite = _Rewrite(filters, buffer.dt.version(), buffer.target, job)

    def _rewrite(
        self,
        name: str,
        spec: TableSpec,
        target: pa.Schema,
        actions: Sequence[dict[str, Any]],
        filters: tuple[RowFilter, ...],
    ) -> tuple[list[FileRemove], list[FileAdd]]:
        """The files the filters hit, and the rows those files keep written again (in ``target``'s schema)."""
        removes, survivors = replaced_rows_in(self.location, name, actions, filters)
        adds: list[FileAdd] = []
        for kept in survivors:
            adds += write_parquet_files(self.location, name, conform(spec, target, kept, self.partition)[0], self._tag)
        return removes, adds

    def _drop_rewrite(self, name: str, buffer: _TableBuffer) -> None:
        """Forget a rewrite computed ahead, deleting the files it wrote (nothing references them)."""
        rewrite, buffer.rewrite = buffer.rewrite, None
        if rewrite is None or rewrite.result.cancel():
            return
        try:
            _, adds = rewrite.result.result()
        except Exception:  # noqa: BLE001 - a failed rewrite left nothing to delete; a recomputation reports it
            return
        for add in adds:
            self.location.delete_file(f"{name}/{add.path}")

    def abandon(self) -> None:
        """Delete what was written so far (nothing references it)."""
        for name, buffer in self._tables.items():
            self._drop_rewrite(name, buffer)
            for add in buffer.adds:
                self.location.delete_file(f"{name}/{add.path}")
        self._tables.clear()


def _add_filters(buffer: _TableBuffer, replace: Sequence[RowFilter]) -> None:
    for row_filter in replace:
        buffer.replace.setdefault(row_filter.column, set()).update(row_filter.values)


def _filters(buffer: _TableBuffer) -> tuple[RowFilter, ...]:
    return tuple(RowFilter(col, tuple(sorted(vals))) for col, vals in sorted(buffer.replace.items()))
