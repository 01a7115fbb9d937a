"""Real-world input never blocks, hangs or poisons ingest.

One ``mmp ingest`` over a hostile folder (a valid 120000x8 panorama, a name that is not UTF-8, a symlink to
a FIFO, a symlink out of the folder, two identical broken files, good images) publishes every good file,
registers every listed object, quarantines the rest with their own URI and reason, and a second run
publishes nothing. A per-row failure (one NaN vector) quarantines only its object; a systemic one (every
vector NaN) still blocks the batch, naming objects. Large objects keep memory flat.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from numpy.typing import NDArray
from PIL import Image

from mm_platform.catalog import open_lake
from mm_platform.cli import main
from mm_platform.config import PipelineConfig
from mm_platform.embed import Embedder
from mm_platform.errors import AuditFailedError
from mm_platform.ingest.process import BatchProcessor
from mm_platform.quality import default_checks
from mm_platform.sources import LocalFolderSource
from tests.conftest import REPO_ROOT

ODD_NAME = b"caf\xff\xfe.jpg"
INGEST_BOUND_S = 150


def _hostile_folder(root: Path, images: Path) -> Path:
    src = root / "src"
    (src / "pipes").mkdir(parents=True)
    for name in ("apple.jpg", "orange.jpg", "flower.jpg"):
        shutil.copy(images / name, src / name)
    Image.new("RGB", (120_000, 8), (10, 200, 30)).save(src / "panorama.png")
    shutil.copy(images / "baboon.jpg", os.fsencode(src) + b"/" + ODD_NAME)
    os.mkfifo(src / "pipes" / "fifo")  # a bare FIFO is not media: not listed at all
    (src / "to_fifo.jpg").symlink_to(src / "pipes" / "fifo")
    outside = root / "outside.jpg"
    shutil.copy(images / "fruits.jpg", outside)
    (src / "outside.jpg").symlink_to(outside)
    broken = (images / "apple.jpg").read_bytes()[:4000]  # a JPEG cut short: truncated
    (src / "broken1.jpg").write_bytes(broken)
    (src / "broken2.jpg").write_bytes(broken)
    return src


def _ingest(src: Path, lake: Path, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MM_LAKE": str(lake), "DAGSTER_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "mm_platform", "ingest", str(src), "--json"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=INGEST_BOUND_S * 2,
    )


def test_hostile_folder_ingests_in_one_command(tmp_path: Path, shared_media: Path) -> None:
    src = _hostile_folder(tmp_path, shared_media / "images")
    lake_root, home = tmp_path / "lake", tmp_path / "dagster_home"
    started = time.monotonic()
    first = _ingest(src, lake_root, home)
    elapsed = time.monotonic() - started
    assert first.returncode == 0, first.stderr[-4000:]
    assert elapsed < INGEST_BOUND_S, f"ingest took {elapsed:.0f} s"

    listed = list(LocalFolderSource(src).list_objects())
    snapshot = open_lake(str(lake_root), create=False).snapshot()
    media = {row["uri"]: row for row in snapshot.table("media").to_pylist()}
    assert {o.uri for o in listed} == set(media), "every listed object has a media row"
    status = {row["key"]: row["status"] for row in media.values()}
    odd_key = "caf%FF%FE.jpg"
    assert status == {
        "apple.jpg": "active",
        "orange.jpg": "active",
        "flower.jpg": "active",
        "panorama.png": "active",
        odd_key: "active",
        "to_fifo.jpg": "quarantined",
        "outside.jpg": "quarantined",
        "broken1.jpg": "quarantined",
        "broken2.jpg": "quarantined",
    }
    odd = next(row for row in media.values() if row["key"] == odd_key)
    assert odd["uri"].endswith("/src/caf%FF%FE.jpg")  # the URI holds the exact bytes
    metadata = {row["media_id"]: row for row in snapshot.table("metadata").to_pylist()}
    panorama = next(row for row in media.values() if row["key"] == "panorama.png")
    assert (metadata[panorama["media_id"]]["width"], metadata[panorama["media_id"]]["height"]) == (120_000, 8)

    quarantine = {row["uri"]: row for row in snapshot.table("quarantine").to_pylist()}
    by_key = {media[uri]["key"]: row for uri, row in quarantine.items()}
    assert set(by_key) == {"to_fifo.jpg", "outside.jpg", "broken1.jpg", "broken2.jpg"}
    assert all(row["media_id"] == media[uri]["media_id"] for uri, row in quarantine.items()), "own URI and id"
    assert "FIFO" in by_key["to_fifo.jpg"]["detail"]
    assert "outside the source folder" in by_key["outside.jpg"]["detail"]
    assert by_key["broken1.jpg"]["reason"] == by_key["broken2.jpg"]["reason"] == "truncated"

    fifo_uri = next(uri for uri, row in media.items() if row["key"] == "to_fifo.jpg")
    traced = CliRunner().invoke(main, ["--lake", str(lake_root), "lineage", fifo_uri, "--json"])
    assert traced.exit_code == 0, traced.output
    lineage = json.loads(traced.output)
    assert lineage["source"]["status"] == "quarantined" and lineage["quarantine"]["matches_content"] is True

    second = _ingest(src, lake_root, home)
    assert second.returncode == 0, second.stderr[-4000:]
    summary = json.loads(second.stdout)
    assert summary["batches"] == [] and summary["snapshot"]["seq"] == snapshot.seq, "nothing new, no poisoning"


def test_file_deleted_after_listing_gets_a_media_row(tmp_path: Path, shared_media: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("apple.jpg", "orange.jpg"):
        shutil.copy(shared_media / "images" / name, src / name)
    source = LocalFolderSource(src)
    listed = list(source.list_objects())
    (src / "orange.jpg").unlink()
    lake = open_lake(str(tmp_path / "lake"))
    with BatchProcessor(lake, PipelineConfig(), _planted_embedders(())) as processor:
        processor.run(source, listed, "b1", "r1")
    snapshot = lake.snapshot()
    status = {row["key"]: row["status"] for row in snapshot.table("media").to_pylist()}
    assert status == {"apple.jpg": "active", "orange.jpg": "quarantined"}
    [row] = snapshot.table("quarantine").to_pylist()
    assert row["uri"].endswith("/orange.jpg") and "deleted after it was listed" in row["detail"]


# --- planted failures: one odd row vs a broken producer ---------------------------------------------------


class PlantedEmbedder(Embedder[object]):
    """A tiny deterministic embedder that returns NaN vectors for the planted items (images by size)."""

    def __init__(self, modality: str, poisoned: Sequence[tuple[int, int]] | str) -> None:
        super().__init__(device="cpu", torch_threads=None)
        self._modality = modality
        self._poisoned = poisoned

    model_id = property(lambda self: f"planted-{self._modality}")
    revision = property(lambda self: "1")
    dim = property(lambda self: 8)
    modality = property(lambda self: self._modality)  # type: ignore[assignment]

    def _encode_batch(self, items: Sequence[object]) -> NDArray[np.float32]:
        vectors = np.zeros((len(items), 8), dtype=np.float32)
        for row, item in enumerate(items):
            seed = sum(item.size) if isinstance(item, Image.Image) else len(str(item))
            vectors[row, seed % 8] = 1.0
            if self._poisoned == "all" or (isinstance(item, Image.Image) and item.size in self._poisoned):
                vectors[row] = np.nan
        return vectors


def _planted_embedders(poisoned: Sequence[tuple[int, int]] | str) -> dict[str, Embedder[object]]:
    return {"image": PlantedEmbedder("image", poisoned), "text": PlantedEmbedder("text", ())}


def _images(root: Path, count: int) -> Path:
    root.mkdir()
    for i in range(count):  # distinct sizes: an embedding input keeps its size below 256 px
        Image.new("RGB", (40 + i, 30), (20 * i, 90, 160)).save(root / f"img{i}.png")
    return root


def test_one_nan_vector_quarantines_only_its_object(tmp_path: Path) -> None:
    source = LocalFolderSource(_images(tmp_path / "src", 6))
    lake = open_lake(str(tmp_path / "lake"))
    embedders = _planted_embedders([(42, 30)])  # img2
    with BatchProcessor(lake, PipelineConfig(), embedders) as processor:
        checks = default_checks({e.model_id: e.dim for e in embedders.values()})
        report = processor.run(source, list(source.list_objects()), "b1", "r1", checks)
    assert report.publish is not None and report.reasons == {"invalid": 1}
    snapshot = lake.snapshot()
    status = {row["key"]: row["status"] for row in snapshot.table("media").to_pylist()}
    assert status == {f"img{i}.png": "quarantined" if i == 2 else "active" for i in range(6)}
    [row] = snapshot.table("quarantine").to_pylist()
    assert row["stage"] == "validation" and row["reason"] == "invalid" and row["uri"].endswith("/img2.png")
    assert row["detail"].startswith("embedding_vectors_finite: finite values failed: vector")
    media_of = {row["media_id"] for row in snapshot.table("embeddings").to_pylist()}
    assert row["media_id"] not in media_of, "the failing object's rows are not published"
    assert len(media_of) == 5


def test_every_vector_nan_blocks_the_batch_naming_objects(tmp_path: Path) -> None:
    source = LocalFolderSource(_images(tmp_path / "src", 4))
    lake = open_lake(str(tmp_path / "lake"))
    embedders = _planted_embedders("all")
    with BatchProcessor(lake, PipelineConfig(), embedders) as processor:
        checks = default_checks({e.model_id: e.dim for e in embedders.values()})
        with pytest.raises(AuditFailedError) as failed:
            processor.run(source, list(source.list_objects()), "b1", "r1", checks)
    message = failed.value.message
    assert "validation_share" in message and "4 of 4 objects" in message
    assert "/img0.png: embedding_vectors_finite" in message, message
    assert lake.snapshot().seq == 0, "nothing published"
    status = CliRunner().invoke(main, ["--lake", str(tmp_path / "lake"), "status"])
    assert status.exit_code == 0 and "rejected" in status.output
    named = [line for line in status.output.splitlines() if line.strip().startswith("object")]
    assert len(named) == 4 and all("validation_share" in line for line in named), status.output
    assert any(line.endswith(".png: validation_share") and "/img1.png" in line for line in named)


# --- memory stays flat in object size --------------------------------------------------------------------


def _peak(folder: Path, lake: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-m", "tests.large_object_rss", str(folder), str(lake)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def test_a_2gb_object_keeps_memory_flat(tmp_path: Path, shared_media: Path) -> None:
    small = tmp_path / "small"
    small.mkdir()
    for name in ("apple.jpg", "orange.jpg", "flower.jpg"):
        shutil.copy(shared_media / "images" / name, small / name)
    big = tmp_path / "big"
    shutil.copytree(small, big)
    with open(big / "huge.mp4", "wb") as sparse:  # 2 GB, sparse: no disk used, every byte still hashed
        sparse.truncate(2 * 1024**3)
    baseline, large = _peak(small, tmp_path / "lake1"), _peak(big, tmp_path / "lake2")
    assert large["objects"] == baseline["objects"] + 1
    assert large["main_mb"] <= 1.3 * baseline["main_mb"], (baseline, large)
    assert large["worker_mb"] <= 1.3 * baseline["worker_mb"] + 16, (baseline, large)
