"""The media pipeline over all of ../shared/media, through a real local lake: every good file registered
with metadata (images and video with thumbnails and embeddings, documents with text), every malformed file
quarantined with its reason while the batch still publishes, identical bytes processed once, model labels
queryable, and a re-run that computes nothing new (model calls counted)."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
import pytest
from PIL import Image, ImageOps

from mm_platform.catalog import open_lake
from mm_platform.config import PipelineConfig
from mm_platform.errors import StorageError
from mm_platform.ingest.batch_stage import BatchStage
from mm_platform.ingest.process import BatchProcessor, BatchReport
from mm_platform.ingest.reuse import ModelRef, ReuseIndex
from mm_platform.lake import Lake, Snapshot
from mm_platform.sources import LocalFolderSource
from tests.reuse_reference import reuse_row_by_row

GOOD = ("images", "video", "audio", "documents")


@pytest.fixture(scope="module")
def processed(
    shared_media: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Lake, BatchProcessor, BatchReport]]:
    lake = open_lake(str(tmp_path_factory.mktemp("pipeline") / "lake"))
    processor = BatchProcessor(lake, PipelineConfig(timeout_s=120))
    source = LocalFolderSource(shared_media)
    report = processor.run(source, list(source.list_objects()), "shared-media", "run-1")
    yield lake, processor, report


def _by_key(snap: Snapshot) -> dict[str, dict[str, object]]:
    return {str(r["key"]): r for r in snap.table("media").to_pylist()}


def test_every_good_file_is_registered_with_metadata(
    processed: tuple[Lake, BatchProcessor, BatchReport], shared_media: Path
) -> None:
    lake, _, report = processed
    snap = lake.snapshot()
    assert report.publish is not None and snap.seq == report.publish.seq
    media = _by_key(snap)
    metadata = {r["media_id"]: r for r in snap.table("metadata").to_pylist()}
    files = sorted(
        str(p.relative_to(shared_media)) for p in shared_media.rglob("*") if p.is_file() and p.parent.name in GOOD
    )
    assert files, "no shared media found"
    for key in files:
        row = media[key]
        assert row["status"] == "active", key
        assert row["content_sha256"] and row["size_bytes"] == (shared_media / key).stat().st_size
        assert row["media_id"] in metadata, f"{key} has no metadata"
        expected = {"images": "image", "video": "video", "audio": "audio", "documents": "document"}[key.split("/")[0]]
        assert metadata[row["media_id"]]["modality"] == expected, key
    assert media["images/fruits_really_a_jpeg.png"]["mime_type"] == "image/jpeg"


def test_images_and_video_have_thumbnails_and_vectors(processed: tuple[Lake, BatchProcessor, BatchReport]) -> None:
    lake, processor, _ = processed
    snap = lake.snapshot()
    media = _by_key(snap)
    derived = snap.table("derived")
    vectors = snap.table("embeddings", filter=pc.field("subject_kind") == "media")
    image_model = processor.embedders["image"]
    by_subject = {r["subject_id"]: r for r in vectors.to_pylist() if r["model_id"] == image_model.model_id}
    thumbs = {r["media_id"]: r for r in derived.filter(pc.field("kind") == "thumbnail").to_pylist()}
    for key, row in media.items():
        if not key.startswith(("images/", "video/")):
            continue
        thumb = thumbs[row["media_id"]]
        picture = Image.open(io.BytesIO(thumb["data"]))
        picture.load()
        assert max(picture.size) <= 256 and picture.format == "JPEG", key
        vector = by_subject[row["media_id"]]
        assert vector["dim"] == image_model.dim == len(vector["vector"])
        assert abs(float(np.linalg.norm(vector["vector"])) - 1.0) < 1e-4
        assert vector["source_content_sha256"] == row["content_sha256"]
        assert vector["model_revision"] == image_model.revision
    keyframes = derived.filter(pc.field("kind") == "keyframe")
    video_ids = {row["media_id"] for key, row in media.items() if key.startswith("video/")}
    assert set(keyframes.column("media_id").to_pylist()) == video_ids


def test_thumbnails_are_upright(processed: tuple[Lake, BatchProcessor, BatchReport], shared_media: Path) -> None:
    lake, _, _ = processed
    snap = lake.snapshot()
    media = _by_key(snap)
    metadata = {r["media_id"]: r for r in snap.table("metadata").to_pylist()}
    thumbs = {r["media_id"]: r for r in snap.table("derived", filter=pc.field("kind") == "thumbnail").to_pylist()}
    turned = [
        k for k, r in media.items() if k.startswith("images/") and (metadata[r["media_id"]]["orientation"] or 1) != 1
    ]
    assert turned, "the corpus has images with an EXIF orientation"
    for key in turned:
        thumb = np.asarray(Image.open(io.BytesIO(thumbs[media[key]["media_id"]]["data"])).convert("RGB"), dtype=float)
        with Image.open(shared_media / key) as original:
            size = (thumb.shape[1], thumb.shape[0])
            upright = np.asarray(ImageOps.exif_transpose(original).convert("RGB").resize(size), dtype=float)
            as_stored = np.asarray(original.convert("RGB").resize(size), dtype=float)
        # The thumbnail matches the upright picture far better than the picture as stored.
        assert np.abs(thumb - upright).mean() < 0.5 * np.abs(thumb - as_stored).mean(), key


def test_documents_have_text_and_the_encrypted_one_says_so(processed: tuple[Lake, BatchProcessor, BatchReport]) -> None:
    lake, processor, _ = processed
    snap = lake.snapshot()
    media = _by_key(snap)
    metadata = {r["media_id"]: r for r in snap.table("metadata").to_pylist()}
    encrypted = metadata[media["documents/encrypted-file.pdf"]["media_id"]]
    assert encrypted["encrypted"] is True and not encrypted["text"]
    crazy = metadata[media["documents/crazyones.pdf"]["media_id"]]
    assert "crazy" in str(crazy["text"]).lower()
    chunks = snap.table(
        "derived", filter=(pc.field("kind") == "text_chunk") & (pc.field("media_id") == crazy["media_id"])
    )
    assert chunks.num_rows >= 1
    text_vectors = snap.table("embeddings", filter=pc.field("media_id") == crazy["media_id"])
    assert set(text_vectors.column("model_id").to_pylist()) == {processor.embedders["text"].model_id}


def test_every_malformed_file_is_quarantined_and_the_batch_published(
    processed: tuple[Lake, BatchProcessor, BatchReport], shared_media: Path
) -> None:
    lake, _, report = processed
    snap = lake.snapshot()
    media = _by_key(snap)
    quarantine = {r["media_id"]: r for r in snap.table("quarantine").to_pylist()}
    malformed = sorted(p.name for p in (shared_media / "malformed").iterdir())
    for name in malformed:
        row = media[f"malformed/{name}"]
        assert row["status"] == "quarantined", name
        reason = quarantine[row["media_id"]]
        assert reason["reason"] and reason["detail"] and reason["stage"], name
    assert report.quarantined == len(malformed)
    metadata_ids = set(snap.table("metadata", columns=["media_id"]).column("media_id").to_pylist())
    assert not metadata_ids & {media[f"malformed/{n}"]["media_id"] for n in malformed}


def test_identical_bytes_are_processed_once_and_labels_are_queryable(
    processed: tuple[Lake, BatchProcessor, BatchReport],
) -> None:
    lake, processor, report = processed
    snap = lake.snapshot()
    media = _by_key(snap)
    assert media["images/fruits.jpg"]["content_sha256"] == media["images/fruits_really_a_jpeg.png"]["content_sha256"]
    assert report.reused >= 1
    vectors = snap.table("embeddings", filter=pc.field("subject_kind") == "media").to_pylist()
    by_media = {r["media_id"]: r["vector"] for r in vectors}
    assert (
        by_media[media["images/fruits.jpg"]["media_id"]]
        == by_media[media["images/fruits_really_a_jpeg.png"]["media_id"]]
    )
    # "images that model X labels 'orange' with confidence > 0.5" is a plain filter on the derived table.
    oranges = snap.table(
        "derived",
        filter=(pc.field("kind") == "label")
        & (pc.field("label") == "orange")
        & (pc.field("score") > 0.5)
        & (pc.field("producer") == processor.embedders["image"].model_id),
    )
    assert media["images/orange.jpg"]["media_id"] in set(oranges.column("media_id").to_pylist())


def test_rerunning_the_batch_computes_nothing_new(
    processed: tuple[Lake, BatchProcessor, BatchReport], shared_media: Path
) -> None:
    lake, processor, first = processed
    before = lake.snapshot()
    source = LocalFolderSource(shared_media)
    again = processor.run(source, list(source.list_objects()), "shared-media", "run-2")
    assert again.model_calls == {"image": 0, "text": 0}
    assert again.analyzed == 0 and again.reused == again.objects
    assert again.quarantined == first.quarantined  # earlier verdicts are copied, not re-probed
    after = lake.snapshot()
    for table in ("media", "metadata", "derived", "embeddings", "quarantine"):
        assert after.table(table).num_rows == before.table(table).num_rows, table


def test_the_reuse_index_agrees_with_a_row_by_row_reading_of_the_lake(
    processed: tuple[Lake, BatchProcessor, BatchReport],
) -> None:
    lake, processor, _ = processed
    snap = lake.snapshot()
    every_content = {
        sha
        for table in ("media", "metadata", "quarantine")
        for sha in snap.table(table, columns=["content_sha256"]).column("content_sha256").to_pylist()
        if sha
    }
    models = processor.models()
    other_revision = {role: ModelRef(m.model_id, m.revision + "-next") for role, m in models.items()}
    seen = []
    for configured in (models, other_revision):
        index = ReuseIndex.load(snap, configured)
        complete, quarantined = reuse_row_by_row(snap, configured)
        assert {sha for sha in every_content if sha in index.complete} == complete
        assert {sha for sha in every_content if sha in index.quarantined} == quarantined
        seen.append((len(complete), len(quarantined)))
    # a new model revision leaves only what needs no vector (audio, text-less documents) complete
    assert seen[0][0] > seen[1][0] > 0 and seen[0][1] == seen[1][1] > 0, seen


def test_a_batch_hands_its_largest_files_to_the_workers_first(
    processed: tuple[Lake, BatchProcessor, BatchReport], tmp_path: Path
) -> None:
    """A large file started last would keep one worker busy while the others idle at the batch's end."""
    _, processor, _ = processed
    sizes = [3_000, 90_000, 500, 40_000, 40_000, 7_000]
    for i, size in enumerate(sizes):  # new content (nothing to reuse), listed in name order
        (tmp_path / f"{i}.bin").write_bytes(bytes([i]) * size)
    source = LocalFolderSource(tmp_path)
    batch = BatchStage(processor, list(source.list_objects()), "largest-first", "run-x", False)
    try:
        handed = [Path(uri).name for uri, _ in batch.to_analyze(source)]
    finally:
        batch.close()
    assert handed == ["1.bin", "3.bin", "4.bin", "5.bin", "0.bin", "2.bin"]  # equal sizes keep listing order


