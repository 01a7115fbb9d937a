"""Scale-out on Dagster's own engines, with real services on 127.0.0.1 and tiny media and models.

- `mmp ingest --parallel 2` over four batches: each batch a Dagster run launched through the instance's
  run launcher (SQLite instance), everything published once, every batch reported;
- two runs of one partition lined up at their stage tickets, then publishing together: one publishes, the
  other is a no-op naming the winner, and no row of the loser's stage is ever visible;
- the Celery profile (deploy/celery): Redis broker, PostgreSQL instance, a lake on SeaweedFS S3, two
  `dagster-celery` workers; eight batches submitted at once are published exactly once, with gapless
  snapshots, both workers running steps and loading their models once;
- a worker SIGKILLed in the middle of a staging task: its task goes back to the queue (late acks), another
  worker runs it, and the batch still publishes exactly once.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
from PIL import Image

from mm_platform.catalog import open_lake
from mm_platform.ingest.batches import load_manifest
from mm_platform.ingest.scan import PlannedBatch, plan_batches
from mm_platform.lake import Lake
from mm_platform.orchestration.launch import launch_batches
from mm_platform.orchestration.runner import BatchRun
from mm_platform.sources import LocalFolderSource
from tests.postgres import PgDatabase
from tests.services import S3Endpoint, free_port
from tests.tiny_clip import build_tiny_clip

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
DEFINITIONS = "tests/scale_out_definitions.py"
MMP = Path(sys.executable).parent / "mmp"
CELERY = Path(sys.executable).parent / "dagster-celery"
QUIET = {"GX_ANALYTICS_ENABLED": "false", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_clip(tmp_path_factory.mktemp("clip"))


def _images(folder: Path, n: int, offset: int = 0) -> Path:
    """n small distinct images (a few hundred bytes each)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(offset, offset + n):
        Image.new("RGB", (48, 32), ((37 * i) % 256, (91 * i) % 256, (53 * i) % 256)).save(folder / f"img-{i:03d}.png")
    return folder


def _plan(lake: Lake, folder: Path, max_objects: int) -> list[PlannedBatch]:
    return plan_batches(lake, LocalFolderSource(folder), max_objects=max_objects, deletions=False).batches


def _assert_published_once(lake: Lake, batches: list[str], objects: int) -> None:
    """Every batch published exactly once, snapshots 1..N without gaps, every object once in media."""
    published = lake.state().published()
    assert sorted(e.partition for e in published if e.partition in batches) == sorted(batches)
    seqs = [e.publish_seq for e in published]
    assert seqs == list(range(1, len(seqs) + 1)), seqs
    media = lake.snapshot().table("media", columns=["media_id", "partition"])
    assert media.num_rows == objects
    assert len(set(media.column("media_id").to_pylist())) == objects


