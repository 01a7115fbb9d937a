"""Vector search benchmark: our index layer vs peers on the same data, in one process.

Data has the structure of real embeddings (``tests/synthetic.py``: a seeded mixture of clusters on
the unit sphere, unequal sizes, low-dimensional variation inside a cluster); uniform random vectors are only
used for exact search, where the data does not matter. Queries are fresh draws from the same mixture.

Measured, single query at a time (p50 over ``--queries`` after a warm-up), recall@k against exact search:
  * ours: ``HnswIndex`` (faiss HNSW behind our wrapper, filters prepared once as ``Allowed``), and exact;
  * faiss: the same graph through raw faiss calls (so the difference is our wrapper), IDSelectorBitmap filter;
  * usearch: its own HNSW (build + search), filters by oversampling (its Python API has no predicate);
  * lancedb: IVF_PQ with refinement, filters with ``prefilter=True``;
  * exact on ``--n`` uniform vectors vs a bare ``numpy`` matrix product + argpartition;
  * with ``--lake``: the real media vectors of that lake (every model): exact vs HNSW recall; those whose
    width is ``--dim`` are also added to the synthetic data.

    .venv/bin/python -m benchmarks.search --n 1000000 --peers faiss,lancedb --lake ./lake
    .venv/bin/python -m benchmarks.search --n 200000 --peers faiss,usearch,lancedb --skip-exact
    .venv/bin/python -m benchmarks.search --quick      # smoke run (make bench --quick)
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mm_platform.catalog import open_lake
from mm_platform.search.active import active_models
from mm_platform.search.ann import Allowed, HnswIndex, HnswParams
from mm_platform.search.exact import exact_topk
from mm_platform.search.vectors import read_vectors
from tests.synthetic import clustered_unit_vectors

Search = Callable[[NDArray[np.float32]], NDArray[np.int64]]
ROWS: list[dict[str, Any]] = []


def measure(name: str, search: Search, queries: NDArray[np.float32], truth: NDArray[np.int64], **extra: Any) -> None:
    """p50/p95 single-query latency and recall@k of ``search`` (which returns positions), recorded and printed."""
    k = truth.shape[1]
    for query in queries[:10]:
        search(query)
    times, hits = [], 0
    for query, expected in zip(queries, truth, strict=True):
        started = time.perf_counter()
        found = search(query)
        times.append(time.perf_counter() - started)
        hits += len(set(found[:k].tolist()) & set(expected.tolist()))
    row = {
        "name": name,
        "p50_ms": round(statistics.median(times) * 1e3, 3),
        "p95_ms": round(float(np.percentile(times, 95)) * 1e3, 3),
        "recall": round(hits / truth.size, 4),
        **extra,
    }
    ROWS.append(row)
    print(json.dumps(row), flush=True)


def timed(label: str, fn: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    value = fn()
    seconds = time.perf_counter() - started
    print(json.dumps({"step": label, "seconds": round(seconds, 1)}), flush=True)
    return value, seconds


def run_ours(data: NDArray[np.float32], queries: NDArray[np.float32], truth: NDArray[np.int64], args: Any) -> Any:
    params = HnswParams(m=args.m, ef_construction=args.ef_construction)
    index, build_s = timed("ours: build", lambda: HnswIndex.build(data, params))
    for ef in args.ef:
        tuned = HnswIndex(index.index, replace(params, ef_search=ef))
        measure("ours hnsw", lambda q, t=tuned: t.search(q, args.k)[1][0], queries, truth, ef=ef, build_s=build_s)
    return index


def run_filtered(index: HnswIndex, data: NDArray[np.float32], queries: NDArray[np.float32], args: Any) -> None:
    rng = np.random.default_rng(7)
    for selectivity in args.selectivities:
        allowed = Allowed(rng.random(len(data)) < selectivity)
        truth = exact_topk(data, queries, args.k, rows=allowed.rows)[1]
        for ef in args.ef:
            ours = HnswIndex(index.index, replace(index.params, ef_search=ef))
            measure(
                "ours filtered",
                lambda q, o=ours, a=allowed: o.search(q, args.k, a)[1][0],
                queries,
                truth,
                ef=ef,
                selectivity=selectivity,
                mode="exact"
                if allowed.count <= ours.params.exact_below
                else f"graph ef={ours.params.filtered_ef(args.k, selectivity)}",
            )
        if "faiss" in args.peers and selectivity == args.selectivity:
            run_faiss_filtered(index, allowed, queries, truth, args)


def run_faiss(index: HnswIndex, queries: NDArray[np.float32], truth: NDArray[np.int64], args: Any) -> None:
    import faiss

    for ef in args.ef:
        params = faiss.SearchParametersHNSW(efSearch=ef)
        measure(
            "faiss hnsw (raw)",
            lambda q, p=params: index.index.search(q[None], args.k, params=p)[1][0],
            queries,
            truth,
            ef=ef,
        )


def run_faiss_filtered(
    index: HnswIndex, allowed: Allowed, queries: NDArray[np.float32], truth: NDArray[np.int64], args: Any
) -> None:
    import faiss

    selector = faiss.IDSelectorBitmap(allowed.bitmap)
    for ef in sorted({*args.ef, 256, 512}):
        params = faiss.SearchParametersHNSW(efSearch=ef, sel=selector)
        measure(
            "faiss filtered (raw bitmap)",
            lambda q, p=params: index.index.search(q[None], args.k, params=p)[1][0],
            queries,
            truth,
            ef=ef,
            selectivity=allowed.selectivity,
        )


def run_usearch(data: NDArray[np.float32], queries: NDArray[np.float32], truth: NDArray[np.int64], args: Any) -> None:
    from usearch.index import Index

    index = Index(ndim=data.shape[1], metric="ip", dtype="f32", connectivity=args.m, expansion_add=args.ef_construction)
    _, build_s = timed("usearch: build", lambda: index.add(np.arange(len(data)), data))
    for ef in args.ef:
        index.expansion_search = ef
        measure(
            "usearch hnsw",
            lambda q: index.search(q, args.k, threads=1).keys.astype(np.int64),
            queries,
            truth,
            ef=ef,
            build_s=build_s,
        )
    allowed = Allowed(np.random.default_rng(7).random(len(data)) < args.selectivity)
    ftruth = exact_topk(data, queries, args.k, rows=allowed.rows)[1]
    for ef, oversample in ((128, 100), (256, 200), (512, 400)):
        index.expansion_search = ef

        def filtered(q: NDArray[np.float32], n: int = oversample) -> NDArray[np.int64]:
            keys = index.search(q, n, threads=1).keys.astype(np.int64)
            return keys[allowed.mask[keys]]

        measure("usearch filtered (oversample)", filtered, queries, ftruth, ef=ef, fetch=oversample)


def run_lancedb(data: NDArray[np.float32], queries: NDArray[np.float32], truth: NDArray[np.int64], args: Any) -> None:
    import lancedb
    import pyarrow as pa

    folder = Path(tempfile.mkdtemp(prefix="lancedb-bench-"))
    try:
        rng = np.random.default_rng(7)
        allowed = Allowed(rng.random(len(data)) < args.selectivity)
        vectors = pa.FixedSizeListArray.from_arrays(pa.array(data.reshape(-1)), data.shape[1])
        table_data = pa.table({"id": np.arange(len(data)), "allowed": allowed.mask, "vector": vectors})
        db = lancedb.connect(str(folder))
        table = db.create_table("vectors", table_data)
        partitions = max(16, int(np.sqrt(len(data))))
        _, build_s = timed(
            "lancedb: build IVF_PQ",
            lambda: table.create_index(
                metric="dot", num_partitions=partitions, num_sub_vectors=data.shape[1] // 8, index_type="IVF_PQ"
            ),
        )
        ftruth = exact_topk(data, queries, args.k, rows=allowed.rows)[1]
        for nprobes, refine in ((10, 5), (20, 10), (40, 10), (80, 20)):

            def search(q: NDArray[np.float32], n: int = nprobes, r: int = refine) -> NDArray[np.int64]:
                query = table.search(q).nprobes(n).refine_factor(r).limit(args.k).select(["id", "_distance"])
                return np.asarray(query.to_arrow().column("id").to_numpy(), dtype=np.int64)

            measure("lancedb ivf_pq", search, queries, truth, nprobes=nprobes, refine=refine, build_s=build_s)

            def filtered(q: NDArray[np.float32], n: int = nprobes, r: int = refine) -> NDArray[np.int64]:
                query = table.search(q).where("allowed", prefilter=True).nprobes(n).refine_factor(r)
                return np.asarray(
                    query.limit(args.k).select(["id", "_distance"]).to_arrow().column("id").to_numpy(), dtype=np.int64
                )

            measure("lancedb filtered", filtered, queries, ftruth, nprobes=nprobes, refine=refine)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run_exact(args: Any) -> None:
    """Exact search on uniform random unit vectors (ANN on them is degenerate): ours vs a bare numpy product."""
    rng = np.random.default_rng(3)
    data = rng.standard_normal((args.n, args.dim), dtype=np.float32)
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    queries = rng.standard_normal((20, args.dim), dtype=np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    truth = exact_topk(data, queries, args.k)[1]

    def bare(q: NDArray[np.float32]) -> NDArray[np.int64]:
        scores = data @ q
        top = np.argpartition(scores, -args.k)[-args.k :]
        return top[np.argsort(-scores[top])].astype(np.int64)

    def ours(q: NDArray[np.float32]) -> NDArray[np.int64]:
        return exact_topk(data, q, args.k)[1][0]

    # Interleaved (bare, ours, bare, ours, …) so that load from other processes hits both alike.
    times: dict[str, list[float]] = {"numpy bare matvec+argpartition": [], "ours exact": []}
    batch = queries[:16]
    batch_times: dict[str, list[float]] = {"numpy bare batch of 16": [], "ours exact batch of 16": []}
    for _ in range(3):
        for query, expected in zip(queries, truth, strict=True):
            for name, fn in zip(times, (bare, ours), strict=True):
                started = time.perf_counter()
                found = fn(query)
                times[name].append(time.perf_counter() - started)
                assert set(found.tolist()) == set(expected.tolist()), name
        for name, run in zip(
            batch_times,
            (lambda: np.argpartition(batch @ data.T, -args.k, axis=1), lambda: exact_topk(data, batch, args.k)),
            strict=True,
        ):
            started = time.perf_counter()
            run()
            batch_times[name].append(time.perf_counter() - started)
    for name, values in {**times, **batch_times}.items():
        row = {"name": f"{name} (uniform {args.n}x{args.dim})", "p50_ms": round(statistics.median(values) * 1e3, 3)}
        row["recall"] = 1.0
        ROWS.append(row)
        print(json.dumps(row), flush=True)


def real_vectors(lake_root: str) -> dict[str, NDArray[np.float32]]:
    """Media-level vectors of every active model in the lake's latest snapshot."""
    snapshot = open_lake(lake_root, create=False).snapshot()
    models = active_models(snapshot)
    found = {}
    for model in (models.image, models.text):
        if model is not None:
            found[model.model_id] = read_vectors(snapshot, model.model_id)[1]
    return found


