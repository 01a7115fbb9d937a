"""Incremental staging: rows arrive in chunks and go to invisible Parquet files as they come.

Memory stays bounded whatever the partition's size (a buffer per table, flushed to a file past a size),
the key is checked across chunks, and the stage's id can follow its content (hashed as it is written).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from deltalake import DeltaTable

from mm_platform.errors import StageError
from mm_platform.lake import faults
from mm_platform.lake.catalog import TableCatalog
from mm_platform.lake.files import FileAdd, write_parquet_files
from mm_platform.lake.handles import LatestTables
from mm_platform.lake.operations import Write
from mm_platform.lake.parallel import map_parallel
from mm_platform.lake.schemas import TableSpec
from mm_platform.lake.stage import (
    RowFilter,
    Stage,
    StagedTable,
    conform,
    hash_rows,
    load_stage,
    replaced_rows,
    save_stage,
    schema_to_ipc,
)
from mm_platform.lake.storage import LakeLocation

FLUSH_BYTES = 64 * 1024 * 1024
FLUSH_ROWS = 250_000


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
        for row_filter in replace:
            buffer.replace.setdefault(row_filter.column, set()).update(row_filter.values)
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
        filters = tuple(RowFilter(col, tuple(sorted(vals))) for col, vals in sorted(buffer.replace.items()))
        removes, survivors = replaced_rows(self.location, name, buffer.dt, filters)
        adds = list(buffer.adds)
        for kept in survivors:
            kept_rows = conform(buffer.spec, buffer.target, kept, self.partition)[0]
            adds += write_parquet_files(self.location, name, kept_rows, self._tag)
        return StagedTable(
            table=name,
            base_version=buffer.dt.version(),
            adds=tuple(adds),
            removes=tuple(removes),
            rows_added=buffer.rows,
            schema_ipc=schema_to_ipc(buffer.target),
            replace=filters,
            new_row_files=tuple(a.path for a in buffer.adds),
        )

    def abandon(self) -> None:
        """Delete what was written so far (nothing references it)."""
        for name, buffer in self._tables.items():
            for add in buffer.adds:
                self.location.delete_file(f"{name}/{add.path}")
        self._tables.clear()


def joined_keys(rows: pa.Table, key: Sequence[str]) -> pa.Array:
    """One string per row that identifies it (key columns joined by a separator no key contains)."""
    columns = [pc.cast(rows.column(k), pa.string()) for k in key]
    joined = columns[0] if len(columns) == 1 else pc.binary_join_element_wise(*columns, "\x1f")
    return joined.combine_chunks() if isinstance(joined, pa.ChunkedArray) else joined
