"""Run every benchmark behind BENCHMARKS.md, one process each (so one cannot warm another's caches).

``make bench`` runs this; add ``--quick`` for a smoke run. The GPU benchmark needs a GPU host:
``benchmarks/gpu_image_embed.sh`` (see BENCHMARKS.md).
"""

from __future__ import annotations

import subprocess
import sys

MODULES = [
    "benchmarks.lake_publish",
    "benchmarks.branches",
    "benchmarks.media_core",
    "benchmarks.pipeline",
    "benchmarks.throughput",
    "benchmarks.dagster_overhead",
    "benchmarks.incremental",
    "benchmarks.search",
    "benchmarks.label_bridge_eval",
    "benchmarks.discovery_scale",
    "benchmarks.discovery_latency",
    "benchmarks.publish_contention",
    "benchmarks.celery_scale",
]


def main() -> int:
    extra = sys.argv[1:]
    failed = 0
    for module in MODULES:
        print(f"\n## {module}\n", flush=True)
        args = [] if module.endswith("label_bridge_eval") else extra
        failed += subprocess.run([sys.executable, "-m", module, *args]).returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
