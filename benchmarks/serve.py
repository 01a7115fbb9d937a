"""Lake browser benchmark: warm search through `mmp serve`'s API on N × 384 vectors, the search page's time to
render in Chromium, and `mmp search` cold on a small lake.

The large lake holds N synthetic documents (``tests.synthetic.clustered_unit_vectors``, the
structure of real embeddings) under the MiniLM model id, so a text query takes the real path: MiniLM embeds
the query, the HNSW index (built once, cached under ``<lake>/_indexes``) ranks, the hits are hydrated from the
media/metadata/derived/annotation tables of the snapshot. The filter keeps 10 % of the rows
(``page_count = 3``). Server time is the server's own ``Server-Timing`` header (the whole request in the
app); the client round trip is beside it. Filtered and unfiltered queries alternate (A/B interleaved).

    .venv/bin/python -m benchmarks.serve --n 1000000 --lake /tmp/serve-bench/lake --small-lake /tmp/bl/lake
    .venv/bin/python -m benchmarks.serve --quick
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from mm_platform.catalog import open_lake
from mm_platform.lake import Lake, TableWrite
from tests.services import installed_command
from tests.synthetic import clustered_unit_vectors

REPO = Path(__file__).resolve().parent.parent
QUERIES = [
    "quarterly revenue report",
    "a recipe for bread",
    "the history of rome",
    "how to train a neural network",
    "insurance claim form",
    "a letter to the editor",
    "maintenance manual for a pump",
    "poems about the sea",
    "court ruling on copyright",
    "a travel guide to lisbon",
    "physics lecture notes",
    "a children's story",
]
WHERE = "page_count = 3"


def _ids(partition: str, n: int) -> list[str]:
    return [hashlib.sha256(f"s3://bench/{partition}/{i}.pdf".encode()).hexdigest()[:32] for i in range(n)]


def build_lake(root: Path, n: int, model_id: str, revision: str, per_partition: int = 100_000) -> Lake:
    """N documents with metadata and one 384-d vector each, published in partitions of ``per_partition``."""
    lake = open_lake(str(root))
    mixture = clustered_unit_vectors(384, 1000, seed=0)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    for start in range(0, n, per_partition):
        count = min(per_partition, n - start)
        part = f"bench-{start // per_partition:04d}"
        ids = _ids(part, count)
        shas = [hashlib.sha256(f"c-{part}-{i}".encode()).hexdigest() for i in range(count)]
        lineage = {
            "partition": [part] * count,
            "run_id": ["bench"] * count,
            "producer_version": ["1"] * count,
            "source_content_sha256": shas,
        }
        media = pa.table(
            {
                "media_id": ids,
                "uri": [f"s3://bench/{part}/{i}.pdf" for i in range(count)],
                "source": ["s3://bench"] * count,
                "key": [f"{part}/{i}.pdf" for i in range(count)],
                "etag": [s[:32] for s in shas],
                "size_bytes": pa.array([10_000 + i for i in range(count)], pa.int64()),
                "content_sha256": shas,
                "mime_type": ["application/pdf"] * count,
                "modality": ["document"] * count,
                "status": ["active"] * count,
                "registered_at": pa.array([now] * count, pa.timestamp("us", tz="UTC")),
                "producer": ["register"] * count,
                **lineage,
            }
        )
        metadata = pa.table(
            {
                "media_id": ids,
                "content_sha256": shas,
                "modality": ["document"] * count,
                "page_count": pa.array([(start + i) % 10 for i in range(count)], pa.int64()),
                "title": [f"document {start + i}" for i in range(count)],
                "producer": ["probe"] * count,
                **lineage,
            }
        )
        vectors = mixture.sample(count, seed=start + 1).astype(np.float32)
        embeddings = pa.table(
            {
                "subject_id": ids,
                "subject_kind": ["media"] * count,
                "media_id": ids,
                "model_id": [model_id] * count,
                "model_revision": [revision] * count,
                "dim": pa.array([384] * count, pa.int32()),
                "normalized": [True] * count,
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), 384).cast(
                    pa.list_(pa.float32())
                ),
                "producer": [model_id] * count,
                **lineage,
            }
        )
        started = time.perf_counter()
        lake.publish(
            part, {"media": TableWrite(media), "metadata": TableWrite(metadata), "embeddings": TableWrite(embeddings)}
        )
        print(
            json.dumps({"step": f"publish {part}", "rows": count, "s": round(time.perf_counter() - started, 1)}),
            flush=True,
        )
    return lake


@contextlib.contextmanager
def served(lake_root: Path, port: int, log: Path) -> Iterator[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.pop("MM_BROWSER_TOKEN", None)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [installed_command("mmp"), "--lake", str(lake_root), "serve", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 1800
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()[-3000:]
            with contextlib.suppress(OSError), urllib.request.urlopen(url + "/api/snapshots", timeout=30):
                break
            time.sleep(1)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


def timed_get(url: str) -> tuple[float, float]:
    """(server ms from Server-Timing, client round trip ms)."""
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as response:
        response.read()
        timing = response.headers["Server-Timing"]
    client = (time.perf_counter() - started) * 1e3
    return float(timing.split("dur=")[1]), client


def _stats(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(values), 2),
        "p95_ms": round(float(np.percentile(values, 95)), 2),
        "n": len(values),
    }


def api_latency(url: str, queries: int, k: int) -> dict[str, Any]:
    plain, filtered, plain_client, filtered_client = [], [], [], []
    for i in range(10):  # warm-up: the first filtered query compiles and remembers the filter's id set
        timed_get(f"{url}/api/search?" + urllib.parse.urlencode({"q": QUERIES[i % len(QUERIES)], "k": k}))
        timed_get(
            f"{url}/api/search?" + urllib.parse.urlencode({"q": QUERIES[i % len(QUERIES)], "k": k, "where": WHERE})
        )
    for i in range(queries):
        q = QUERIES[i % len(QUERIES)] + f" {i}"  # a new text each time: no cache of query vectors helps
        server, client = timed_get(f"{url}/api/search?" + urllib.parse.urlencode({"q": q, "k": k}))
        plain.append(server)
        plain_client.append(client)
        server, client = timed_get(f"{url}/api/search?" + urllib.parse.urlencode({"q": q, "k": k, "where": WHERE}))
        filtered.append(server)
        filtered_client.append(client)
    fresh = []  # the first query of a filter not seen before: it compiles the filter and finds its id set
    for i, bound in enumerate(range(1, 10)):
        q = QUERIES[i % len(QUERIES)] + f" new filter {i}"
        server, _ = timed_get(
            f"{url}/api/search?" + urllib.parse.urlencode({"q": q, "k": k, "where": f"page_count < {bound}"})
        )
        fresh.append(server)
    return {
        "new_filter_first_query_server": _stats(fresh),
        "no_filter_server": _stats(plain),
        "filter_server": _stats(filtered),
        "no_filter_client": _stats(plain_client),
        "filter_client": _stats(filtered_client),
        "k": k,
        "where": WHERE,
    }


def page_render(url: str, loads: int) -> dict[str, Any]:
    """The search page in Chromium: navigation start → load event (HTML + every thumbnail), per load."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    assert chromium, "needs Debian's chromium (scripts/ensure_chromium.sh)"
    times = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        for i in range(loads + 2):
            page.goto(f"{url}/search?" + urllib.parse.urlencode({"q": QUERIES[i % len(QUERIES)] + f" p{i}", "k": 24}))
            duration = page.evaluate(
                "() => { const e = performance.getEntriesByType('navigation')[0];"
                " return e.loadEventEnd - e.startTime; }"
            )
            if i >= 2:
                times.append(float(duration))
        browser.close()
    return _stats(times)


