"""The ``_publish_log`` table: the protocol's events (``log_entries``), committed one per Delta version with
compare-and-swap.

Every append commits at exactly ``read_version + 1`` (``max_commit_retries=0``); a writer that loses the
race reloads and decides again. So the log's Delta versions order its events totally, at most one intent
is ever open, and publish sequence numbers have no gaps.
"""

from __future__ import annotations

import contextlib
import json
import threading
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from deltalake import CommitProperties, DeltaTable
from deltalake.exceptions import CommitFailedError
from deltalake.transaction import AddAction, RemoveAction

from mm_platform.lake.files import table_file_paths, write_parquet_files
from mm_platform.lake.handles import LatestTables
from mm_platform.lake.log_entries import (
    ABORTED,
    INTENT,
    LOG_SCHEMA,
    PUBLISHED,
    REJECTED,
    VACUUMED,
    LogEntry,
    LogHead,
    LogState,
)
from mm_platform.lake.schemas import PUBLISH_LOG
from mm_platform.lake.storage import LakeLocation

__all__ = [
    "ABORTED",
    "INTENT",
    "LOG_SCHEMA",
    "PUBLISHED",
    "REJECTED",
    "VACUUMED",
    "LogEntry",
    "LogHead",
    "LogState",
    "PublishLog",
]

# The log stays a handful of files: past this many, the next append rewrites it as one file.
COMPACT_LOG_AFTER_FILES = 24

# Every log commit carries the head as of itself in its commit info, so the latest snapshot is found by
# reading one commit file, however long the log's history.
HEAD_KEY = "mmp.head"


