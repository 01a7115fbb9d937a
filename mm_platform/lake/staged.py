"""A stage as a publish sees it (its rows read lazily, for the audit) and what a publish did."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.dataset as ds

from mm_platform.errors import StorageError
from mm_platform.lake.audit import CheckResult
from mm_platform.lake.publish_log import ABORTED, LogEntry
from mm_platform.lake.stage import Stage
from mm_platform.lake.storage import LakeLocation


@dataclass(frozen=True)
class PublishResult:
    """What a publish did."""

    seq: int
    stage_id: str
    partition: str
    table_versions: Mapping[str, int]
    row_counts: Mapping[str, int]
    noop: bool = False
    """True when this exact stage was already published: nothing was committed."""
    checks: Sequence[CheckResult] = field(default_factory=tuple)

    @classmethod
    def of(cls, entry: LogEntry, noop: bool = False) -> PublishResult:
        """What a ``published`` event says (an ``aborted`` one raises: its stage was not published)."""
        assert entry.publish_seq is not None
        if entry.event == ABORTED:
            raise StorageError(f"publish {entry.publish_seq} was aborted: {entry.message}", hint="stage it again")
        return cls(
            seq=entry.publish_seq,
            stage_id=entry.stage_id or "",
            partition=entry.partition or "",
            table_versions=dict(entry.table_versions),
            row_counts=dict(entry.row_counts),
            noop=noop,
        )


class StagedRows(Mapping[str, pa.Table]):
    """The new rows of a stage per table, read from its staged files when a check asks for them."""

    def __init__(self, location: LakeLocation, stage: Stage) -> None:
        self.location = location
        self.stage = stage
        self._cache: dict[str, pa.Table] = {}

    def dataset(self, name: str) -> ds.Dataset:
        staged = self.stage.tables[name]
        paths = [self.location.fs_path(name, path) for path in staged.new_row_files]
        return ds.dataset(paths, schema=staged.schema, format="parquet", filesystem=self.location.fs)

    def __getitem__(self, name: str) -> pa.Table:
        if name not in self._cache:
            if name not in self.stage.tables:
                raise KeyError(name)
            self._cache[name] = self.dataset(name).to_table()
        return self._cache[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.stage.tables)

    def __len__(self) -> int:
        return len(self.stage.tables)


@dataclass
class StagedPartition:
    """A stage and lazy access to the rows it holds (for the audit)."""

    stage: Stage
    rows: StagedRows