def test_a_batch_hands_files_to_the_workers_while_its_stage_opens(
    processed: tuple[Lake, BatchProcessor, BatchReport], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Opening the stage (its tables, and the re-writes of rows it replaces) must not hold up the first decode."""
    lake, processor, _ = processed
    (tmp_path / "a.bin").write_bytes(b"content no earlier batch had, for the stage-open test")
    source = LocalFolderSource(tmp_path)
    handed = threading.Event()
    opened_after_hand_over: list[bool] = []
    open_stage = lake.stage_writer

    def open_once_a_file_is_handed_over(*args: Any, **kwargs: Any) -> Any:
        opened_after_hand_over.append(handed.wait(10))
        return open_stage(*args, **kwargs)

    monkeypatch.setattr(lake, "stage_writer", open_once_a_file_is_handed_over)
    batch = BatchStage(processor, list(source.list_objects()), "open-ahead", "run-y", False)
    try:
        for _ in batch.to_analyze(source):
            handed.set()
        assert batch.writer is not None
    finally:
        batch.close()
    assert opened_after_hand_over == [True]


def test_a_stage_that_cannot_open_fails_the_batch_with_its_error(
    processed: tuple[Lake, BatchProcessor, BatchReport], shared_media: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake, processor, _ = processed

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise StorageError("the lake refused a stage", hint="a test")

    monkeypatch.setattr(lake, "stage_writer", refuse)
    source = LocalFolderSource(shared_media / "images")
    with pytest.raises(StorageError, match="refused a stage"):
        processor.stage(source, list(source.list_objects())[:3], "no-stage", "run-z")
