"""One table's commit of a publish: the stage's files (or a restore) with an app transaction per publish seq,
so applying a publish twice (a roll-forward after a crash) commits once."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, PostCommitHookProperties, Transaction
from deltalake.exceptions import CommitFailedError
from deltalake.transaction import AddAction, RemoveAction

from mm_platform.errors import StorageError
from mm_platform.lake.handles import LatestTables
from mm_platform.lake.operations import Restore
from mm_platform.lake.stage import Stage
from mm_platform.lake.table_state import files_after
from mm_platform.log import get_logger, kv

APP_ID = "mm_platform.publish"
# Checkpoints as configured (every 10 commits), but no expired-log cleanup at commit: that would make
# versions older than 30 days unloadable while a retained snapshot may still pin them. `vacuum` purges the
# log below the oldest retained snapshot instead.
COMMIT_HOOKS = PostCommitHookProperties(create_checkpoint=True, cleanup_expired_logs=False)

log = get_logger("mm_platform.lake.publish")


def commit_table(
    tables: LatestTables, name: str, stage: Stage, seq: int
) -> tuple[int, tuple[pa.Table, pa.Schema] | None]:
    """Commit the stage's change of table ``name`` for publish ``seq`` (at most once: an app transaction).

    Returns the version the table is at after this publish's commit and, when this call made the
    commit, the files and schema of that version (worked out from the version it replaced).
    """
    for attempt in range(1, 50):
        # The freshness check refreshed the handle moments ago; a stale one only fails the CAS below.
        dt = tables.current(name) if attempt == 1 else tables.latest(name)
        read_version = dt.version()
        applied = dt.transaction_version(APP_ID)
        if applied is not None and applied >= seq:
            return read_version, None
        props = CommitProperties(
            max_commit_retries=0,
            app_transactions=[Transaction(APP_ID, seq)],
            custom_metadata={"mmp.publish_seq": str(seq), "mmp.partition": stage.partition, "mmp.kind": stage.kind},
        )
        files: tuple[pa.Table, pa.Schema] | None = None
        try:
            if isinstance(stage.operation, Restore):
                target = stage.operation.versions[name]
                if target == read_version:
                    return target, None
                dt.restore(target, commit_properties=props, post_commithook_properties=COMMIT_HOOKS)
            else:
                staged = stage.tables[name]
                if evolve_schema(dt, staged.schema):
                    continue  # the table moved on by one version; decide again
                now = int(datetime.now(UTC).timestamp() * 1000)
                actions: list[AddAction | RemoveAction] = [
                    AddAction(a.path, a.size, {}, a.modification_time, True, a.stats) for a in staged.adds
                ]
                actions += [
                    RemoveAction(path=r.path, data_change=True, deletion_timestamp=now, size=r.size)
                    for r in staged.removes
                ]
                files = (
                    files_after(dt, [(a.path, a.size) for a in staged.adds], [r.path for r in staged.removes]),
                    pa.schema(dt.schema().to_arrow()),
                )
                dt.create_write_transaction(
                    actions,
                    mode="append",
                    schema=staged.schema,
                    commit_properties=props,
                    post_commithook_properties=COMMIT_HOOKS,
                )
        except CommitFailedError:
            backoff(attempt)
            continue
        log.info("applied %s", kv(table=name, seq=seq, partition=stage.partition))
        # Compare-and-swap: the commit landed exactly one version after the one we read.
        return read_version + 1, files
    raise StorageError(f"table {name}: could not apply publish {seq}", hint="run `mmp status` to roll it forward")


def evolve_schema(dt: DeltaTable, target: pa.Schema) -> bool:
    """Add the stage's new columns in a commit of their own (readers pin versions, so it is invisible).

    Returns True when a column was added. Idempotent: a roll-forward finds the columns already there.
    """
    current = set(pa.schema(dt.schema().to_arrow()).names)
    missing = [f.with_nullable(True) for f in target if f.name not in current]
    if not missing:
        return False
    from deltalake import Field

    dt.alter.add_columns(
        [Field.from_arrow(f) for f in missing], commit_properties=CommitProperties(max_commit_retries=0)
    )
    return True


def backoff(attempt: int) -> None:
    time.sleep(min(2.0, 0.02 * 2 ** min(attempt, 7)) * random.uniform(0.5, 1.5))
