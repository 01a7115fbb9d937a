"""Backpressure: the project's dagster.yaml run queue, applied by a real ``dagster-daemon`` to a real sensor
tick of 20 batches. The runs are queued and launched under the configured limits (one ingest run at a time
on this 2-core machine), never all at once."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
IN_PROGRESS = {dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED}


@pytest.mark.parametrize("instance_file", ["dagster.yaml", "deploy/postgres/dagster.yaml"])
def test_the_shipped_run_queue_policy_is_explicit(instance_file: str) -> None:
    """Both single-machine instances (SQLite and PostgreSQL storage) queue runs the machine can carry."""
    config = yaml.safe_load((REPO / instance_file).read_text())
    runs = config["concurrency"]["runs"]
    assert runs["max_concurrent_runs"] == 2
    assert {"key": "mm/kind", "value": "ingest", "limit": 1} in runs["tag_concurrency_limits"]


@pytest.mark.slow
def test_a_20_batch_tick_is_queued_under_the_configured_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home, folder = tmp_path / "home", tmp_path / "media"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    for i in range(20):
        (folder / f"f{i:02d}.txt").parent.mkdir(exist_ok=True)
        (folder / f"f{i:02d}.txt").write_text(f"object {i}")
    (tmp_path / "workspace.yaml").write_text(
        f"load_from:\n  - python_file:\n      relative_path: {REPO / 'tests/queue_probe/definitions.py'}\n"
        f"      working_directory: {REPO}\n"
    )
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "MM_LAKE": str(tmp_path / "lake"),
        "MM_SOURCE": str(folder),
        "MM_PROBE_SLEEP_S": "2",
        "PYTHONPATH": str(REPO),
    }
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    instance = dg.DagsterInstance.get()  # creates the SQLite storage before the daemon opens it (no race)
    daemon_exe = Path(sys.executable).parent / "dagster-daemon"
    with open(tmp_path / "daemon.log", "wb") as log:
        daemon = subprocess.Popen(
            [str(daemon_exe), "run", "-w", str(tmp_path / "workspace.yaml")],
            env=env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    max_running, max_queued, succeeded = 0, 0, 0
    try:
        with instance:
            assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 2  # type: ignore[union-attr]
            deadline = time.monotonic() + 150
            while time.monotonic() < deadline and succeeded < 2 and daemon.poll() is None:
                runs = instance.get_runs()
                running = [r for r in runs if r.status in IN_PROGRESS]
                max_running = max(max_running, len(running))
                max_queued = max(max_queued, sum(r.status == dg.DagsterRunStatus.QUEUED for r in runs))
                succeeded = sum(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
                assert not [r for r in runs if r.status == dg.DagsterRunStatus.FAILURE], (
                    tmp_path / "daemon.log"
                ).read_text()[-3000:]
                time.sleep(0.3)
            runs = instance.get_runs()
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        try:
            daemon.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait()
    assert succeeded >= 2, (tmp_path / "daemon.log").read_text()[-3000:]
    assert len(runs) == 20 and all(r.tags.get("mm/kind") == "ingest" for r in runs)
    assert max_queued >= 18  # the tick's 20 requests waited in the queue ...
    assert max_running == 1  # ... and ran one at a time: the ingest tag limit of the shipped dagster.yaml
