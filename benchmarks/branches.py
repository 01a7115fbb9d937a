"""Branch benchmarks (issue 15). Ratios against a baseline measured in the same process, timed alternately.

1. Branch creation on a lake with 1M rows in ``media`` vs one small publish (10 rows, 3 tables): goal ≤ 2×.
2. Data files written by branch creation: goal 0.
3. Merging a branch that published one small partition into the 1M-row main vs the same small publish on main.
4. Opening a branch's latest snapshot and counting ``media`` vs the same on main.

Run: ``.venv/bin/python -m benchmarks.branches [--quick]``; prints a Markdown table.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from mm_platform.catalog import open_lake
from mm_platform.lake import Lake, TableWrite
from mm_platform.lake.branch import create_branch
from mm_platform.lake.merge import merge_branch
from tests.factories import data_files, large_media_rows, partition_writes


def count_media(lake: Lake) -> int:
    return int(lake.snapshot().dataset("media").count_rows())


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="100k rows, 3 repeats")
    args = parser.parse_args()
    rows, repeats = (100_000, 3) if args.quick else (1_000_000, 5)
    root = Path(tempfile.mkdtemp(prefix="bench-branches-"))
    try:
        lake = open_lake(str(root / "lake"))
        lake.publish("big", {"media": TableWrite(large_media_rows(rows))})
        publish_s: list[float] = []
        create_s: list[float] = []
        merge_s: list[float] = []
        open_main_s: list[float] = []
        open_branch_s: list[float] = []
        copied = 0
        for i in range(repeats):
            publish_s.append(timed(lambda i=i: lake.publish(f"small-{i}", partition_writes(f"small-{i}", 10))))
            before = data_files(root / "lake")
            create_s.append(timed(lambda i=i: create_branch(lake, f"b{i}")))
            copied += len(data_files(root / "lake") - before)
            branch = lake.branch(f"b{i}")
            branch.publish(f"exp-{i}", partition_writes(f"exp-{i}", 10))
            merge_s.append(timed(lambda i=i: merge_branch(lake, f"b{i}")))
            open_main_s.append(timed(lambda: open_lake(str(root / "lake")).snapshot().dataset("media").count_rows()))
            open_branch_s.append(
                timed(
                    lambda i=i: open_lake(str(root / "lake"), branch=f"b{i}").snapshot().dataset("media").count_rows()
                )
            )
        med = statistics.median
        print(f"{rows:,} media rows; medians of {repeats}, each pair timed alternately\n")
        print("| benchmark | goal | measured |")
        print("|---|---|---|")
        print(
            f"| create a branch vs one small publish (10 rows, 3 tables) | ≤ 2× | "
            f"{med(create_s) * 1000:.1f} ms vs {med(publish_s) * 1000:.1f} ms → "
            f"**{med(create_s) / med(publish_s):.2f}×** |"
        )
        print(f"| data files written by {repeats} branch creations | 0 | **{copied}** |")
        print(
            f"| merge a branch's 10-row publish into main vs the same publish on main | — | "
            f"{med(merge_s) * 1000:.1f} ms vs {med(publish_s) * 1000:.1f} ms → {med(merge_s) / med(publish_s):.2f}× |"
        )
        print(
            f"| open the latest snapshot and count media: branch vs main | — | "
            f"{med(open_branch_s) * 1000:.1f} ms vs {med(open_main_s) * 1000:.1f} ms → "
            f"{med(open_branch_s) / med(open_main_s):.2f}× |"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
