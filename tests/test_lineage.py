"""Row-level lineage on a real lake: a source object version → its metadata row → derived rows → embeddings
(model, revision, run, partition, publish seq) → the snapshots that hold it; an overwritten object shows each
version in the snapshots that held it; a vector (subject id + model) leads back to its bytes; ``mmp lineage``."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from mm_platform.catalog import open_lake
from mm_platform.cli import main
from mm_platform.config import PipelineConfig
from mm_platform.ingest.analyze import ANALYZE_VERSION
from mm_platform.ingest.process import BatchProcessor
from mm_platform.lake import Lake
from mm_platform.lineage import LineageNotFoundError, embedding_lineage, media_lineage, resolve_media_id
from mm_platform.sources import LocalFolderSource

FILES = ["images/orange.jpg", "images/apple.jpg", "documents/crazyones.pdf", "video/bikes.mp4"]


@dataclass(frozen=True)
class Traced:
    lake: Lake
    root: Path
    folder: Path
    processor: BatchProcessor


@pytest.fixture(scope="module")
def traced(shared_media: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Traced]:
    """FILES published as snapshot 1; then images/apple.jpg is overwritten with other bytes: snapshot 2."""
    folder = tmp_path_factory.mktemp("source")
    for key in FILES:
        (folder / key).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shared_media / key, folder / key)
    root = tmp_path_factory.mktemp("lineage") / "lake"
    lake = open_lake(str(root))
    processor = BatchProcessor(lake, PipelineConfig(timeout_s=120))
    source = LocalFolderSource(folder)
    processor.run(source, list(source.list_objects()), "batch-1", "run-1")
    shutil.copyfile(shared_media / "images/fruits.jpg", folder / "images/apple.jpg")
    changed = [o for o in source.list_objects() if o.key == "images/apple.jpg"]
    processor.run(source, changed, "batch-2", "run-2")
    yield Traced(lake, root, folder, processor)


def test_a_media_object_is_found_by_id_uri_key_or_path(traced: Traced) -> None:
    snap = traced.lake.snapshot()
    media_id = resolve_media_id(snap, "images/orange.jpg")
    uri = (traced.folder / "images/orange.jpg").resolve().as_uri()
    assert resolve_media_id(snap, media_id) == media_id
    assert resolve_media_id(snap, uri) == media_id
    assert resolve_media_id(snap, str(traced.folder / "images/orange.jpg")) == media_id
    with pytest.raises(LineageNotFoundError, match="no media row"):
        resolve_media_id(snap, "images/missing.jpg")


def test_every_row_of_an_image_leads_to_its_bytes_run_and_publish(traced: Traced) -> None:
    lineage = media_lineage(traced.lake, "images/orange.jpg")
    data = (traced.folder / "images/orange.jpg").read_bytes()
    source = lineage.source
    assert source.content_sha256 == hashlib.sha256(data).hexdigest() and source.size_bytes == len(data)
    assert source.etag and source.run_id == "run-1" and source.partition == "batch-1"
    assert lineage.metadata is not None
    assert (lineage.metadata.producer, lineage.metadata.producer_version) == ("analyze", ANALYZE_VERSION)
    assert {r.details["kind"] for r in lineage.derived} == {"thumbnail", "label"}
    image_model = traced.processor.embedders["image"]
    (vector,) = lineage.embeddings
    assert vector.details["model_id"] == image_model.model_id == vector.producer
    assert vector.details["model_revision"] == image_model.revision
    assert vector.details["subject_kind"] == "media" and vector.row_id == source.media_id
    rows = [lineage.metadata, *lineage.derived, *lineage.embeddings]
    assert all(r.run_id == "run-1" and r.partition == "batch-1" and r.publish_seq == 1 for r in rows)
    assert all(r.matches_content for r in rows)
    assert lineage.quarantine is None
    assert [p.seq for p in lineage.snapshots] == [1, 2]  # untouched by the second publish


def test_an_overwritten_object_shows_each_version_where_it_was_published(traced: Traced) -> None:
    now = media_lineage(traced.lake, "images/apple.jpg")
    before = media_lineage(traced.lake, "images/apple.jpg", seq=1)
    assert now.source.media_id == before.source.media_id  # the id follows the URI …
    assert now.source.content_sha256 != before.source.content_sha256  # … the hash follows the bytes
    assert now.source.content_sha256 == hashlib.sha256((traced.folder / "images/apple.jpg").read_bytes()).hexdigest()
    assert (now.source.run_id, now.embeddings[0].run_id, now.embeddings[0].publish_seq) == ("run-2", "run-2", 2)
    assert (before.embeddings[0].run_id, before.embeddings[0].publish_seq) == ("run-1", 1)
    held = {p.seq: p.content_sha256 for p in now.snapshots}
    assert held == {1: before.source.content_sha256, 2: now.source.content_sha256}


def test_document_and_video_vectors_lead_back_to_their_chunks_frames_and_bytes(traced: Traced) -> None:
    for key, kind in (("documents/crazyones.pdf", "text_chunk"), ("video/bikes.mp4", "keyframe")):
        lineage = media_lineage(traced.lake, key)
        parts = [e for e in lineage.embeddings if e.details["subject_kind"] == "derived"]
        assert parts, key
        back = embedding_lineage(traced.lake, parts[0].row_id, str(parts[0].details["model_id"]))
        assert back.subject is not None and back.subject.details["kind"] == kind
        assert back.source.uri == (traced.folder / key).resolve().as_uri()
        assert back.content_matches and back.embedding.publish_seq == 1
    with pytest.raises(LineageNotFoundError, match="no embedding"):
        embedding_lineage(traced.lake, "0" * 32, "efficientnet-lite0")


def test_mmp_lineage_prints_the_chain(traced: Traced) -> None:
    runner = CliRunner()
    lake = ["--lake", str(traced.root)]
    result = runner.invoke(main, [*lake, "lineage", "images/apple.jpg", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["source"]["key"] == "images/apple.jpg" and [s["seq"] for s in payload["snapshots"]] == [1, 2]
    text = runner.invoke(main, [*lake, "lineage", "images/orange.jpg"])
    assert text.exit_code == 0 and "embeddings" in text.stdout and "snapshots  1, 2" in text.stdout
    media_id = payload["source"]["media_id"]
    vector = runner.invoke(main, [*lake, "lineage", media_id, "--model", "efficientnet-lite0"])
    assert vector.exit_code == 0 and "matches    yes" in vector.stdout
    missing = runner.invoke(main, [*lake, "lineage", "images/missing.jpg"])
    assert missing.exit_code == 2 and "no media row" in missing.output
