"""Dagster overhead (issue: Dagster layer): a batch run through the ingest job (in-process executor) vs the
same core functions called directly, on the same real media, models loaded once for both.

The Dagster time runs from the run's first STEP_START to RUN_SUCCESS (run launch excluded, as the goal says);
each side processes the batch into a fresh lake, alternating, and the medians are compared (goal ≤ 1.1×).
Run: ``.venv/bin/python -m benchmarks.dagster_overhead [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import dagster as dg

from mm_platform.catalog import open_lake
from mm_platform.ingest.scan import plan_batches
from mm_platform.ingest.steps import publish_batch, stage_batch
from mm_platform.lake import Lake
from mm_platform.orchestration import PipelineResource
from mm_platform.sources import LocalFolderSource, source_from_uri

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "media"


def _batch(lake: Lake, folder: Path) -> str:
    [batch] = plan_batches(lake, LocalFolderSource(folder), deletions=False).batches
    return batch.batch_id


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="mmp-dagster-bench-"))
    folder = root / "media"
    folder.mkdir()
    for sub in ("images", "documents", "audio"):
        for path in sorted((SHARED / sub).iterdir())[: 6 if args.quick else 20]:
            shutil.copy(path, folder / f"{sub}-{path.name}")
    os.environ["DAGSTER_HOME"] = str(root / "home")
    (root / "home").mkdir()
    from definitions import defs  # imported after DAGSTER_HOME is set

    objects = len(list(folder.iterdir()))
    pipeline = PipelineResource()
    warm = root / "warm"
    warm.mkdir()
    shutil.copy(SHARED / "images" / "orange.jpg", warm / "orange.jpg")
    warm_lake = open_lake(str(root / "warm-lake"))  # loads the models (and GX) outside the timings
    stage_batch(
        warm_lake, pipeline.processor(warm_lake), source_from_uri, _batch(warm_lake, warm), "warm", pipeline.checks()
    )
    job = defs.resolve_job_def("ingest_job")
    direct, through_dagster = [], []
    try:
        with dg.instance_for_test(temp_dir=str(root / "home")) as instance:
            for round_ in range(2 if args.quick else 3):
                lake = open_lake(str(root / f"direct-{round_}"))
                batch = _batch(lake, folder)
                start = time.perf_counter()
                staged = stage_batch(
                    lake, pipeline.processor(lake), source_from_uri, batch, "direct", pipeline.checks()
                )
                assert staged.passed
                publish_batch(lake, batch, "direct")
                direct.append(time.perf_counter() - start)

                lake_uri = str(root / f"dagster-{round_}")
                os.environ["MM_LAKE"] = lake_uri
                batch = _batch(open_lake(lake_uri), folder)
                instance.add_dynamic_partitions("ingest_batches", [batch])
                result = job.execute_in_process(instance=instance, partition_key=batch)
                assert result.success
                records = [r for r in instance.all_logs(result.run_id) if r.dagster_event is not None]
                first_step = min(
                    r.timestamp for r in records if r.dagster_event.event_type == dg.DagsterEventType.STEP_START
                )
                done = max(
                    r.timestamp for r in records if r.dagster_event.event_type == dg.DagsterEventType.RUN_SUCCESS
                )
                through_dagster.append(done - first_step)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    d, g = statistics.median(direct), statistics.median(through_dagster)
    print("| benchmark | measurements | ratio |")
    print("|---|---|---|")
    print(
        f"| dagster in-process vs direct | objects={objects} direct_s={d:.2f} "
        f"dagster_s={g:.2f} (medians of {len(direct)}) | {g / d:.2f}× |"
    )


if __name__ == "__main__":
    main()
