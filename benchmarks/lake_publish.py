"""Lake benchmarks (issue: foundation). Ratios against a baseline measured in the same process.

1. Cost follows the partition: publish a 10k-row partition into tables of 1M rows vs tables of 10k rows.
2. Publish overhead: lake.publish of a partition vs writing the same rows as plain Parquet with pyarrow.
3. Log replay stays short: opening a snapshot after 1,000 publishes vs after 1.

Run: ``.venv/bin/python -m benchmarks.lake_publish [--quick]``; prints a Markdown table.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq

from mm_platform.catalog import open_lake
from mm_platform.lake import Lake
from tests.factories import partition_rows, partition_writes

DIM = 64


def _median_time(fn: Callable[[], object], repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def _interleaved_medians(a: Callable[[], object], b: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Medians of ``a`` and ``b`` timed alternately, so a load spike on a shared machine hits both alike."""
    samples: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for fn, times in ((a, samples[0]), (b, samples[1])):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return statistics.median(samples[0]), statistics.median(samples[1])


def _fill(lake: Lake, partitions: int, rows: int) -> None:
    for i in range(partitions):
        lake.publish(f"fill-{i:05d}", partition_writes(f"fill-{i:05d}", rows, dim=DIM, seed=i))


def bench_partition_cost(root: Path, big_partitions: int, repeats: int) -> dict[str, float]:
    small, big = open_lake(str(root / "small")), open_lake(str(root / "big"))
    _fill(small, 1, 10_000)
    _fill(big, big_partitions, 10_000)
    prepared = iter([(f"new-{i}", partition_writes(f"new-{i}", 10_000, dim=DIM)) for i in range(2 * repeats)])

    def publish_into(lake: Lake) -> Callable[[], object]:
        def run() -> object:
            name, writes = next(prepared)  # rows are built outside the timed section
            return lake.publish(name, writes)

        return run

    t_small, t_big = _interleaved_medians(publish_into(small), publish_into(big), repeats)
    return {
        "rows_big": big.snapshot().delta_table("media").count(),
        "t_small_s": t_small,
        "t_big_s": t_big,
        "ratio": t_big / t_small,
    }


def bench_overhead(root: Path, rows: int, repeats: int) -> dict[str, float]:
    lake = open_lake(str(root / f"overhead-{rows}"))
    _fill(lake, 1, 1000)
    counter = iter(range(10_000))
    tables = {name: partition_rows("x", rows, dim=DIM)[name] for name in ("media", "metadata", "embeddings")}

    def plain() -> None:
        target = root / f"plain-{rows}-{next(counter)}"
        target.mkdir()
        for name, table in tables.items():
            pq.write_table(table, target / f"{name}.parquet", compression="zstd")

    prepared = iter([(f"p-{i}", partition_writes(f"p-{i}", rows, dim=DIM)) for i in range(repeats)])

    def publish() -> None:
        name, writes = next(prepared)  # rows are built outside the timed section
        lake.publish(name, writes)

    t_plain, t_publish = _interleaved_medians(plain, publish, repeats)
    return {"rows": rows, "t_plain_s": t_plain, "t_publish_s": t_publish, "ratio": t_publish / t_plain}


def bench_snapshot_open(root: Path, publishes: int, repeats: int) -> dict[str, float]:
    """Open the latest snapshot and resolve its 3 tables' files and schemas (what ``Snapshot.table`` does
    before it reads rows).

    Also after 10 publishes, the first with a Delta checkpoint: from there the cost should stay flat.
    """
    lakes = {count: root / f"open-{count}" for count in (1, 10, publishes)}
    for count, path in lakes.items():
        _fill(open_lake(str(path)), count, 10)

    def open_snapshot(path: Path) -> Callable[[], object]:
        def run() -> object:
            snap = open_lake(str(path), create=False).snapshot()
            return [snap.dataset(name).schema for name in ("media", "metadata", "embeddings")]

        return run

    t_one = _median_time(open_snapshot(lakes[1]), repeats)
    t_ten = _median_time(open_snapshot(lakes[10]), repeats)
    t_many = _median_time(open_snapshot(lakes[publishes]), repeats)
    return {
        "publishes": publishes,
        "t_one_s": t_one,
        "t_ten_s": t_ten,
        "t_many_s": t_many,
        "many_vs_ten": t_many / t_ten,
        "ratio": t_many / t_one,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="mmp-bench-"))
    try:
        big_partitions, publishes, repeats = (10, 100, 3) if args.quick else (100, 1000, 5)
        results = {
            "partition_cost": bench_partition_cost(root, big_partitions, repeats),
            "overhead_10k": bench_overhead(root, 10_000, repeats),
            "overhead_100k": bench_overhead(root, 100_000, repeats),
            "snapshot_open": bench_snapshot_open(root, publishes, repeats * 4),
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print("| benchmark | measurements | ratio |")
    print("|---|---|---|")
    for name, result in results.items():
        details = ", ".join(
            f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items() if k != "ratio"
        )
        print(f"| {name} | {details} | {result['ratio']:.2f}× |")


if __name__ == "__main__":
    main()
