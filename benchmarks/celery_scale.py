"""Scale-out (issue: scale-out): batches per second with 1 vs 2 Celery workers, and the serialized share.

The Celery profile as deployed (deploy/celery): Redis broker, PostgreSQL instance, the project's default
models, batches of real images from the shared media, each batch a Dagster run launched at once
(``launch_batches``), steps on ``dagster-celery`` workers with one task each. Every worker is warmed first
(its models loaded), then M batches are timed from submission to the last run's end. Per batch, the
serialized publish section (the ``intent`` event to its ``published`` event in the publish log) is compared
with the batch's wall time (its run's start to end): that share is what bounds scaling to N machines.

Run: ``.venv/bin/python -m benchmarks.celery_scale [--quick]`` (needs root for Redis/PostgreSQL the first
time: scripts/ensure_*.sh); prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import dagster as dg

from mm_platform.catalog import open_lake
from mm_platform.ingest.scan import PlannedBatch, plan_batches
from mm_platform.lake import Lake
from mm_platform.orchestration.launch import launch_batches
from mm_platform.sources import LocalFolderSource
from tests.services import free_port

REPO = Path(__file__).resolve().parent.parent
DEFINITIONS = "deploy/celery/celery_definitions.py"
BIN = Path(sys.executable).parent
SHARED = Path(os.environ.get("MMP_SHARED_MEDIA", REPO.parent / "shared" / "media")) / "images"


def _pg_env() -> dict[str, str]:
    import psycopg2

    subprocess.run([str(REPO / "scripts" / "ensure_postgres.sh")], check=True, capture_output=True)
    name = f"mmp_bench_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(host="127.0.0.1", port=5432, user="mmp", password="mmp", dbname="mmp_dagster")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name} OWNER mmp")
    admin.close()
    return {
        "DAGSTER_PG_HOST": "127.0.0.1",
        "DAGSTER_PG_PORT": "5432",
        "DAGSTER_PG_USERNAME": "mmp",
        "DAGSTER_PG_PASSWORD": "mmp",
        "DAGSTER_PG_DB": name,
    }


def _batches(lake: Lake, folder: Path, per_batch: int) -> list[PlannedBatch]:
    return plan_batches(lake, LocalFolderSource(folder), max_objects=per_batch, deletions=False).batches


def _media(root: Path, name: str, count: int) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    images = sorted(p for p in SHARED.iterdir() if p.suffix.lower() in {".jpg", ".png"})
    for i in range(count):
        src = images[i % len(images)]
        # distinct bytes per copy: every object is decoded and embedded (no reuse by content hash)
        (folder / f"{i:03d}-{src.name}").write_bytes(src.read_bytes() + f"{name}-{i}".encode())
    return folder


def _start_workers(root: Path, env: dict[str, str], count: int) -> list[subprocess.Popen[bytes]]:
    procs = []
    for i in range(count):
        log = root / f"worker-{count}-{i}.log"
        procs.append(
            subprocess.Popen(
                [
                    str(BIN / "dagster-celery"),
                    "worker",
                    "start",
                    "-A",
                    "dagster_celery.app",
                    "-n",
                    f"w{i}",
                    "-y",
                    str(REPO / "deploy" / "celery" / "worker.yaml"),
                    "--",
                    "--pool=solo",
                ],
                cwd=REPO,
                env=env,
                stdout=open(log, "wb"),  # noqa: SIM115  (closed with the process)
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        while b"ready." not in log.read_bytes():
            time.sleep(0.3)
    return procs


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def _round(root: Path, env: dict[str, str], workers: int, batches: int, per_batch: int) -> dict[str, float]:
    lake_uri = str(root / f"lake-{workers}")
    env = {**env, "MM_LAKE": lake_uri}
    os.environ.update(env)
    lake = open_lake(lake_uri)
    procs = _start_workers(root, env, workers)
    try:
        with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
            warm = _batches(lake, _media(root, f"warm-{workers}", workers), 1)  # one per worker: models load
            assert all(r.success for r in launch_batches(instance, DEFINITIONS, warm, parallel=workers))
            timed = _batches(lake, _media(root, f"timed-{workers}", batches * per_batch), per_batch)
            started = time.time()
            runs = list(launch_batches(instance, DEFINITIONS, timed, parallel=len(timed)))
            wall = time.time() - started
            assert all(r.success for r in runs), [r.batch_id for r in runs if not r.success]
            run_walls = {}
            for r in runs:
                record = instance.get_run_record_by_id(r.run_id)
                assert record is not None and record.start_time and record.end_time
                run_walls[r.batch_id] = record.end_time - record.start_time
    finally:
        _stop(procs)
    state = lake.state()
    intents = {e.publish_seq: e.created_at for e in state.entries if e.event == "intent"}
    sections = {
        e.partition: (e.created_at - intents[e.publish_seq]).total_seconds()
        for e in state.published()
        if e.partition in run_walls
    }
    shares = [sections[b] / run_walls[b] for b in run_walls]
    return {
        "batches_per_s": len(runs) / wall,
        "wall_s": wall,
        "batch_wall_p50_s": statistics.median(run_walls.values()),
        "publish_section_p50_s": statistics.median(sections.values()),
        "publish_share_p50": statistics.median(shares),
        "publish_share_total": sum(sections.values()) / sum(run_walls.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    batches, per_batch = (4, 4) if args.quick else (8, 6)
    root = Path(tempfile.mkdtemp(prefix="mmp-bench-celery-"))
    port = free_port()
    redis_dir = root / "redis"
    subprocess.run(
        [str(REPO / "scripts" / "ensure_redis.sh")],
        check=True,
        capture_output=True,
        env={**os.environ, "MMP_REDIS_PORT": str(port), "MMP_REDIS_DIR": str(redis_dir)},
    )
    home = root / "home"
    home.mkdir()
    shutil.copy(REPO / "deploy" / "celery" / "dagster.yaml", home / "dagster.yaml")
    env = {
        **os.environ,
        **_pg_env(),
        "DAGSTER_HOME": str(home),
        "GX_ANALYTICS_ENABLED": "false",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "MMP_CELERY_BROKER": f"redis://127.0.0.1:{port}/0",
        "MMP_CELERY_BACKEND": f"redis://127.0.0.1:{port}/1",
    }
    try:
        one = _round(root, env, 1, batches, per_batch)
        two = _round(root, env, 2, batches, per_batch)
    finally:
        os.kill(int((redis_dir / "redis.pid").read_text()), signal.SIGTERM)
        shutil.rmtree(root, ignore_errors=True)
    print("| benchmark | 1 worker | 2 workers | ratio |")
    print("|---|---|---|---|")
    for key in one:
        print(f"| {key} | {one[key]:.3f} | {two[key]:.3f} | {two[key] / one[key]:.2f}× |")
    print(f"\n({batches} batches × {per_batch} images, default models, workers with one task each)")


if __name__ == "__main__":
    main()
