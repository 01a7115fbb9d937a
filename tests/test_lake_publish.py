"""The lake's write–audit–publish protocol on a local folder and on a real S3 API (moto on 127.0.0.1):
publish and read, idempotency, partition replacement, the audit gate, time travel, rollback, vacuum,
schema evolution and errors that name what to fix."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from mm_platform.catalog import open_lake
from mm_platform.errors import AuditFailedError, SnapshotNotFoundError, StageError, StaleStageError
from mm_platform.lake import AuditContext, CheckResult, Lake, RowFilter, TableWrite
from mm_platform.lake.stage_writer import StageWriter
from tests.factories import partition_rows, partition_writes
from tests.lake_assertions import (
    assert_log_has_no_gap,
    assert_no_duplicate_keys,
    partition_counts,
    snapshot_content,
)


@pytest.fixture
def lake(lake_env: tuple[str, dict[str, str]]) -> Lake:
    uri, env = lake_env
    return open_lake(uri, env)


def test_publish_is_visible_only_as_a_whole(lake: Lake) -> None:
    empty = lake.snapshot()
    assert empty.seq == 0 and empty.table("media").num_rows == 0

    result = lake.publish("b1", partition_writes("b1", 40, run_id="r1"), run_id="r1")
    snap = lake.snapshot()
    assert snap.seq == result.seq == 1
    assert {n: snap.table(n).num_rows for n in ("media", "metadata", "embeddings")} == {
        "media": 40,
        "metadata": 40,
        "embeddings": 40,
    }
    assert set(snap.table("media").column("run_id").to_pylist()) == {"r1"}
    assert_log_has_no_gap(lake)


def test_republishing_the_same_stage_is_a_noop(lake: Lake) -> None:
    first = lake.publish("b1", partition_writes("b1", 25))
    versions = dict(lake.snapshot().table_versions)
    again = lake.publish("b1", partition_writes("b1", 25))
    assert again.noop and again.seq == first.seq
    assert lake.snapshot().table_versions == versions
    assert [e.event for e in lake.state().entries].count("published") == 1


def test_republishing_a_partition_replaces_its_rows(lake: Lake) -> None:
    lake.publish("b1", partition_writes("b1", 30))
    lake.publish("b2", partition_writes("b2", 20))
    lake.publish("b1", partition_writes("b1", 12, seed=7))  # new content for b1
    snap = lake.snapshot()
    assert partition_counts(snap, "media") == {"b1": 12, "b2": 20}
    assert partition_counts(snap, "embeddings") == {"b1": 12, "b2": 20}
    assert_no_duplicate_keys(snap)


def test_key_replacement_rewrites_only_the_matching_rows(lake: Lake) -> None:
    lake.publish("b1", partition_writes("b1", 10))
    snap = lake.snapshot()
    media = snap.table("media")
    victim = media.column("media_id")[3].as_py()
    updated = media.filter(pc.equal(media.column("media_id"), victim))
    updated = updated.set_column(updated.schema.get_field_index("etag"), "etag", pa.array(["new-etag"]))
    updated = updated.set_column(updated.schema.get_field_index("partition"), "partition", pa.array(["b2"]))
    lake.publish("b2", {"media": TableWrite(updated, replace=(RowFilter("media_id", (victim,)),))})
    after = lake.snapshot().table("media")
    assert after.num_rows == 10
    row = after.filter(pc.equal(after.column("media_id"), victim)).to_pylist()
    assert len(row) == 1 and row[0]["etag"] == "new-etag"


def _data_files(lake: Lake, table: str) -> set[str]:
    return {f.base_name for f in lake.location.list_files(table) if f.base_name.endswith(".parquet")}


def _rewritten_ahead(writer: StageWriter) -> None:
    """Wait until the early re-write of ``media`` has written its files (it may not have started yet)."""
    rewrite = writer._tables["media"].rewrite
    assert rewrite is not None
    _, adds = rewrite.result.result()
    assert len(adds) == 1  # the 9 rows the replaced file keeps


def test_rows_replaced_ahead_follow_later_filters_and_leave_no_stray_files(lake: Lake) -> None:
    """A stage re-writes what it replaces as soon as a write names it (beside the rest of the batch's work);
    a later write that replaces more, or an abandoned stage, must not leave that early work behind."""
    lake.publish("b1", partition_writes("b1", 10))
    ids = lake.snapshot().table("media").column("media_id").to_pylist()
    before = _data_files(lake, "media")

    abandoned = lake.stage_writer("b2")
    abandoned.write("media", lake.catalog["media"].schema.empty_table(), replace=(RowFilter("media_id", (ids[0],)),))
    _rewritten_ahead(abandoned)
    abandoned.abandon()
    assert _data_files(lake, "media") == before

    writer = lake.stage_writer("b2")
    writer.write("media", lake.catalog["media"].schema.empty_table(), replace=(RowFilter("media_id", (ids[0],)),))
    _rewritten_ahead(writer)
    writer.write("media", lake.catalog["media"].schema.empty_table(), replace=(RowFilter("media_id", (ids[1],)),))
    stage = writer.finish()
    lake.publish_stage(stage)
    after = lake.snapshot().table("media").column("media_id").to_pylist()
    assert sorted(after) == sorted(ids[2:])
    staged = {add.path for add in stage.tables["media"].adds}
    assert _data_files(lake, "media") == before | staged  # the first, superseded re-write is gone


def _finite_vectors(context: AuditContext) -> CheckResult:
    rows = context.staged.get("embeddings")
    if rows is None:
        return CheckResult(name="finite_vectors", passed=True)
    bad = [
        r["subject_id"]
        for r in rows.select(["subject_id", "vector"]).to_pylist()
        if not np.all(np.isfinite(np.asarray(r["vector"], dtype=np.float32)))
    ]
    return CheckResult(
        name="finite_vectors",
        table="embeddings",
        passed=not bad,
        detail=f"{len(bad)} vector(s) contain NaN or inf",
        failing_rows=[{"subject_id": s} for s in bad],
    )


def test_audit_failure_publishes_nothing_and_records_why(lake: Lake) -> None:
    lake.publish("good", partition_writes("good", 10), checks=[_finite_vectors])
    before = snapshot_content(lake.snapshot())

    rows = partition_rows("bad", 10)
    vectors = rows["embeddings"].column("vector").to_pylist()
    vectors[4] = [float("nan")] * len(vectors[4])
    rows["embeddings"] = rows["embeddings"].set_column(
        rows["embeddings"].schema.get_field_index("vector"), "vector", pa.array(vectors, pa.list_(pa.float32()))
    )
    writes = {name: TableWrite(table) for name, table in rows.items()}
    with pytest.raises(AuditFailedError) as failure:
        lake.publish("bad", writes, checks=[_finite_vectors])
    assert "finite_vectors" in str(failure.value) and "1 vector(s)" in str(failure.value)
    assert (
        failure.value.failures[0]["failing_rows"][0]["subject_id"] == rows["embeddings"].column("subject_id")[4].as_py()
    )

    assert lake.snapshot().seq == 1
    assert snapshot_content(lake.snapshot()) == before
    rejected = [e for e in lake.state().entries if e.event == "rejected"]
    assert len(rejected) == 1 and rejected[0].partition == "bad" and "NaN" in (rejected[0].message or "")
    assert lake.status()["last_rejected"]["partition"] == "bad"


def test_time_travel_and_rollback_return_the_original_tables(lake: Lake) -> None:
    lake.publish("b1", partition_writes("b1", 15))
    at_1 = snapshot_content(lake.snapshot())
    time.sleep(0.01)
    between = datetime.now(UTC)
    lake.publish("b2", partition_writes("b2", 15))
    lake.publish("b1", partition_writes("b1", 5, seed=3))
    at_3 = snapshot_content(lake.snapshot())

    assert snapshot_content(lake.snapshot(seq=1)) == at_1
    assert snapshot_content(lake.snapshot(as_of=between)) == at_1

    rolled = lake.rollback(1)
    assert rolled.seq == 4
    assert snapshot_content(lake.snapshot()) == at_1
    assert snapshot_content(lake.snapshot(seq=3)) == at_3  # history is not rewritten

    # Publishing after a rollback builds on the rolled-back content, not on what was undone.
    lake.publish("b3", partition_writes("b3", 4))
    assert partition_counts(lake.snapshot(), "media") == {"b1": 15, "b3": 4}
    # And rolling back the rollback is one more publish.
    lake.rollback(3)
    assert snapshot_content(lake.snapshot()) == at_3
    assert_log_has_no_gap(lake)

    with pytest.raises(SnapshotNotFoundError, match="seq 99"):
        lake.snapshot(seq=99)


def test_vacuum_keeps_every_retained_snapshot_readable(lake: Lake) -> None:
    lake.publish("b1", partition_writes("b1", 10))
    lake.publish("b1", partition_writes("b1", 8, seed=1))  # replaces b1's files
    lake.publish("b2", partition_writes("b2", 6))
    contents = {s.seq: snapshot_content(s) for s in lake.snapshots()}
    # An abandoned stage: files written, never published.
    lake.stage("orphan", partition_writes("orphan", 5))

    report = lake.vacuum(min_age_hours=0)
    assert report.files_deleted["media"] >= 1  # the orphan's file
    for seq, content in contents.items():
        assert snapshot_content(lake.snapshot(seq=seq)) == content

    report = lake.vacuum(min_age_hours=0, keep_last=1)
    assert report.expired_below_seq == 3
    assert report.files_deleted["media"] >= 1  # snapshot 1's replaced file
    assert snapshot_content(lake.snapshot()) == contents[3]
    with pytest.raises(Exception, match="vacuumed"):
        lake.snapshot(seq=1)
    # The Delta log before the oldest retained snapshot went too; that snapshot still loads through Delta.
    kept = lake.snapshot()
    log_versions = [
        int(info.base_name[:20])
        for info in lake.location.list_files("media/_delta_log")
        if info.base_name.endswith(".json") and info.base_name[:20].isdigit()
    ]
    assert min(log_versions) == kept.version_of("media")
    assert kept.delta_table("media").count() == len(contents[3]["media"])


def test_schema_evolution_adds_columns_without_a_migration(lake: Lake) -> None:
    lake.publish("b1", partition_writes("b1", 5))
    rows = partition_rows("b2", 5)
    rows["metadata"] = rows["metadata"].append_column("bit_depth", pa.array([8] * 5, pa.int64()))
    lake.publish("b2", {name: TableWrite(table) for name, table in rows.items()})
    metadata = lake.snapshot().table("metadata")
    assert "bit_depth" in metadata.column_names
    by_partition = {r["partition"]: r["bit_depth"] for r in metadata.select(["partition", "bit_depth"]).to_pylist()}
    assert by_partition == {"b1": None, "b2": 8}


def test_bad_rows_are_refused_with_the_table_and_column_named(lake: Lake) -> None:
    rows = partition_rows("b1", 3)
    with pytest.raises(StageError, match="table media, partition b1: required column 'uri'"):
        lake.publish("b1", {"media": TableWrite(rows["media"].drop_columns(["uri"]))})
    duplicated = pa.concat_tables([rows["media"], rows["media"].slice(0, 1)])
    with pytest.raises(StageError, match="1 duplicate key"):
        lake.publish("b1", {"media": TableWrite(duplicated)})
    assert lake.snapshot().seq == 0


def test_stage_writer_streams_chunks_into_one_atomic_publish(lake: Lake) -> None:
    rows = partition_rows("big", 30)
    writer = lake.stage_writer("big")
    for start in range(0, 30, 7):  # chunks, as a streaming pipeline produces them
        chunk = {name: table.slice(start, 7) for name, table in rows.items()}
        if start == 28:  # a later chunk brings a new column: earlier chunks read it as null
            chunk["metadata"] = chunk["metadata"].append_column("bit_depth", pa.array([8] * 2, pa.int64()))
        for name, table in chunk.items():
            writer.write(name, table, replace=(RowFilter("partition", ("big",)),))
    stage = writer.finish()
    assert lake.snapshot().seq == 0  # staged, not visible
    lake.publish_stage(stage)
    snap = lake.snapshot()
    assert {n: snap.table(n).num_rows for n in ("media", "metadata", "embeddings")} == dict.fromkeys(
        ("media", "metadata", "embeddings"), 30
    )
    assert snap.table("metadata").column("bit_depth").null_count == 28

    duplicate = lake.stage_writer("dup")
    duplicate.write("media", rows["media"].slice(0, 5))
    with pytest.raises(StageError, match="1 duplicate key"):
        duplicate.write("media", rows["media"].slice(4, 3))
    duplicate.abandon()


def test_compaction_rewrites_small_files_in_one_publish(lake: Lake) -> None:
    for i in range(10):
        lake.publish(f"b{i}", partition_writes(f"b{i}", 5, seed=i))
    before = snapshot_content(lake.snapshot())
    report = lake.compact(min_files=4)
    assert report.publish_seq == 11
    assert report.files_before["media"] == 10 and report.files_after["media"] == 1
    assert snapshot_content(lake.snapshot()) == before  # same rows, fewer files
    assert snapshot_content(lake.snapshot(seq=10)) == before  # the old layout stays readable
    lake.publish("b3", partition_writes("b3", 2, seed=99))  # replacing a partition inside a compacted file
    assert partition_counts(lake.snapshot(), "media")["b3"] == 2
    assert sum(partition_counts(lake.snapshot(), "media").values()) == 47


def test_a_publish_compacts_a_table_it_left_crowded_with_small_files(lake: Lake) -> None:
    lake.auto_compact_files = 4
    for i in range(4):
        result = lake.publish(f"b{i}", partition_writes(f"b{i}", 5, seed=i))
    assert result.seq == 4  # the publish itself keeps its number; the compaction came after it
    snap = lake.snapshot()
    assert snap.seq == 5 and snap.kind == "compact"
    assert {name: len(snap.file_uris(name)) for name in ("media", "metadata", "embeddings")} == {
        "media": 1,
        "metadata": 1,
        "embeddings": 1,
    }
    assert snapshot_content(snap) == snapshot_content(lake.snapshot(seq=4))
    assert_no_duplicate_keys(snap)


def test_the_latest_snapshot_comes_from_the_log_head_alone(lake_env: tuple[str, dict[str, str]]) -> None:
    uri, env = lake_env
    writer = open_lake(uri, env)
    assert open_lake(uri, env).snapshot().seq == 0
    writer.publish("b1", partition_writes("b1", 3))
    writer.publish("b2", partition_writes("b2", 3, seed=2))
    with pytest.raises(AuditFailedError):  # a rejection is the newest event: the head still names seq 2
        writer.publish("bad", partition_writes("bad", 3), checks=[lambda _: CheckResult("no", passed=False)])
    writer.rollback(1)

    reader = open_lake(uri, env)  # a fresh process's view: nothing cached
    head = reader.log.head()
    full = reader.log.load()
    assert head.version == full.version
    latest = full.latest_published()
    assert head.latest is not None and latest is not None
    fields = ("publish_seq", "kind", "partition", "stage_id", "table_versions", "created_at", "log_version")
    assert {f: getattr(head.latest, f) for f in fields} == {f: getattr(latest, f) for f in fields}
    assert reader.snapshot().to_dict() == reader.snapshot(seq=head.latest.publish_seq).to_dict()
    assert reader.snapshot().seq == 3 and reader.snapshot().kind == "rollback"

    writer.vacuum(keep_last=1, min_age_hours=0)  # the vacuum event is newest now
    head = open_lake(uri, env).log.head()
    assert head.vacuum_horizon == open_lake(uri, env).log.load().vacuum_horizon() == 3
    assert open_lake(uri, env).snapshot().seq == 3


def test_recorded_table_states_match_the_delta_log(lake: Lake) -> None:
    from mm_platform.lake.files import table_file_paths
    from mm_platform.lake.table_state import read_state, state_path

    for i in range(3):
        lake.publish(f"b{i}", partition_writes(f"b{i}", 4, seed=i))
    lake.publish("b1", partition_writes("b1", 2, seed=7))  # replaces files
    lake.rollback(2)
    lake.compact(min_files=2)
    for snap in lake.snapshots():
        for name in ("media", "metadata", "embeddings"):
            recorded = read_state(lake.location, name, snap.version_of(name))
            assert recorded is not None, f"{name}@{snap.version_of(name)} (snapshot {snap.seq}) has no record"
            assert sorted(recorded[0]) == sorted(table_file_paths(snap.delta_table(name)))
            assert recorded[1] == pa.schema(snap.delta_table(name).schema().to_arrow())
    # Without its record a snapshot reads the same rows from the Delta log.
    latest = lake.snapshot()
    before = snapshot_content(latest)
    for name in ("media", "metadata", "embeddings"):
        lake.location.delete_file(state_path(name, latest.version_of(name)))
    assert snapshot_content(lake.snapshot()) == before


def test_a_cached_table_handle_follows_other_writers_and_a_cut_log(lake: Lake) -> None:
    # A handle cached in one process must see another process's commits, also after log cleanup deleted
    # the commits right after the handle's version (LatestTables skips update_incremental on a stat).
    from mm_platform.lake.handles import LatestTables
    from mm_platform.lake.maintenance import purge_log

    lake.publish("b1", partition_writes("b1", 5, run_id="r1"), run_id="r1")
    cached = LatestTables(lake.location)
    first = cached.latest("media").version()
    assert cached.latest("media").version() == first  # nothing new: the same, current handle

    lake.publish("b2", partition_writes("b2", 5, run_id="r2"), run_id="r2")
    assert cached.latest("media").version() == LatestTables(lake.location).latest("media").version() > first

    behind = LatestTables(lake.location)
    behind_at = behind.latest("media").version()
    for i in range(3, 6):
        lake.publish(f"b{i}", partition_writes(f"b{i}", 5, run_id=f"r{i}"), run_id=f"r{i}")
    newest = LatestTables(lake.location).latest("media").version()
    assert purge_log(lake.location, "media", newest) > 0  # the commits after `behind_at` are gone
    assert not lake.location.exists(f"media/_delta_log/{behind_at + 1:020d}.json")
    assert behind.latest("media").version() == newest
    assert behind.latest("media").to_pyarrow_table().num_rows == 25


def test_the_publishers_handles_are_at_its_commits_when_next_used(lake: Lake) -> None:
    # A delta-rs handle does not follow its own commits; the publisher brings its handles (tables and log)
    # forward in the background, and the next use of one waits for that, never seeing the version before.
    from mm_platform.lake.handles import LatestTables

    for i in range(1, 4):
        lake.publish(f"b{i}", partition_writes(f"b{i}", 5, run_id=f"r{i}"), run_id=f"r{i}")
        fresh = LatestTables(lake.location)
        for name in ("media", "metadata", "embeddings"):
            assert lake.publisher.tables.current(name).version() == fresh.latest(name).version()
        log = lake.publisher.log
        assert log._tables.current(log.name).version() == fresh.latest(log.name).version() == lake.state().version


@pytest.mark.parametrize("dropped", [0, 1, 7, 300, 999, 1000])
def test_rows_without_equals_a_filter_whatever_is_dropped(dropped: int) -> None:
    from mm_platform.lake.files import rows_without

    rng = np.random.default_rng(dropped)
    rows = pa.concat_tables(
        [pa.table({"id": pa.array(range(s, s + 250)), "blob": pa.array([b"x" * 7] * 250)}) for s in range(0, 1000, 250)]
    )
    drop = np.zeros(1000, dtype=bool)
    drop[rng.choice(1000, size=dropped, replace=False)] = True
    mask = pa.chunked_array([drop[:400], drop[400:]])  # a mask read from a file comes chunked
    kept = rows_without(rows, mask)
    assert kept.equals(rows.filter(pc.invert(mask)))
    assert kept.column("id").to_pylist() == np.flatnonzero(~drop).tolist()


def test_a_table_the_publish_leaves_alone_gets_no_commit_but_is_pinned_and_checked(lake: Lake) -> None:
    lake.publish("b1", partition_writes("b1", 10))
    before = lake.snapshot().table_versions["metadata"]
    # A batch that writes no metadata and replaces none: no empty commit, the publish pins the version as is.
    writes = partition_writes("b2", 5)
    writes["metadata"] = TableWrite(writes["metadata"].rows.slice(0, 0), replace=writes["metadata"].replace)
    lake.publish("b2", writes)
    snap = lake.snapshot()
    assert snap.table_versions["metadata"] == before
    assert partition_counts(snap, "media") == {"b1": 10, "b2": 5}
    assert partition_counts(snap, "metadata") == {"b1": 10}
    assert_log_has_no_gap(lake)

    # Still checked for freshness: rows the stage would replace there, published since it was staged, refuse it.
    writes = partition_writes("b3", 4)
    no_metadata = TableWrite(writes["metadata"].rows.slice(0, 0), replace=writes["metadata"].replace)
    staged = lake.stage("b3", {**writes, "metadata": no_metadata})
    lake.publish("b3", {"metadata": writes["metadata"]})
    with pytest.raises(StaleStageError):
        lake.publish_stage(staged.stage)
    assert partition_counts(lake.snapshot(), "metadata") == {"b1": 10, "b3": 4}
