"""Pipeline benchmarks (issue: media pipeline). Ratios against baselines measured in the same run.

1. Overlap: image embedding wall time of a batch through the pipeline vs the best any schedule could do
   with the same work: max(decode time, model time, (decode CPU + model CPU) ÷ cores), each measured alone
   on the same images (goal ≤ 1.25×: decode overlaps compute). The third term matters since the model runs
   on ONNX Runtime: decode alone keeps every core busy and the model is no longer the long pole, so
   max(decode, model) is out of reach for any schedule; it is reported beside the ratio as ``ratio_max``.
2. Bounded memory: peak RSS of a 10k-object batch vs a 1k-object batch (goal ≤ 1.2×), each in its own
   process. The image model there is a tiny random CLIP (tests/tiny_clip.py) so that 10k objects finish in
   minutes on 2 cores; memory of the pipeline's machinery does not depend on the model's quality.

Run: ``.venv/bin/python -m benchmarks.pipeline [--quick] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast

import numpy as np
from PIL import Image

from mm_platform.catalog import open_lake
from mm_platform.config import PipelineConfig
from mm_platform.embed import EfficientNetLite0Embedder, MiniLMTextEmbedder
from mm_platform.ingest.analyze import Analysis, analyze
from mm_platform.ingest.process import PROBE_PRELOAD, BatchProcessor, start_probe_server
from mm_platform.machine import default_probe_workers, usable_cpus
from mm_platform.media import MediaRejected, ProbePool
from mm_platform.sources import LocalFolderSource

REPO = Path(__file__).resolve().parent.parent
SHARED_IMAGES = REPO.parent / "shared" / "media" / "images"


def _distinct_jpegs(target: Path, count: int) -> None:
    """Real photos, made distinct by bytes after the JPEG end marker (decoders ignore them)."""
    target.mkdir(parents=True)
    sources = sorted(p for p in SHARED_IMAGES.glob("*.jpg"))
    for i in range(count):
        original = sources[i % len(sources)]
        (target / f"{i:05d}-{original.name}").write_bytes(original.read_bytes() + f"copy-{i}".encode())


def bench_overlap(root: Path, count: int, repeats: int = 3) -> dict[str, float | str]:
    """Each measurement ``repeats`` times, in turn (decode on one core, on every core, model, pipeline);
    medians. Each pipeline run is a first batch, as a new ingest's is: fresh probe workers, a fresh lake."""
    folder = root / "overlap"
    _distinct_jpegs(folder, count)
    items = [(str(p), p.read_bytes()) for p in sorted(folder.iterdir())]
    embedder = EfficientNetLite0Embedder()
    embedders: dict[str, Any] = {"image": embedder, "text": MiniLMTextEmbedder()}
    embedder.encode_with_labels([Image.new("RGB", (256, 256))])  # load weights outside the timings
    source = LocalFolderSource(folder)
    objects = list(source.list_objects())

    cores = usable_cpus()
    # As `mmp ingest` does: every pool below, the pipeline's included, forks its workers from one server
    # that imported the decoders once (the first set of preloads started is the one all pools get).
    start_probe_server()

    def decode_all(workers: int) -> tuple[float, list[Analysis]]:
        start = time.perf_counter()
        with ProbePool(workers, 120, probe_fn=cast(Any, analyze), preload=PROBE_PRELOAD) as pool:
            done = [cast(Analysis, a) for _, a in pool.map(items) if not isinstance(a, MediaRejected)]
        return time.perf_counter() - start, done

    def model_alone(pictures: list[Image.Image]) -> tuple[float, float]:
        start, cpu_start = time.perf_counter(), time.process_time()
        for offset in range(0, len(pictures), 32):
            embedder.encode_with_labels(pictures[offset : offset + 32])
        return time.perf_counter() - start, time.process_time() - cpu_start

    def pipeline(run: int) -> float:
        with BatchProcessor(open_lake(str(root / f"overlap-lake-{run}")), PipelineConfig(), embedders) as processor:
            return processor.run(source, objects, "b", "r").timings_s["process"]

    runs: dict[str, list[float]] = {k: [] for k in ("one_core", "decode", "model", "model_cpu", "pipeline")}
    pictures: list[Image.Image] = []
    for run in range(repeats):
        runs["one_core"].append(decode_all(1)[0])  # one worker: its wall time is the decode side's CPU time
        decode, analyses = decode_all(default_probe_workers())
        runs["decode"].append(decode)
        pictures = [picture for a in analyses for _, picture in a.images]
        model, model_cpu = model_alone(pictures)
        runs["model"].append(model)
        runs["model_cpu"].append(model_cpu)
        runs["pipeline"].append(pipeline(run))
    m = {k: statistics.median(v) for k, v in runs.items()}
    bound = max(m["decode"], m["model"], (m["one_core"] + m["model_cpu"]) / cores)
    return {
        "images": len(pictures),
        "decode_s": m["decode"],
        "model_s": m["model"],
        "decode_one_core_s": m["one_core"],
        "model_cpu_s": m["model_cpu"],
        "cores": cores,
        "bound_s": bound,
        "pipeline_s": m["pipeline"],
        "pipeline_runs_s": ", ".join(f"{t:.2f}" for t in runs["pipeline"]),
        "ratio_max": m["pipeline"] / max(m["decode"], m["model"]),
        "ratio": m["pipeline"] / bound,
    }


