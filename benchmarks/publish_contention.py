"""Publish contention (issue: scale-out): P concurrent publisher processes × K publishes each, into one lake.

Checks that nothing is lost or duplicated (every partition published exactly once, sequence numbers without
gaps) and measures, per publish, the serialized section (the ``intent`` event to its ``published`` event in
the log) and the whole ``publish`` call (claiming the log included: what contention costs a publisher),
against one publisher doing the same in the same run. Rounds alternate single / concurrent.

Run: ``.venv/bin/python -m benchmarks.publish_contention [--quick]``; prints a Markdown table.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from mm_platform.catalog import open_lake
from tests.factories import partition_writes

ROWS = 30


def _publisher(lake_uri: str, name: str, count: int, start: float, out: mp.Queue) -> None:
    lake = open_lake(lake_uri)
    writes = [partition_writes(f"{name}-{i}", ROWS, seed=i) for i in range(count)]  # staged rows built first
    while time.time() < start:  # every publisher starts at the same moment
        time.sleep(0.001)
    calls = []
    for i, write in enumerate(writes):
        began = time.perf_counter()
        lake.publish(f"{name}-{i}", write)
        calls.append(time.perf_counter() - began)
    out.put(calls)


def _round(root: Path, publishers: int, count: int) -> dict[str, float]:
    lake_uri = str(root / f"lake-{publishers}-{time.monotonic_ns()}")
    open_lake(lake_uri)
    ctx = mp.get_context("spawn")
    out: mp.Queue = ctx.Queue()
    start = time.time() + 8.0  # room for every process to import and build its rows
    procs = [ctx.Process(target=_publisher, args=(lake_uri, f"p{j}", count, start, out)) for j in range(publishers)]
    for proc in procs:
        proc.start()
    calls = [c for _ in procs for c in out.get(timeout=900)]
    for proc in procs:
        proc.join()
    wall = time.time() - start
    state = open_lake(lake_uri).state()
    published = [e for e in state.published() if e.kind == "publish"]
    partitions = [e.partition for e in published]
    expected = {f"p{j}-{i}" for j in range(publishers) for i in range(count)}
    seqs = [e.publish_seq for e in state.published()]
    intents = {e.publish_seq: e.created_at for e in state.entries if e.event == "intent"}
    sections = [(e.created_at - intents[e.publish_seq]).total_seconds() for e in published]
    return {
        "publishes": len(expected),
        "lost": len(expected - set(partitions)),
        "duplicated": len(partitions) - len(set(partitions)),
        "gapless": float(seqs == list(range(1, len(seqs) + 1))),
        "section_p50_s": statistics.median(sections),
        "section_p95_s": statistics.quantiles(sections, n=20)[18],
        "call_p50_s": statistics.median(calls),
        "call_p95_s": statistics.quantiles(calls, n=20)[18],
        "publishes_per_s": len(calls) / wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer publishes, one round")
    parser.add_argument("--publishers", type=int, default=8)
    args = parser.parse_args()
    count, rounds = (5, 1) if args.quick else (20, 2)
    root = Path(tempfile.mkdtemp(prefix="mmp-bench-contention-"))
    single: list[dict[str, float]] = []
    many: list[dict[str, float]] = []
    try:
        for _ in range(rounds):  # interleaved: the shared machine's load hits both alike
            single.append(_round(root, 1, count))
            many.append(_round(root, args.publishers, count))
    finally:
        shutil.rmtree(root, ignore_errors=True)

    def med(results: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in results)

    lost = sum(int(r["lost"]) for r in many + single)
    dup = sum(int(r["duplicated"]) for r in many + single)
    gapless = all(r["gapless"] for r in many + single)
    print(f"| benchmark | 1 publisher | {args.publishers} publishers | ratio |")
    print("|---|---|---|---|")
    print(
        f"| publishes (lost / duplicated / gapless seqs) | {int(single[0]['publishes'])} per round | "
        f"{int(many[0]['publishes'])} per round | {lost} lost, {dup} duplicated, gapless={gapless} |"
    )
    for key, label in [
        ("section_p50_s", "intent → published, p50 (s)"),
        ("section_p95_s", "intent → published, p95 (s)"),
        ("call_p50_s", "publish call incl. claiming the log, p50 (s)"),
        ("call_p95_s", "publish call incl. claiming the log, p95 (s)"),
        ("publishes_per_s", "publishes per second, all publishers"),
    ]:
        a, b = med(single, key), med(many, key)
        print(f"| {label} | {a:.3f} | {b:.3f} | {b / a:.2f}× |")
    print(f"\n(medians of {rounds} interleaved round(s); {count} publishes of {ROWS} rows per publisher)")


if __name__ == "__main__":
    main()