def test_mmp_ingest_parallel_2_runs_four_batches_as_dagster_runs(tiny_clip: Path, tmp_path: Path) -> None:
    folder = _images(tmp_path / "media", 8)
    lake_uri = str(tmp_path / "lake")
    home = tmp_path / "home"
    env = {**os.environ, **QUIET, "DAGSTER_HOME": str(home), "MMP_TEST_CLIP": str(tiny_clip)}
    args = ["--lake", lake_uri, "ingest", str(folder), "--max-objects", "2", "--parallel", "2"]
    run = subprocess.run(
        [str(MMP), *args, "--definitions", DEFINITIONS, "--json"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=420,
    )
    assert run.returncode == 0, f"mmp ingest failed:\n{run.stdout[-3000:]}\n{run.stderr[-5000:]}"
    summary = json.loads(run.stdout)
    batches = summary["batches"]
    assert len(batches) == 4 and all(b["success"] and b["objects"] == 2 for b in batches), batches
    assert sorted(b["publish_seq"] for b in batches) == [1, 2, 3, 4]
    _assert_published_once(open_lake(lake_uri), [b["batch"] for b in batches], 8)

    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = [instance.get_run_by_id(b["run_id"]) for b in batches]
        assert all(r is not None and r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
        assert len({r.tags["mmp/ingest"] for r in runs if r is not None}) == 1  # one invocation
        assert {r.tags["dagster/partition"] for r in runs if r is not None} == {b["batch"] for b in batches}
        # Launched runs: each executed in its own run worker process, not in `mmp`.
        pids = {
            match.group(1)
            for r in runs
            if r is not None
            for rec in instance.all_logs(r.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)
            if rec.dagster_event is not None
            and (match := re.search(r"Started process for run \(pid: (\d+)\)", rec.dagster_event.message or ""))
        }
        assert len(pids) == 4


def test_two_runs_of_one_partition_never_publish_each_others_stage(
    tiny_clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake_uri = str(tmp_path / "lake")
    lake = open_lake(lake_uri)
    [batch] = _plan(lake, _images(tmp_path / "media", 3), max_objects=10)
    # Both runs stage, then wait for each other at their stage tickets, then publish at the same moment.
    for key, value in {**QUIET, "MM_LAKE": lake_uri, "MMP_TEST_CLIP": str(tiny_clip)}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("MMP_FAULT_PAUSE_AT", "after_ticket")
    monkeypatch.setenv("MMP_FAULT_BARRIER_DIR", str(tmp_path / "barrier"))
    (tmp_path / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        launched = launch_batches(
            instance, DEFINITIONS, [batch, batch], parallel=2, working_directory=REPO, timeout_s=400
        )
        runs = list(launched)
        assert len(runs) == 2 and all(r.success for r in runs), runs
        published = {r.run_id: r.metadata["published_snapshot"] for r in runs}
    assert len(os.listdir(tmp_path / "barrier")) == 2  # both really were in flight together

    entries = [e for e in lake.state().published() if e.partition == batch.batch_id]
    assert len(entries) == 1, "one publish of the partition, never two"
    winner = entries[0].run_id
    [loser] = [run_id for run_id in published if run_id != winner]
    assert published[winner]["noop"] is False and published[winner]["publish_seq"] == 1
    assert published[loser]["superseded_by_run"] == winner and published[loser]["publish_seq"] == 1
    snapshot = lake.snapshot()
    for table in ("media", "metadata", "derived", "embeddings"):  # no row of the loser's stage, anywhere
        assert set(snapshot.table(table, columns=["run_id"]).column("run_id").to_pylist()) == {winner}, table
    _assert_published_once(lake, [batch.batch_id], 3)
    listed = list(LocalFolderSource(tmp_path / "media").list_objects())
    assert list(load_manifest(lake.location, batch.batch_id).objects) == listed


# --- the Celery profile ------------------------------------------------------------------------------------


@dataclass
class CeleryCluster:
    """Redis, a PostgreSQL-backed Dagster home, a lake on SeaweedFS, and the environment workers share."""

    env: dict[str, str]
    home: Path
    lake_uri: str
    root: Path
    workers: list[subprocess.Popen[bytes]]

    def start_worker(self, name: str, config: Path, **extra: str) -> subprocess.Popen[bytes]:
        log = open(self.root / f"worker-{name}.log", "wb")  # noqa: SIM115  (closed with the process)
        proc = subprocess.Popen(
            [
                str(CELERY),
                "worker",
                "start",
                "-A",
                "dagster_celery.app",
                "-n",
                name,
                "-y",
                str(config),
                "--",
                "--pool=solo",
            ],
            cwd=REPO,
            env={**self.env, **extra},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.workers.append(proc)
        deadline = time.monotonic() + 120
        while b"ready." not in (self.root / f"worker-{name}.log").read_bytes():
            assert proc.poll() is None, (self.root / f"worker-{name}.log").read_text()[-3000:]
            assert time.monotonic() < deadline, f"worker {name} did not get ready"
            time.sleep(0.3)
        return proc

    def stop_workers(self, sig: int = signal.SIGTERM) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                os.killpg(proc.pid, sig)
        for proc in self.workers:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.workers.clear()

    def instance(self) -> dg.DagsterInstance:
        return dg.DagsterInstance.from_config(str(self.home))

    def plan(self, folder: Path, max_objects: int) -> list[PlannedBatch]:
        return _plan(open_lake(self.lake_uri, self.env), folder, max_objects)


def _worker_config(root: Path, visibility_timeout_s: int) -> Path:
    text = (REPO / "deploy" / "celery" / "worker.yaml").read_text()
    path = root / f"worker-{visibility_timeout_s}.yaml"
    path.write_text(text.replace("visibility_timeout: 3600", f"visibility_timeout: {visibility_timeout_s}"))
    return path


@pytest.fixture(scope="module")
def celery_cluster(
    pg_database: PgDatabase,
    seaweedfs_endpoint: S3Endpoint,
    tiny_clip: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[CeleryCluster]:
    root = tmp_path_factory.mktemp("celery")
    port = free_port()
    redis_dir = root / "redis"
    setup = subprocess.run(
        [str(REPO / "scripts" / "ensure_redis.sh")],
        env={**os.environ, "MMP_REDIS_PORT": str(port), "MMP_REDIS_DIR": str(redis_dir)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert setup.returncode == 0, setup.stdout + setup.stderr
    if not (redis_dir / "redis.pid").exists():
        pytest.skip(f"no Redis could be started: {setup.stdout} {setup.stderr}")
    home = root / "home"
    home.mkdir()
    shutil.copy(REPO / "deploy" / "celery" / "dagster.yaml", home / "dagster.yaml")
    bucket = seaweedfs_endpoint.create_bucket(f"celery-{uuid.uuid4().hex[:8]}")
    lake_uri = f"s3://{bucket}/lake"
    env = {
        **os.environ,
        **QUIET,
        **pg_database.env(),
        **seaweedfs_endpoint.env(),
        "DAGSTER_HOME": str(home),
        "MM_LAKE": lake_uri,
        "MMP_TEST_CLIP": str(tiny_clip),
        "MMP_TEST_EXECUTOR": "celery",
        "PATH": f"{CELERY.parent}{os.pathsep}{os.environ.get('PATH', '')}",  # dagster-celery runs `celery`
        "MMP_CELERY_BROKER": f"redis://127.0.0.1:{port}/0",
        "MMP_CELERY_BACKEND": f"redis://127.0.0.1:{port}/1",
    }
    cluster = CeleryCluster(env, home, lake_uri, root, [])
    saved = dict(os.environ)
    os.environ.update(env)  # the run processes `launch_batches` starts inherit it
    try:
        yield cluster
    finally:
        cluster.stop_workers(signal.SIGKILL)
        os.environ.clear()
        os.environ.update(saved)
        pid = int((redis_dir / "redis.pid").read_text())
        os.kill(pid, signal.SIGTERM)


def _celery_hosts(instance: dg.DagsterInstance, run_id: str, step: str) -> list[str]:
    """The workers that ran ``step`` of the run (dagster-celery reports each task's worker)."""
    hosts = []
    for rec in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        event = rec.dagster_event
        if event is not None and event.step_key == step and "Celery worker" in (event.engine_event_data.metadata or {}):
            hosts.append(str(event.engine_event_data.metadata["Celery worker"].value))
    return hosts


def test_celery_workers_publish_eight_concurrent_batches_exactly_once(
    celery_cluster: CeleryCluster, tmp_path: Path
) -> None:
    config = _worker_config(celery_cluster.root, 3600)
    for name in ("w1", "w2"):
        celery_cluster.start_worker(name, config)
    batches = celery_cluster.plan(_images(tmp_path / "media", 16), max_objects=2)
    assert len(batches) == 8
    try:
        with celery_cluster.instance() as instance:
            launched = launch_batches(instance, DEFINITIONS, batches, parallel=8, working_directory=REPO, timeout_s=480)
            runs = list(launched)
            assert all(r.success for r in runs), [(r.batch_id, r.failed_checks) for r in runs]
            hosts = {h.split("@")[0] for r in runs for h in _celery_hosts(instance, r.run_id, "staged_batch")}
            processes: dict[str, list[int]] = {}
            for r in runs:
                raw = r.metadata["raw_media"]
                processes.setdefault(str(raw["process"]), []).append(int(raw["embedders_loaded_in_process"]))
    finally:
        celery_cluster.stop_workers()
    lake = open_lake(celery_cluster.lake_uri, celery_cluster.env)
    _assert_published_once(lake, [b.batch_id for b in batches], 16)
    assert hosts == {"w1", "w2"}, "both workers ran staging steps"
    # Each worker process loaded the (two views of the) model once and kept it across its tasks.
    assert len(processes) == 2 and all(set(loads) == {2} for loads in processes.values()), processes


def test_a_worker_killed_mid_staging_still_publishes_the_batch_once(
    celery_cluster: CeleryCluster, tmp_path: Path
) -> None:
    config = _worker_config(celery_cluster.root, 8)  # the killed worker's task returns to the queue after 8 s
    ready = tmp_path / "victim-ready"
    victim = celery_cluster.start_worker(
        "victim", config, MMP_FAULT_PAUSE_AT="after_stage", MMP_FAULT_READY_FILE=str(ready)
    )
    before = open_lake(celery_cluster.lake_uri, celery_cluster.env).published_seq()
    [batch] = celery_cluster.plan(_images(tmp_path / "media", 3, offset=100), max_objects=10)
    try:
        with celery_cluster.instance() as instance:
            result: list[BatchRun] = []
            thread = threading.Thread(
                target=lambda: result.extend(
                    launch_batches(instance, DEFINITIONS, [batch], parallel=1, working_directory=REPO, timeout_s=400)
                )
            )
            thread.start()
            deadline = time.monotonic() + 240
            while not ready.exists():
                assert time.monotonic() < deadline, "the victim never reached the middle of its staging task"
                assert thread.is_alive(), result
                time.sleep(0.2)
            celery_cluster.start_worker("rescuer", config)
            os.killpg(victim.pid, signal.SIGKILL)  # the whole worker: its main process and its pool process
            thread.join(timeout=300)
            assert not thread.is_alive(), "the batch did not finish after its worker was killed"
            [run] = result
            assert run.success
            hosts = {h.split("@")[0] for h in _celery_hosts(instance, run.run_id, "staged_batch")}
    finally:
        celery_cluster.stop_workers()
    assert hosts == {"victim", "rescuer"}, hosts
    lake = open_lake(celery_cluster.lake_uri, celery_cluster.env)
    entries = [e for e in lake.state().published() if e.partition == batch.batch_id]
    assert len(entries) == 1 and entries[0].publish_seq == before + 1
    media = lake.snapshot().table("media", columns=["media_id", "partition"]).to_pylist()
    assert sum(1 for m in media if m["partition"] == batch.batch_id) == 3
