"""How well does text -> image search through ImageNet labels find the captioned image?

Embeds every image in the shared media with EfficientNet-Lite0 (top-5 labels), runs every caption of
``benchmarks/captions.tsv`` (written by hand from file names and sources, before any model output was
seen) through ``LabelBridge`` over MiniLM, and prints top-1 accuracy and MRR for each weighting.

The relevant items for a caption are its image and any byte-identical copy (fruits.jpg and
fruits_really_a_jpeg.png). Ties are counted against the bridge: an irrelevant image scoring the same as
the best relevant one ranks above it, so an all-zero score row is a miss, not a lucky draw.

    .venv/bin/python benchmarks/label_bridge_eval.py [--images DIR] [--verbose]
"""

from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path

import numpy as np
from PIL import Image

from mm_platform.embed import EfficientNetLite0Embedder, LabelBridge, MiniLMTextEmbedder, short_label
from mm_platform.embed.label_bridge import Weighting

REPO = Path(__file__).resolve().parent.parent
CAPTIONS = REPO / "benchmarks" / "captions.tsv"
DEFAULT_IMAGES = REPO.parent / "shared" / "media" / "images"


def read_captions(path: Path) -> list[tuple[str, str]]:
    rows = [line.split("\t") for line in path.read_text().splitlines() if line.strip()]
    return [(name, query) for name, query in rows[1:]]  # first row is the header


def rank_of_relevant(scores: np.ndarray, relevant: set[int]) -> int:
    """1-based rank of the best relevant item, ties resolved against it."""
    best = max(scores[i] for i in relevant)
    return 1 + sum(1 for i, s in enumerate(scores) if i not in relevant and s >= best)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES)
    parser.add_argument("--verbose", action="store_true", help="print every caption's rank and labels")
    args = parser.parse_args()

    names = sorted(p.name for p in args.images.iterdir() if p.is_file())
    digests = [hashlib.sha256((args.images / n).read_bytes()).hexdigest() for n in names]
    images = []
    for name in names:
        with Image.open(args.images / name) as im:
            im.seek(0)  # first frame of animations
            images.append(im.copy())

    image_model = EfficientNetLite0Embedder()
    started = time.perf_counter()
    _, labels = image_model.encode_with_labels(images, batch_size=16)
    image_s = time.perf_counter() - started

    captions = read_captions(CAPTIONS)
    index = {name: i for i, name in enumerate(names)}
    text_model = MiniLMTextEmbedder()
    print(
        f"{len(images)} images ({image_s:.1f} s, EfficientNet-Lite0 on {image_model.device}), {len(captions)} captions"
    )
    for weighting in ("cosine", "softmax"):
        evaluate(
            LabelBridge(text_model, weighting=weighting),
            weighting,
            captions,
            index,
            digests,
            labels,
            names,
            args.verbose,
        )
    n = len(images)
    print(f"random ranking, for scale: top-1 {1 / n:.3f}, MRR {sum(1 / r for r in range(1, n + 1)) / n:.3f}")


def evaluate(
    bridge: LabelBridge,
    weighting: Weighting,
    captions: list[tuple[str, str]],
    index: dict[str, int],
    digests: list[str],
    labels: list[list[tuple[str, float]]],
    names: list[str],
    verbose: bool,
) -> None:
    ranks = []
    started = time.perf_counter()
    for name, query in captions:
        target = index[name]
        relevant = {i for i, d in enumerate(digests) if d == digests[target]}
        scores = bridge.score(query, labels)
        rank = rank_of_relevant(scores, relevant)
        ranks.append(rank)
        if verbose:
            top = names[int(np.argmax(scores))]
            seen = ", ".join(f"{short_label(lab)} {p:.2f}" for lab, p in labels[target][:3])
            print(f"  {rank:>3}  {query!r:<45} {name:<28} top1={top:<28} [{seen}]")
    seconds = time.perf_counter() - started
    top1 = np.mean([r == 1 for r in ranks])
    mrr = np.mean([1 / r for r in ranks])
    print(
        f"weighting={weighting:<8} top-1 {top1:.3f} ({sum(r == 1 for r in ranks)}/{len(ranks)})  "
        f"MRR {mrr:.3f}  top-5 {np.mean([r <= 5 for r in ranks]):.3f}  ({seconds:.1f} s incl. label index)"
    )


if __name__ == "__main__":
    main()