def run_real(vectors: dict[str, NDArray[np.float32]], args: Any) -> None:
    """On the real vectors: each one is a query; HNSW (built on them) against exact search."""
    for model_id, data in vectors.items():
        k = min(args.k, len(data))
        truth = exact_topk(data, data, k)[1]
        index = HnswIndex.build(data, HnswParams(m=args.m, ef_construction=args.ef_construction))
        measure(f"real {model_id} exact", lambda q, d=data, n=k: exact_topk(d, q, n)[1][0], data, truth, n=len(data))
        measure(f"real {model_id} hnsw", lambda q, i=index, n=k: i.search(q, n)[1][0], data, truth, n=len(data))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--m", type=int, default=HnswParams.m)
    parser.add_argument("--ef-construction", type=int, default=HnswParams.ef_construction)
    parser.add_argument("--ef", type=lambda s: [int(x) for x in s.split(",")], default=[32, 64, 128, 256])
    parser.add_argument("--selectivity", type=float, default=0.1)
    parser.add_argument(
        "--selectivities", type=lambda s: [float(x) for x in s.split(",")], default=[0.005, 0.02, 0.1, 0.5]
    )
    # usearch builds ~6x slower than faiss here (~45 min at 1M): ask for it with --peers at smaller --n.
    parser.add_argument("--peers", type=lambda s: set(s.split(",")) - {""}, default={"faiss", "lancedb"})
    parser.add_argument("--skip-exact", action="store_true", help="Skip exact-vs-numpy on uniform vectors.")
    parser.add_argument("--lake", default=None, help="Also measure (and mix in) this lake's real media vectors.")
    parser.add_argument("--out", type=Path, default=None, help="JSON rows (default: results_search.json here).")
    parser.add_argument("--quick", action="store_true", help="Smoke run: 20k vectors, 50 queries, faiss only.")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.queries, args.peers = min(args.n, 20_000), min(args.queries, 50), args.peers & {"faiss"}
    elif args.out is None:
        args.out = Path(__file__).with_name("results_search.json")
    if args.selectivity not in args.selectivities:
        args.selectivities.append(args.selectivity)

    mixture = clustered_unit_vectors(args.dim, args.clusters, seed=0)
    data, _ = timed(f"generate {args.n}x{args.dim}", lambda: mixture.sample(args.n, seed=1))
    real = real_vectors(args.lake) if args.lake else {}
    mixed_in = [v for v in real.values() if v.shape[1] == args.dim]
    if mixed_in:
        data = np.concatenate([data, *mixed_in])
        print(json.dumps({"step": "real vectors mixed in", "rows": sum(len(v) for v in mixed_in)}), flush=True)
    queries = mixture.sample(args.queries, seed=2)
    truth, _ = timed("exact ground truth", lambda: exact_topk(data, queries, args.k)[1])
    index = run_ours(data, queries, truth, args)
    if "faiss" in args.peers:
        run_faiss(index, queries, truth, args)
    run_filtered(index, data, queries, args)
    if "usearch" in args.peers:
        run_usearch(data, queries, truth, args)
    if "lancedb" in args.peers:
        run_lancedb(data, queries, truth, args)
    if not args.skip_exact:
        run_exact(args)
    run_real(real, args)
    report = {"config": {k: sorted(v) if isinstance(v, set) else v for k, v in vars(args).items() if k != "out"}}
    if args.out is not None:  # a --quick run writes nothing unless asked
        args.out.write_text(json.dumps({**report, "rows": ROWS}, indent=1, default=str))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
