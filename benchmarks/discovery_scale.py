"""Planning / reconciliation at scale (issue 14): one full pass of the paged, chunked diff over N objects
against a bare listing of the same source, wall time and peak memory, A/B interleaved in one run.

Local: N empty files in a temporary folder (1,000 per sub-folder), removed afterwards. S3: N empty objects
on SeaweedFS (a real object store, on 127.0.0.1, started and stopped here). Each measurement runs in a fresh
process, so its peak RSS is its own. ``python -m benchmarks.discovery_scale --local 100000 --local 1000000
--seaweed 100000`` (``make bench`` runs the defaults).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def make_tree(root: Path, n: int) -> None:
    per = 1000
    for d in range((n + per - 1) // per):
        folder = root / f"d{d:05d}"
        folder.mkdir(parents=True)
        for i in range(min(per, n - d * per)):
            os.close(os.open(folder / f"f{i:04d}.jpg", os.O_CREAT | os.O_WRONLY, 0o644))


def _bare_local(root: str) -> int:
    count, stack = 0, [root]
    while stack:
        with os.scandir(stack.pop()) as scan:
            for entry in scan:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                else:
                    entry.stat()
                    count += 1
    return count


def _bare_s3(uri: str) -> int:
    from mm_platform.sources import S3Settings, parse_s3_uri

    bucket, prefix = parse_s3_uri(uri)
    client = S3Settings.from_env(os.environ).make_client()
    count, params = 0, {"Bucket": bucket, "Prefix": prefix, "MaxKeys": 1000}
    while True:
        page = client.list_objects_v2(**params)
        count += len(page.get("Contents", []))
        if not page.get("IsTruncated"):
            return count
        params["ContinuationToken"] = page["NextContinuationToken"]


def _listing(uri: str) -> int:
    from mm_platform.sources import source_for

    source = source_for(uri, os.environ)
    return sum(table.num_rows for table in source.list_tables())  # the columns discovery diffs


def _plan(uri: str, lake_dir: str) -> int:
    from mm_platform.catalog import open_lake
    from mm_platform.ingest.scan import plan_batches
    from mm_platform.sources import source_for

    lake = open_lake(lake_dir)
    outcome = plan_batches(lake, source_for(uri, os.environ))  # as `mmp ingest --plan-only` does
    return outcome.listed


def child(mode: str, uri: str, lake_dir: str) -> None:
    """Run one measurement in this (fresh) process and print JSON (imports excluded from the time)."""
    if mode != "bare" or uri.startswith("s3://"):
        import mm_platform.ingest.scan  # noqa: F401
        import mm_platform.lake  # noqa: F401
        import mm_platform.sources  # noqa: F401
    started = time.perf_counter()
    if mode == "bare":
        count = _bare_s3(uri) if uri.startswith("s3://") else _bare_local(uri)
    elif mode == "listing":
        count = _listing(uri)
    else:
        count = _plan(uri, lake_dir)
    wall = time.perf_counter() - started
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"mode": mode, "objects": count, "wall_s": wall, "peak_rss_mb": rss_mb}))


def measure(mode: str, uri: str, env: dict[str, str]) -> dict[str, Any]:
    lake_dir = tempfile.mkdtemp(prefix="mmp-bench-lake-")
    try:
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.discovery_scale", "--child", mode, uri, lake_dir],
            cwd=REPO,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        return dict(json.loads(out.stdout.strip().splitlines()[-1]))
    finally:
        shutil.rmtree(lake_dir, ignore_errors=True)


def compare(label: str, uri: str, env: dict[str, str], reps: int) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {"bare": [], "listing": [], "plan": []}
    for _ in range(reps):  # interleaved: A, B, C, A, B, C
        for mode in runs:
            runs[mode].append(measure(mode, uri, env))
            print(label, runs[mode][-1], flush=True)
    bare = statistics.median(r["wall_s"] for r in runs["bare"])
    listing = statistics.median(r["wall_s"] for r in runs["listing"])
    plan = statistics.median(r["wall_s"] for r in runs["plan"])
    return {
        "source": label,
        "objects": runs["plan"][0]["objects"],
        "bare_s": round(bare, 3),
        "listing_s": round(listing, 3),
        "plan_s": round(plan, 3),
        "plan_vs_bare": round(plan / bare, 3),
        "plan_vs_listing": round(plan / listing, 3),
        "plan_peak_rss_mb": round(max(r["peak_rss_mb"] for r in runs["plan"]), 1),
        "bare_peak_rss_mb": round(max(r["peak_rss_mb"] for r in runs["bare"]), 1),
    }


def seaweed_bucket(endpoint: Any, n: int) -> str:
    client = endpoint.client()
    endpoint.create_bucket("scale")

    def put(i: int) -> None:
        client.put_object(Bucket="scale", Key=f"lib/d{i // 1000:05d}/f{i % 1000:04d}.jpg", Body=b"")

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, range(n)))
    return "s3://scale/lib"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", nargs=3)
    parser.add_argument("--local", type=int, action="append")
    parser.add_argument("--seaweed", type=int, action="append")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="10,000 local files, one rep (a smoke run)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results_discovery_scale.json"))
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    if args.quick:
        args.local, args.seaweed, args.reps = [10_000], None, 1
    elif not args.local and not args.seaweed:
        args.local, args.seaweed = [100_000, 1_000_000], [100_000]
    results = []
    env = dict(os.environ)
    for n in args.local or []:
        root = Path(tempfile.mkdtemp(prefix="mmp-bench-tree-"))
        try:
            started = time.perf_counter()
            make_tree(root, n)
            print(f"made {n} files in {time.perf_counter() - started:.1f}s", flush=True)
            results.append(compare(f"local {n}", str(root), env, args.reps))
        finally:
            shutil.rmtree(root, ignore_errors=True)
    if args.seaweed:
        sys.path.insert(0, str(REPO))
        from tests.services import seaweedfs_s3_server

        for n in args.seaweed:
            with tempfile.TemporaryDirectory(prefix="mmp-bench-weed-") as tmp, seaweedfs_s3_server(Path(tmp)) as ep:
                started = time.perf_counter()
                uri = seaweed_bucket(ep, n)
                print(f"put {n} objects in {time.perf_counter() - started:.1f}s", flush=True)
                results.append(compare(f"seaweedfs {n}", uri, {**env, **ep.env()}, args.reps))
    print(json.dumps(results, indent=2))
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
