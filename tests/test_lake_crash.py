"""Crash safety and concurrency of the publish protocol, with real processes on a local folder and on two S3
implementations (moto's API and SeaweedFS, a real object store), all on 127.0.0.1.

A publisher process is killed with SIGKILL at every named fault point; a reader must then see exactly the
previous snapshot, and running the same publish again must converge to one copy of every row and one
``published`` event. Four processes publishing four partitions at once must all land, with no gap."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mm_platform.catalog import open_lake
from tests.conftest import lake_location
from tests.lake_assertions import (
    assert_log_has_no_gap,
    assert_no_duplicate_keys,
    partition_counts,
    snapshot_content,
)

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(params=["local", "s3", "seaweedfs"])
def lake_env(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, str]]:
    """The crash suite runs on SeaweedFS as well: conditional puts on a second, real object store."""
    return lake_location(request, tmp_path, request.param)


KILL_POINTS = [
    "after_stage",
    "after_audit",
    "after_intent",
    "after_apply:embeddings",
    "after_apply:media",
    "after_apply:metadata",
    "after_published",
]


def _worker(uri: str, env: dict[str, str], partition: str, rows: int, **extra_env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.publish_worker", "--lake", uri, "--partition", partition, "--rows", str(rows)],
        cwd=REPO,
        env={**env, **extra_env, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _kill_at(uri: str, env: dict[str, str], partition: str, rows: int, point: str, tmp: Path) -> None:
    ready = tmp / f"ready-{point.replace(':', '_')}"
    proc = _worker(uri, env, partition, rows, MMP_FAULT_PAUSE_AT=point, MMP_FAULT_READY_FILE=str(ready))
    deadline = time.monotonic() + 120
    while not ready.exists():
        if proc.poll() is not None:
            raise AssertionError(f"worker exited before {point}: {proc.stderr.read() if proc.stderr else ''}")
        assert time.monotonic() < deadline, f"worker never reached {point}"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL


def _run(uri: str, env: dict[str, str], partition: str, rows: int) -> None:
    proc = _worker(uri, env, partition, rows)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err


@pytest.mark.parametrize("point", KILL_POINTS)
def test_sigkill_at_each_step_leaves_the_previous_snapshot(
    lake_env: tuple[str, dict[str, str]], point: str, tmp_path: Path
) -> None:
    uri, env = lake_env
    lake = open_lake(uri, env)
    _run(uri, env, "p0", 20)
    before = lake.snapshot()
    before_content = snapshot_content(before)

    _kill_at(uri, env, "p1", 30, point, tmp_path)

    after_kill = lake.snapshot()
    if point == "after_published":
        assert after_kill.seq == before.seq + 1  # the publish point had passed
    else:
        assert after_kill.seq == before.seq
        assert after_kill.table_versions == before.table_versions
        assert snapshot_content(after_kill) == before_content

    _run(uri, env, "p1", 30)  # the same publish, run again

    final = lake.snapshot()
    for table in ("media", "metadata", "embeddings"):
        assert partition_counts(final, table) == {"p0": 20, "p1": 30}, table
    assert_no_duplicate_keys(final)
    assert assert_log_has_no_gap(lake) == [1, 2]
    stage_ids = [e.stage_id for e in lake.state().published()]
    assert len(set(stage_ids)) == 2


def test_a_dead_intent_is_rolled_forward_by_the_next_publisher(
    lake_env: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    uri, env = lake_env
    lake = open_lake(uri, env)
    _kill_at(uri, env, "p1", 10, "after_apply:embeddings", tmp_path)
    assert lake.snapshot().seq == 0 and lake.state().open_intent() is not None

    _run(uri, env, "p2", 5)  # another partition: finishes p1 first, then publishes itself

    published = lake.state().published()
    assert [(e.publish_seq, e.partition) for e in published] == [(1, "p1"), (2, "p2")]
    assert partition_counts(lake.snapshot(), "media") == {"p1": 10, "p2": 5}
    assert_log_has_no_gap(lake)


@pytest.mark.slow
def test_four_concurrent_publishers_all_land_without_a_gap(lake_env: tuple[str, dict[str, str]]) -> None:
    uri, env = lake_env
    lake = open_lake(uri, env)
    procs = [_worker(uri, env, f"c{i}", 25) for i in range(4)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    final = lake.snapshot()
    assert final.seq == 4
    for table in ("media", "metadata", "embeddings"):
        assert partition_counts(final, table) == {f"c{i}": 25 for i in range(4)}
    assert_no_duplicate_keys(final)
    assert assert_log_has_no_gap(lake) == [1, 2, 3, 4]
    # Every intermediate snapshot is whole: each partition in it is complete in every table.
    for snap in lake.snapshots():
        counts = [partition_counts(snap, t) for t in ("media", "metadata", "embeddings")]
        assert counts[0] == counts[1] == counts[2]
        assert all(v == 25 for v in counts[0].values()) and len(counts[0]) == snap.seq
