"""A small lake of real media (from ../shared/media), built once per session (the ``media_lake`` fixture) for the
annotation, annotation-crash and branch tests, each of which changes a private copy."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from mm_platform.catalog import open_lake
from mm_platform.ingest.batches import ingest_batches
from mm_platform.ingest.process import BatchProcessor
from mm_platform.lake import Lake
from mm_platform.sources import LocalFolderSource

MEDIA = (
    "images/orange.jpg",
    "images/apple.jpg",
    "images/chelsea.png",
    "images/baboon.jpg",
    "images/butterfly.jpg",
    "images/fruits.jpg",
    "images/fruits_really_a_jpeg.png",  # the same bytes as fruits.jpg under another key
)
QUARANTINED = "images/empty.jpg"  # from malformed/empty.jpg: zero bytes, quarantined at ingest


def build_media_lake(shared_media: Path, root: Path) -> tuple[Path, Path]:
    """Ingest the media into ``root/lake`` through the real pipeline; returns (media folder, lake folder)."""
    media = root / "media"
    for name in MEDIA:
        (media / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(shared_media / name, media / name)
    shutil.copy(shared_media / "malformed/empty.jpg", media / QUARANTINED)
    lake = open_lake(str(root / "lake"))
    source = LocalFolderSource(media)
    objects = list(source.list_objects())
    (batch,) = ingest_batches(source.uri, objects)
    BatchProcessor(lake).run(source, objects, batch.batch_id, "run-ingest")
    return media, root / "lake"


def copy_lake(lake_dir: Path, target: Path) -> Lake:
    """A private copy of the module's lake (Delta tables keep relative paths, so a copy is a lake)."""
    shutil.copytree(lake_dir, target)
    return open_lake(str(target))


def lake_files(lake_dir: Path) -> dict[str, int]:
    """Every file of a local lake, relative path → size: what a test that changed the lake would change."""
    return {str(p.relative_to(lake_dir)): p.stat().st_size for p in lake_dir.rglob("*") if p.is_file()}


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