class PublishLog:
    """Reads and appends the ``_publish_log`` table of one lake.

    The latest state is cached: a reload reads only the log files committed since (files are immutable and
    each event lives in a file added by its own commit, or by a later compaction commit), so the cost of
    following the log does not grow with its history.
    """

    name = PUBLISH_LOG.name
    app_id = "mm_platform.publish_log"

    def __init__(self, location: LakeLocation, name: str | None = None) -> None:
        self.location = location
        if name is not None:  # a branch keeps its own log (``_branches/<branch>/_publish_log``)
            self.name = name
        self.uri = location.uri(self.name)
        self._tables = LatestTables(location)
        self._lock = threading.Lock()
        self._cached: tuple[LogState, frozenset[str]] | None = None

    def _open(self, version: int | None = None) -> DeltaTable:
        if version is None:
            return self._tables.latest(self.name)
        return DeltaTable(self.uri, version=version, storage_options=dict(self.location.storage_options))

    def create(self) -> None:
        DeltaTable.create(
            self.uri,
            schema=LOG_SCHEMA,
            mode="ignore",
            storage_options=dict(self.location.storage_options),
            configuration={"delta.checkpointInterval": "10"},  # see table_create.TABLE_CONFIGURATION
        )

    def load(self, version: int | None = None) -> LogState:
        if version is not None:
            dt = self._open(version)
            return LogState(version=dt.version(), entries=tuple(self._read(table_file_paths(dt))))
        dt = self._open()
        latest, files = dt.version(), table_file_paths(dt)
        with self._lock:
            cached = self._cached
        if cached is not None and cached[0].version == latest:
            return cached[0]
        if cached is not None and cached[0].version < latest:
            base, known = cached
            added = self._read([f for f in files if f not in known], after=base.version)
            state = LogState(version=latest, entries=(*base.entries, *added))
        else:
            state = LogState(version=latest, entries=tuple(self._read(files)))
        with self._lock:
            if self._cached is None or self._cached[0].version < latest:
                self._cached = (state, frozenset(files))
        return state

    def head(self) -> LogHead:
        """The latest published event and the vacuum horizon, from the newest commit's info."""
        version = self._latest_version()
        with self._lock:
            cached = self._cached
        if cached is not None and cached[0].version == version:
            return LogHead.of(cached[0])
        if version is not None:
            commit = self.location.read_bytes(f"{self.name}/_delta_log/{version:020d}.json")
            for line in (commit or b"").splitlines():
                info = json.loads(line).get("commitInfo")
                if info is not None and HEAD_KEY in info:
                    return LogHead.from_json(version, info[HEAD_KEY])
        return LogHead.of(self.load())  # a log written before heads were recorded, or no log at all

    def _latest_version(self) -> int | None:
        """The log's newest Delta version: from the last checkpoint, step forward while commits exist.

        Commits are written with put-if-absent at consecutive versions, so the first gap ends the log.
        """
        log_dir = f"{self.name}/_delta_log"
        checkpoint = self.location.read_json(f"{log_dir}/_last_checkpoint")
        version = int(checkpoint["version"]) if checkpoint else 0
        if not self.location.exists(f"{log_dir}/{version:020d}.json"):
            return None
        while self.location.exists(f"{log_dir}/{version + 1:020d}.json"):
            version += 1
        return version

    def _read(self, files: list[str], after: int = -1) -> list[LogEntry]:
        if not files:
            return []
        paths = [self.location.fs_path(self.name, f) for f in files]
        table = ds.dataset(paths, schema=LOG_SCHEMA, format="parquet", filesystem=self.location.fs).to_table(
            filter=pc.field("log_version") > after
        )
        return sorted((LogEntry.from_row(r) for r in table.to_pylist()), key=lambda e: e.log_version)

    def try_append(self, entry: LogEntry, state: LogState) -> LogState | None:
        """Append ``entry`` at exactly ``state.version + 1``; None when another writer got there first."""
        dt = self._tables.current(self.name)  # as the load that gave ``state`` left it, usually
        if dt.version() != state.version:
            dt = self._open()
            if dt.version() != state.version:
                return None  # the log moved on since ``state``: the caller decides again on the new state
        if _missing_audit_column(dt):
            return None  # the column was added in a commit of its own: the caller reloads and retries
        log_version = state.version + 1
        new_entry = LogEntry(**{**entry.__dict__, "log_version": log_version})
        new_state = LogState(version=log_version, entries=(*state.entries, new_entry))
        row = pa.Table.from_pylist([entry.to_row(log_version)], schema=LOG_SCHEMA)
        files = table_file_paths(dt)
        removes: list[RemoveAction] = []
        if len(files) >= COMPACT_LOG_AFTER_FILES:
            # Fold the whole log into one file in the same commit, so readers open few files.
            everything = [e.to_row(e.log_version) for e in state.entries]
            row = pa.Table.from_pylist([*everything, entry.to_row(log_version)], schema=LOG_SCHEMA)
            now = int(datetime.now(UTC).timestamp() * 1000)
            removes = [RemoveAction(path=f, data_change=False, deletion_timestamp=now) for f in files]
        adds = write_parquet_files(self.location, self.name, row, f"log{log_version}")
        actions: list[AddAction | RemoveAction] = [
            AddAction(a.path, a.size, {}, a.modification_time, True, a.stats) for a in adds
        ]
        try:
            dt.create_write_transaction(
                [*actions, *removes],
                mode="append",
                schema=LOG_SCHEMA,
                commit_properties=CommitProperties(
                    max_commit_retries=0,
                    custom_metadata={
                        "mmp.event": entry.event,
                        "mmp.publish_seq": str(entry.publish_seq),
                        HEAD_KEY: LogHead.of(new_state).to_json(),
                    },
                ),
            )
        except CommitFailedError:
            for add in adds:  # our file never became part of the log
                self.location.delete_file(f"{self.name}/{add.path}")
            return None
        self._tables.refresh_later([self.name])  # the next append or load needs the handle at our commit
        # We know exactly what the commit holds: the next load need not read it back.
        kept = frozenset() if removes else frozenset(files)
        with self._lock:
            if self._cached is None or self._cached[0].version < log_version:
                self._cached = (new_state, kept | {a.path for a in adds})
        return new_state


def _missing_audit_column(dt: DeltaTable) -> bool:
    """Add ``audit`` to a log created before it existed (once; idempotent across racing writers)."""
    if "audit" in pa.schema(dt.schema().to_arrow()).names:
        return False
    from deltalake import Field

    with contextlib.suppress(CommitFailedError):  # another writer added it (or appended) first
        dt.alter.add_columns(
            [Field.from_arrow(LOG_SCHEMA.field("audit"))], commit_properties=CommitProperties(max_commit_retries=0)
        )
    return True
