"""Peak memory of one batch, main process and probe workers, as a script run in a fresh process.

``python -m tests.large_object_rss FOLDER LAKE`` stages and publishes one batch of every file in FOLDER and
prints ``{"main_mb": …, "worker_mb": …, "objects": …}``: the high-water marks (``VmHWM``) of this process
and of the largest probe worker. A fresh process per measurement, because a high-water mark never falls.
Used by tests/test_hostile_input.py and the "large objects" row of BENCHMARKS.md.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def high_water_mb(pid: str | int = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


def main(folder: str, lake_root: str) -> None:
    from mm_platform.catalog import open_lake
    from mm_platform.config import PipelineConfig
    from mm_platform.ingest.process import BatchProcessor
    from mm_platform.sources import LocalFolderSource

    lake = open_lake(lake_root, create=True)
    source = LocalFolderSource(folder)
    objects = list(source.list_objects())
    with BatchProcessor(lake, PipelineConfig()) as processor:
        report = processor.run(source, objects, "rss", "rss")
        workers = [high_water_mb(pid) for pid in processor.worker_pids()]
    print(
        json.dumps(
            {
                "main_mb": round(high_water_mb(), 1),
                "worker_mb": round(max(workers, default=0.0), 1),
                "objects": report.objects,
                "quarantined": report.quarantined,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
