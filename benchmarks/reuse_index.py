"""Loading the reuse index before a batch, on a lake of N published objects: the columnar ``ReuseIndex`` against
the row-by-row reading it replaced (``tests.reuse_reference``), alternated in one process, and the memory each
one's result holds.

The lake holds N images, published in partitions of 100,000: metadata and a media vector each, half of them
by the configured image model's revision and half by an older one (so that the vector lookup decides), and
one quarantine verdict per 100 objects. It is built once and kept at ``--lake``.

    .venv/bin/python -m benchmarks.reuse_index --n 1000000 --lake /tmp/reuse-bench/lake
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from mm_platform.catalog import open_lake
from mm_platform.ingest.reuse import ModelRef, ReuseIndex
from mm_platform.lake import Lake, TableWrite
from tests.reuse_reference import reuse_row_by_row

MODELS = {"image": ModelRef("efficientnet-lite0", "bench"), "text": ModelRef("minilm", "bench")}


def build_lake(root: Path, n: int, per_partition: int = 100_000) -> Lake:
    lake = open_lake(str(root))
    image = MODELS["image"]
    for start in range(0, n, per_partition):
        count = min(per_partition, n - start)
        part = f"bench-{start // per_partition:04d}"
        ids = [hashlib.sha256(f"{part}/{i}".encode()).hexdigest()[:32] for i in range(count)]
        shas = [hashlib.sha256(f"content-{start + i}".encode()).hexdigest() for i in range(count)]
        lineage = {"partition": [part] * count, "run_id": ["bench"] * count, "producer_version": ["1"] * count}
        metadata = pa.table(
            {"media_id": ids, "content_sha256": shas, "modality": ["image"] * count, "producer": ["analyze"] * count}
            | lineage
        )
        vectors = np.random.default_rng(start).standard_normal((count, 16)).astype(np.float32)
        embeddings = pa.table(
            {
                "subject_id": ids,
                "subject_kind": ["media"] * count,
                "media_id": ids,
                "model_id": [image.model_id] * count,
                "model_revision": [image.revision if i % 2 else "older" for i in range(count)],
                "dim": pa.array([16] * count, pa.int32()),
                "normalized": [True] * count,
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), 16).cast(
                    pa.list_(pa.float32())
                ),
                "producer": [image.model_id] * count,
                "source_content_sha256": shas,
            }
            | lineage
        )
        rejected = list(range(0, count, 100))
        quarantine = pa.table(
            {
                "media_id": [ids[i] for i in rejected],
                "uri": [f"s3://bench/{part}/{i}" for i in rejected],
                "content_sha256": [shas[i] for i in rejected],
                "stage": ["probe"] * len(rejected),
                "reason": ["corrupt"] * len(rejected),
                "detail": ["synthetic"] * len(rejected),
                "quarantined_at": pa.array([datetime(2026, 1, 1, tzinfo=UTC)] * len(rejected)),
                "producer": ["analyze"] * len(rejected),
            }
            | {k: v[: len(rejected)] for k, v in lineage.items()}
        )
        lake.publish(
            part,
            {
                "metadata": TableWrite(metadata),
                "embeddings": TableWrite(embeddings),
                "quarantine": TableWrite(quarantine),
            },
        )
    return lake


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--lake", type=Path, default=Path("/tmp/reuse-bench/lake"))
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    if not (args.lake / "media").exists():
        build_lake(args.lake, args.n)
    snapshot = open_lake(str(args.lake)).snapshot()
    index = ReuseIndex.load(snapshot, MODELS)
    complete, quarantined = reuse_row_by_row(snapshot, MODELS)
    assert len(index.complete) == len(complete) and len(index.quarantined) == len(quarantined)
    times: dict[str, list[float]] = {"columnar": [], "row_by_row": []}
    for _ in range(args.rounds):
        for name, load in (("columnar", ReuseIndex.load), ("row_by_row", reuse_row_by_row)):
            started = time.perf_counter()
            load(snapshot, MODELS)  # type: ignore[operator]
            times[name].append(time.perf_counter() - started)
    held: dict[str, float] = {}
    for name, load in (("columnar", ReuseIndex.load), ("row_by_row", reuse_row_by_row)):
        tracemalloc.start()
        result: Any = load(snapshot, MODELS)  # type: ignore[operator]
        held[name] = tracemalloc.get_traced_memory()[0] / 2**20
        tracemalloc.stop()
        del result
    columnar, row_by_row = (statistics.median(times[k]) for k in ("columnar", "row_by_row"))
    print(
        json.dumps(
            {
                "objects": snapshot.table("metadata", columns=["content_sha256"]).num_rows,
                "columnar_s": round(columnar, 3),
                "row_by_row_s": round(row_by_row, 3),
                "runs_s": {k: [round(t, 3) for t in v] for k, v in times.items()},
                "speedup": round(row_by_row / columnar, 2),
                "held_mib": {k: round(v, 1) for k, v in held.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
