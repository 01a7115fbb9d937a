"""Reprocessing without drift: stale detection after a model change, shadow re-embedding beside the active
model (every snapshot meanwhile serves one complete model), the atomic switch and the switch back, a
SIGKILL in the middle of a reprocess, and overwritten objects that never mix versions in a snapshot."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow.compute as pc
import pytest

from mm_platform.catalog import open_lake
from mm_platform.config import PipelineConfig
from mm_platform.errors import ConfigError
from mm_platform.ingest.process import BatchProcessor
from mm_platform.lake import Lake, Snapshot
from mm_platform.quality import default_checks
from mm_platform.quality.invariants import model_coverage
from mm_platform.reprocess import activate_model, active_models, reprocess, stale_report
from mm_platform.sources import LocalFolderSource, source_from_uri
from tests.annotation_lake import copy_lake
from tests.tiny_clip import build_tiny_clip

REPO = Path(__file__).resolve().parent.parent
FILES = [
    "images/orange.jpg",
    "images/apple.jpg",
    "images/chelsea.png",
    "images/butterfly.jpg",
    "images/kivy_kiwi.jpg",
    "documents/crazyones.pdf",
]
IMAGES = 5


@pytest.fixture(scope="module")
def clip_spec(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"clip:{build_tiny_clip(tmp_path_factory.mktemp('clip'))}"


@pytest.fixture(scope="module")
def ingested_once(shared_media: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """FILES ingested through the real models once per module: (media folder, lake folder)."""
    root = tmp_path_factory.mktemp("reprocess")
    folder = root / "media"
    for name in FILES:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(shared_media / name, folder / name)
    lake = open_lake(str(root / "lake"))
    source = LocalFolderSource(folder)
    BatchProcessor(lake).run(source, list(source.list_objects()), "b1", "run-1")
    return folder, root / "lake"


@pytest.fixture
def ingested(ingested_once: tuple[Path, Path], shared_media: Path, tmp_path: Path) -> Iterator[tuple[Lake, Path]]:
    """A private copy of the module's lake over the module's media folder, which is restored after the test."""
    folder, lake_dir = ingested_once
    listed = {name: (folder / name).stat().st_mtime_ns for name in FILES}
    yield copy_lake(lake_dir, tmp_path / "lake"), folder
    for name, mtime_ns in listed.items():  # a test may overwrite a source object: put the listed version back
        if (folder / name).read_bytes() != (shared_media / name).read_bytes():
            shutil.copyfile(shared_media / name, folder / name)
            os.utime(folder / name, ns=(mtime_ns, mtime_ns))


def _processor(lake: Lake, clip_spec: str) -> BatchProcessor:
    return BatchProcessor(lake, PipelineConfig(image_model=clip_spec))


def _assert_serves_one_complete_model(snapshot: Snapshot, model_id: str) -> None:
    assert active_models(snapshot)["image"] == model_id
    assert model_coverage(snapshot, "image", model_id).passed


def test_a_model_change_is_stale_then_rebuilt_beside_and_switched_atomically(
    ingested: tuple[Lake, Path], clip_spec: str
) -> None:
    lake, _ = ingested
    old = active_models(lake.snapshot())["image"]
    assert old == "efficientnet-lite0"
    processor = _processor(lake, clip_spec)
    new = processor.embedders["image"].model_id
    [item] = stale_report(lake.snapshot(), processor.models())
    assert item.table == "embeddings" and item.rows == IMAGES and "have efficientnet-lite0" in item.reason

    checks = default_checks({e.model_id: e.dim for e in processor.embedders.values()})
    report = reprocess(lake, processor, source_from_uri, run_id="r2", checks=checks, max_objects=2)
    assert [len(b.stage.tables) for b in report.batches if b.stage] == [2, 2, 2]  # derived + embeddings only
    assert report.reembedded == IMAGES
    assert sum(b.items_embedded["image"] for b in report.batches) == IMAGES  # only what was stale
    assert sum(b.items_embedded["text"] for b in report.batches) == 0
    for snap in lake.snapshots():  # every snapshot of the reprocess serves the old, complete model
        _assert_serves_one_complete_model(snap, old)
    assert stale_report(lake.snapshot(), processor.models()) == []

    before = lake.snapshot().seq
    activate_model(lake, new)
    assert lake.snapshot().seq == before + 1
    _assert_serves_one_complete_model(lake.snapshot(), new)
    assert model_coverage(lake.snapshot(), "image", old).passed  # the old vectors are still beside
    activate_model(lake, old)  # switching back is one more publish
    assert lake.snapshot().seq == before + 2
    _assert_serves_one_complete_model(lake.snapshot(), old)


def test_an_interrupted_reprocess_keeps_the_old_model_active(ingested: tuple[Lake, Path], clip_spec: str) -> None:
    lake, _ = ingested
    processor = _processor(lake, clip_spec)
    reprocess(lake, processor, source_from_uri, run_id="r2", max_objects=2, limit_batches=1)
    _assert_serves_one_complete_model(lake.snapshot(), "efficientnet-lite0")
    with pytest.raises(ConfigError, match="without a vector"):
        activate_model(lake, processor.embedders["image"].model_id)


def test_sigkill_during_a_reprocess_publish(ingested: tuple[Lake, Path], clip_spec: str, tmp_path: Path) -> None:
    lake, _ = ingested
    ready = tmp_path / "ready"
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "MMP_FAULT_PAUSE_AT": "after_apply:embeddings",
        "MMP_FAULT_READY_FILE": str(ready),
    }
    command = [
        sys.executable,
        "-m",
        "mm_platform",
        "--lake",
        lake.location.root,
        "reprocess",
        "--image-model",
        clip_spec,
        "--max-objects",
        "2",
    ]
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    while not ready.exists():
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    _assert_serves_one_complete_model(lake.snapshot(), "efficientnet-lite0")  # half a batch is invisible

    env.pop("MMP_FAULT_PAUSE_AT")
    subprocess.run(command, cwd=REPO, env=env, check=True, capture_output=True)  # rolls forward, finishes
    new = _processor(lake, clip_spec).embedders["image"].model_id
    snapshot = lake.snapshot()
    assert model_coverage(snapshot, "image", new).passed  # exactly one vector per image: no duplicates
    _assert_serves_one_complete_model(snapshot, "efficientnet-lite0")


def test_an_overwritten_object_never_mixes_versions(ingested: tuple[Lake, Path], shared_media: Path) -> None:
    lake, folder = ingested
    (folder / "images/orange.jpg").write_bytes((shared_media / "images/flower.jpg").read_bytes())
    source = LocalFolderSource(folder)
    changed = [o for o in source.list_objects() if o.key == "images/orange.jpg"]
    BatchProcessor(lake).run(source, changed, "b2", "run-2")
    for snap in lake.snapshots():
        media = {r["media_id"]: r["content_sha256"] for r in snap.table("media").to_pylist()}
        for table in ("derived", "embeddings"):
            for row in snap.table(table, columns=["media_id", "source_content_sha256"]).to_pylist():
                assert row["source_content_sha256"] == media[row["media_id"]], (snap.seq, table)
        metadata = snap.table("metadata", columns=["media_id", "content_sha256"]).to_pylist()
        assert all(r["content_sha256"] == media[r["media_id"]] for r in metadata)
    orange = lake.snapshot().table("media", filter=pc.field("key") == "images/orange.jpg").to_pylist()
    assert len(orange) == 1