def _memory_child(folder: str, limit: int, clip_dir: str, lake_dir: str) -> None:
    """Runs in its own process: one batch of ``limit`` objects; prints its peak RSS (self + workers)."""
    from mm_platform.embed import embedder_for

    source = LocalFolderSource(Path(folder))
    objects = list(source.list_objects())[:limit]
    config = PipelineConfig(image_model=f"clip:{clip_dir}", text_model="minilm")
    embedders = {"image": embedder_for(config.image_model, "image"), "text": embedder_for("minilm", "text")}
    lake = open_lake(lake_dir)
    start = time.perf_counter()
    report = BatchProcessor(lake, config, embedders).run(source, objects, f"mem-{limit}", "r")
    peak_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    peak_workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "objects": report.objects,
                "peak_mib": peak_self,
                "worker_peak_mib": peak_workers,
                "seconds": time.perf_counter() - start,
            }
        )
    )


def bench_memory(root: Path, small: int, large: int) -> dict[str, float]:
    from tests.tiny_clip import build_tiny_clip

    folder = root / "memory"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(large):
        pixels = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:06d}.jpg", quality=80)
    clip_dir = build_tiny_clip(root / "tiny-clip")
    results = {}
    for limit in (small, large):
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "benchmarks.pipeline",
                "--memory-child",
                str(folder),
                str(limit),
                str(clip_dir),
                str(root / f"mem-lake-{limit}"),
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        )
        results[limit] = json.loads(out.stdout.strip().splitlines()[-1])
    return {
        "small_objects": small,
        "small_peak_mib": results[small]["peak_mib"],
        "small_s": results[small]["seconds"],
        "large_objects": large,
        "large_peak_mib": results[large]["peak_mib"],
        "large_s": results[large]["seconds"],
        "ratio": results[large]["peak_mib"] / results[small]["peak_mib"],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--memory-child", nargs=4, metavar=("FOLDER", "LIMIT", "CLIP", "LAKE"))
    parser.add_argument("--repeats", type=int, default=3, help="overlap measurements per median")
    args = parser.parse_args()
    if args.memory_child:
        folder, limit, clip_dir, lake_dir = args.memory_child
        _memory_child(folder, int(limit), clip_dir, lake_dir)
        return
    root = Path(tempfile.mkdtemp(prefix="mmp-pipeline-bench-"))
    try:
        overlap = bench_overlap(root, 32 if args.quick else 96, args.repeats)
        memory = bench_memory(root, 100 if args.quick else 1000, 1000 if args.quick else 10_000)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print("| benchmark | measurements | ratio |")
    print("|---|---|---|")
    for name, result in (("image embedding overlap", overlap), ("peak memory", memory)):
        details = ", ".join(
            f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items() if k != "ratio"
        )
        print(f"| {name} | {details} | {result['ratio']:.2f}× |")


if __name__ == "__main__":
    main()