def cold_cli(lake_root: Path, runs: int) -> dict[str, Any]:
    times = []
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    for i in range(runs + 1):  # one untimed first call: it exports the ONNX file and caches the label vectors
        started = time.perf_counter()
        subprocess.run(
            [installed_command("mmp"), "--lake", str(lake_root), "search", "a fruit", "--k", "5"],
            env=env,
            check=True,
            capture_output=True,
        )
        if i:
            times.append((time.perf_counter() - started) * 1e3)
    return _stats(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--lake", type=Path, default=Path("/tmp/mmp-serve-bench/lake"))
    parser.add_argument("--small-lake", type=Path, default=None, help="A small ingested lake for the cold CLI run.")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--loads", type=int, default=10)
    parser.add_argument("--port", type=int, default=8761)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results_serve.json"))
    parser.add_argument("--quick", action="store_true", help="Smoke run: 20k rows, 20 queries, 3 page loads.")
    parser.add_argument("--build-only", action="store_true", help="Build the lake and its index, measure nothing.")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.queries, args.loads = 20_000, 20, 3
        args.lake = Path("/tmp/mmp-serve-bench-quick/lake")
    from mm_platform.embed import embedder_for

    text = embedder_for("minilm", "text")
    results: dict[str, Any] = {"n": args.n, "dim": 384, "load_average_at_start": round(os.getloadavg()[0], 2)}
    if not (args.lake / "_publish_log").exists():
        started = time.perf_counter()
        build_lake(args.lake, args.n, text.model_id, text.revision)
        results["build_lake_s"] = round(time.perf_counter() - started, 1)
    from mm_platform.search import open_index

    started = time.perf_counter()
    index = open_index(open_lake(str(args.lake)).snapshot(), text.model_id)  # built once, cached on disk
    results["index_open_or_build_s"] = round(time.perf_counter() - started, 1)
    results["index"] = type(index.backend).__name__
    print(json.dumps({"index": results["index"], "s": results["index_open_or_build_s"]}), flush=True)
    if args.build_only:
        return
    embed_ms = []
    for i in range(args.queries):  # the part of a query that is the model itself (same model, this process)
        started = time.perf_counter()
        text.encode([QUERIES[i % len(QUERIES)] + f" e{i}"])
        embed_ms.append((time.perf_counter() - started) * 1e3)
    results["query_embedding_minilm"] = _stats(embed_ms)
    with served(args.lake, args.port, args.lake.parent / "serve.log") as url:
        results["api"] = api_latency(url, args.queries, 24)
        print(json.dumps(results["api"]), flush=True)
        results["page_render_chromium"] = page_render(url, args.loads)
        print(json.dumps(results["page_render_chromium"]), flush=True)
    if args.small_lake is not None:
        results["cold_cli_small_lake"] = cold_cli(args.small_lake, 5)
        with served(args.small_lake, args.port + 1, args.small_lake.parent / "serve.log") as url:
            results["warm_api_small_lake"] = api_latency(url, 30, 5)
    print(json.dumps(results, indent=2))
    if not args.quick:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
