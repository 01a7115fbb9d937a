"""Whole snapshots, over lakes built by the real pipeline from real files: the diff between two snapshots
(exactly the rows an overwrite and an erasure touched, per table, matched by key), export to Parquet with a
manifest pinning every source object, verification of that export against a local folder and S3 (moto,
unversioned and versioned buckets) after objects are overwritten or deleted, a PyTorch dataset that serves
the pinned bytes decoded upright with model labels (also through DataLoader workers), and the
``mmp diff / export / verify-export`` commands."""

from __future__ import annotations

import json
import pickle
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import torch
from click.testing import CliRunner
from PIL import Image, ImageOps
from torch.utils.data import DataLoader

from mm_platform.catalog import CATALOG, open_lake
from mm_platform.cli.snapshots import diff_command, export_command, verify_export_command
from mm_platform.config import PipelineConfig
from mm_platform.errors import ConfigError, SourceChangedError
from mm_platform.ingest.process import BatchProcessor
from mm_platform.lake import Lake, Snapshot
from mm_platform.snapshots import ExportManifest, VerifyReport, diff_snapshots, export_snapshot, verify_export
from mm_platform.snapshots.torch_dataset import SnapshotImageDataset
from mm_platform.sources import DeletedMedia, LocalFolderSource, S3Settings, source_from_uri
from tests.services import S3Endpoint

# key in the test folder -> file in the shared media
FILES = {
    "images/apple.jpg": "images/apple.jpg",
    "images/orange.jpg": "images/orange.jpg",
    "images/rotated.png": "images/pillow_exif_imagemagick_orientation.png",  # EXIF orientation 3
    "docs/crazyones.pdf": "documents/crazyones.pdf",
}
OVERWRITTEN, DELETED = "images/apple.jpg", "docs/crazyones.pdf"


@dataclass
class Story:
    """A local lake taken through three snapshots, and an export of the first checked along the way."""

    lake: Lake
    processor: BatchProcessor
    media_dir: Path
    export_dir: Path
    ids: dict[str, str]
    """key -> media_id"""
    verify_fresh: VerifyReport
    verify_after_overwrite: VerifyReport
    verify_after_delete: VerifyReport


@pytest.fixture(scope="module")
def story(shared_media: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Story]:
    root = tmp_path_factory.mktemp("snapshots")
    media_dir = root / "media"
    for key, shared in FILES.items():
        (media_dir / key).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shared_media / shared, media_dir / key)
    lake = open_lake(str(root / "lake"))
    processor = BatchProcessor(lake, PipelineConfig(timeout_s=120))
    source = LocalFolderSource(media_dir)
    objects = list(source.list_objects())
    first = processor.run(source, objects, "b1", "run-1")
    assert first.publish is not None and first.publish.seq == 1 and first.quarantined == 0
    ids = {o.key: o.media_id for o in objects}

    export_dir = root / "export-1"
    export_snapshot(lake, 1, export_dir)
    verify_fresh = verify_export(export_dir)

    # Snapshot 2: one object overwritten in place with other bytes (a different picture), re-ingested alone.
    shutil.copyfile(shared_media / "images/butterfly.jpg", media_dir / OVERWRITTEN)
    changed = [o for o in source.list_objects() if o.key == OVERWRITTEN]
    second = processor.run(source, changed, "b2", "run-2")
    assert second.publish is not None and second.publish.seq == 2
    verify_after_overwrite = verify_export(export_dir)

    # Snapshot 3: one object deleted from the source and erased from the lake.
    (media_dir / DELETED).unlink()
    erased = processor.stage_erasure([DeletedMedia(ids[DELETED], (media_dir / DELETED).as_uri())], "erase-1", "run-3")
    assert erased.stage is not None and lake.publish_stage(erased.stage).seq == 3
    verify_after_delete = verify_export(export_dir)

    yield Story(lake, processor, media_dir, export_dir, ids, verify_fresh, verify_after_overwrite, verify_after_delete)


def _keys(snapshot: Snapshot, table: str, media_id: str) -> set[tuple[str, ...]]:
    key = CATALOG[table].key
    rows = snapshot.table(table, columns=list(key), filter=pc.field("media_id") == media_id).to_pylist()
    return {tuple(row[c] for c in key) for row in rows}


def _listed(keys: list[dict[str, Any]], table: str) -> set[tuple[str, ...]]:
    return {tuple(k[c] for c in CATALOG[table].key) for k in keys}


# --- diff --------------------------------------------------------------------------------------------------


def test_diff_of_an_overwrite_lists_exactly_that_objects_rows(story: Story) -> None:
    lake, apple = story.lake, story.ids[OVERWRITTEN]
    s1, s2 = lake.snapshot(seq=1), lake.snapshot(seq=2)
    diff = diff_snapshots(lake, 1, 2, sample_size=100)
    expected_changed: dict[str, set[tuple[str, ...]]] = {
        "media": {(apple,)},
        "metadata": {(apple,)},
        # Thumbnail and top-5 labels keep their ids (media, kind, ordinal, producer) and get new values.
        "derived": _keys(s2, "derived", apple),
        "embeddings": _keys(s2, "embeddings", apple),
        "quarantine": set(),
    }
    assert expected_changed["derived"] == _keys(s1, "derived", apple) and len(expected_changed["derived"]) == 6
    for name, table in diff.tables.items():
        assert (table.added, table.removed, table.added_keys, table.removed_keys) == (0, 0, [], []), name
        assert _listed(table.changed_keys, name) == expected_changed.get(name, set()), name
        assert table.changed == len(expected_changed.get(name, set())), name
    media = diff.tables["media"]
    # The other three media rows were rewritten beside the replaced one, compared, and found equal.
    assert media.rewritten_unchanged == 3
    assert {"content_sha256", "etag", "size_bytes", "run_id", "partition"} <= set(media.changed_columns)
    assert "key" not in media.changed_columns and "uri" not in media.changed_columns


def test_diff_of_an_erasure_lists_the_removed_rows(story: Story) -> None:
    lake, pdf = story.lake, story.ids[DELETED]
    s2 = lake.snapshot(seq=2)
    diff = diff_snapshots(lake, 2, 3, sample_size=100)
    assert _listed(diff.tables["media"].changed_keys, "media") == {(pdf,)}  # a tombstone: status deleted
    assert diff.tables["media"].changed_columns["status"] == 1
    removed_from = ("metadata", "derived", "embeddings")
    for name in removed_from:
        table = diff.tables[name]
        assert table.added == table.changed == 0, name
        assert _listed(table.removed_keys, name) == _keys(s2, name, pdf) != set(), name
        assert table.removed == len(_keys(s2, name, pdf))
    assert all(diff.tables[name].is_empty for name in diff.tables if name not in ("media", *removed_from))


def test_diff_skips_unchanged_tables_and_ignores_columns_on_request(story: Story) -> None:
    lake = story.lake
    same = diff_snapshots(lake, 2, 2)
    assert same.is_empty and not any(t.compared for t in same.tables.values())

    from_empty = diff_snapshots(lake, 0, 1, sample_size=2)
    s1 = lake.snapshot(seq=1)
    for name, table in from_empty.tables.items():
        assert (table.added, table.changed, table.removed) == (s1.table(name).num_rows, 0, 0), name
        assert len(table.added_keys) == min(2, table.added)
    assert from_empty.tables["media"].added_keys == sorted(from_empty.tables["media"].added_keys, key=str)

    lineage = ("run_id", "partition", "registered_at")
    ignoring = diff_snapshots(lake, 1, 2, ignore_columns=lineage)
    assert ignoring.tables["media"].changed == 1  # the bytes changed: still a change
    assert not set(lineage) & set(ignoring.tables["media"].changed_columns)
    with pytest.raises(ConfigError, match="key column"):
        diff_snapshots(lake, 1, 2, ignore_columns=["media_id"])
    with pytest.raises(ConfigError, match="no table has a column"):
        diff_snapshots(lake, 1, 2, ignore_columns=["run_idd"])


# --- export and verify (local folder) ----------------------------------------------------------------------


def test_export_holds_the_snapshot_row_for_row_and_pins_every_object(story: Story) -> None:
    lake, folder = story.lake, story.export_dir
    manifest = ExportManifest.read(folder)
    s1 = lake.snapshot(seq=1)
    assert (manifest.seq, manifest.table_versions, manifest.lake) == (1, dict(s1.table_versions), lake.location.root)
    assert manifest.published_at == s1.published_at.isoformat()  # type: ignore[union-attr]
    assert set(manifest.tables) == set(s1.table_versions)
    for name in manifest.tables:
        sort = [(c, "ascending") for c in CATALOG[name].key]
        exported = pq.read_table(folder / manifest.tables[name].file).sort_by(sort)
        expected = s1.table(name).sort_by(sort)
        assert exported.schema == expected.schema and exported.equals(expected), name
        assert manifest.tables[name].rows == expected.num_rows
    media = {r["key"]: r for r in s1.table("media").to_pylist()}
    assert sorted(o.key for o in manifest.objects) == sorted(FILES)
    for obj in manifest.objects:
        row = media[obj.key]
        assert (obj.uri, obj.etag, obj.version_id, obj.size_bytes, obj.sha256) == (
            row["uri"],
            row["etag"],
            None,
            row["size_bytes"],
            row["content_sha256"],
        )
    raw = json.loads((folder / "manifest.json").read_text())
    assert {"uri", "key", "version_id", "etag", "size_bytes", "sha256"} <= set(raw["objects"][0])


def test_verify_export_reports_exactly_the_objects_that_changed(story: Story, tmp_path: Path) -> None:
    assert story.verify_fresh.passed and story.verify_fresh.objects_checked == len(FILES)
    after = story.verify_after_overwrite
    assert not after.passed and after.changed_keys == [OVERWRITTEN] and after.missing_keys == []
    deleted = story.verify_after_delete
    assert deleted.changed_keys == [OVERWRITTEN] and deleted.missing_keys == [DELETED]

    # A damaged export file is reported too; and an export never lands in a non-empty folder.
    copy = tmp_path / "copy"
    shutil.copytree(story.export_dir, copy)
    with open(copy / "tables" / "media.parquet", "ab") as out:
        out.write(b"x")
    assert verify_export(copy).file_problems == [
        "media: tables/media.parquet does not match its SHA-256 in manifest.json"
    ]
    with pytest.raises(ConfigError, match="not an empty folder"):
        export_snapshot(story.lake, 1, copy)


# --- the PyTorch dataset -----------------------------------------------------------------------------------


def _to_tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image.resize((32, 32)), dtype=np.uint8).copy()).permute(2, 0, 1)


def _top_labels(snapshot: Snapshot) -> dict[str, str]:
    rows = snapshot.table("derived", filter=(pc.field("kind") == "label") & (pc.field("ordinal") == 0))
    return {r["media_id"]: r["label"] for r in rows.to_pylist()}


def test_torch_dataset_serves_pinned_images_upright_with_labels(story: Story, shared_media: Path) -> None:
    lake = story.lake
    dataset = SnapshotImageDataset(lake, seq=2)
    assert len(dataset) == 3  # images only: the PDF is not an image
    labels = _top_labels(lake.snapshot(seq=2))
    items = {target["key"]: (image, target) for image, target in (dataset[i] for i in range(len(dataset)))}
    assert sorted(items) == sorted(k for k in FILES if k.startswith("images/"))
    for key, (image, target) in items.items():
        assert image.mode == "RGB" and target["media_id"] == story.ids[key]
        assert target["label"] == labels[story.ids[key]] and 0 < target["score"] <= 1
        assert (target["width"], target["height"]) == image.size
    assert items["images/orange.jpg"][1]["label"] == "orange"
    with Image.open(shared_media / FILES["images/rotated.png"]) as original:
        upright = np.asarray(ImageOps.exif_transpose(original).convert("RGB"))
        as_stored = np.asarray(original.convert("RGB"))
    served = np.asarray(items["images/rotated.png"][0])
    assert np.array_equal(served, upright) and not np.array_equal(served, as_stored)

    # Snapshot 1 pinned the old bytes of the overwritten image: serving it would be a lie.
    old = SnapshotImageDataset(lake, seq=1, label_source=None)
    by_key = {old._rows.column("key")[i].as_py(): i for i in range(len(old))}
    with pytest.raises(SourceChangedError, match="no longer holds the pinned bytes"):
        old[by_key[OVERWRITTEN]]
    image, target = old[by_key["images/orange.jpg"]]
    assert "label" not in target and image.size == (target["width"], target["height"])


def test_torch_dataset_works_with_dataloader_workers(story: Story) -> None:
    dataset = SnapshotImageDataset(story.lake, seq=2, transform=_to_tensor)
    clone = pickle.loads(pickle.dumps(dataset))
    assert clone[0][1] == dataset[0][1]
    loader = DataLoader(dataset, batch_size=3, num_workers=2)
    (images, targets) = next(iter(loader))
    assert images.shape == (3, 3, 32, 32) and images.dtype == torch.uint8
    labels = _top_labels(story.lake.snapshot(seq=2))
    assert targets["label"] == [labels[m] for m in targets["media_id"]]
    assert targets["width"].tolist() == [dataset[i][1]["width"] for i in range(3)]


# --- S3 ------------------------------------------------------------------------------------------------------


def test_export_and_verify_against_s3(
    story: Story, s3_endpoint: S3Endpoint, shared_media: Path, tmp_path: Path
) -> None:
    client = s3_endpoint.client()
    plain = s3_endpoint.create_bucket(f"media-{uuid.uuid4().hex[:8]}")
    versioned = s3_endpoint.create_bucket(f"media-v-{uuid.uuid4().hex[:8]}", versioned=True)
    for bucket in (plain, versioned):
        for key in ("images/orange.jpg", "images/rotated.png"):
            client.put_object(Bucket=bucket, Key=f"photos/{key}", Body=(shared_media / FILES[key]).read_bytes())
    settings = S3Settings.from_env(s3_endpoint.env())
    lake = open_lake(str(tmp_path / "lake"))
    processor = BatchProcessor(lake, story.processor.config, story.processor.embedders)  # models loaded once
    for i, bucket in enumerate((plain, versioned)):
        source = source_from_uri(f"s3://{bucket}/photos", s3_settings=settings)
        batch = processor.run(source, list(source.list_objects()), f"s3-{i}", f"run-s3-{i}")
        assert batch.publish is not None and batch.quarantined == 0

    manifest = export_snapshot(lake, None, tmp_path / "export")
    orange_plain, orange_versioned = (
        f"s3://{plain}/photos/images/orange.jpg",
        f"s3://{versioned}/photos/images/orange.jpg",
    )
    pins = {o.uri: o for o in manifest.objects}
    assert len(pins) == 4 and pins[orange_plain].version_id is None and pins[orange_versioned].version_id
    env = s3_endpoint.env()
    assert verify_export(tmp_path / "export", env).passed

    dataset = SnapshotImageDataset(lake, transform=_to_tensor, s3_settings=settings)
    targets = [dataset[i][1] for i in range(len(dataset))]
    assert len(targets) == 4 and "orange" in {t["label"] for t in targets}

    # Overwritten in both buckets: the plain bucket lost the pinned bytes; the versioned one still has them.
    for bucket in (plain, versioned):
        client.put_object(Bucket=bucket, Key="photos/images/orange.jpg", Body=b"not the orange any more")
    report = verify_export(tmp_path / "export", env)
    assert [(p.uri, p.status) for p in report.problems] == [(orange_plain, "changed")]
    # The versioned bucket's pinned version still verifies, and the report says a newer one exists.
    assert [(p.uri, p.status) for p in report.newer] == [(orange_versioned, "newer")]
    assert pins[orange_versioned].version_id in report.newer[0].detail
    with pytest.raises(SourceChangedError):
        dataset[[t["uri"] for t in targets].index(orange_plain)]

    client.delete_object(Bucket=versioned, Key="photos/images/orange.jpg", VersionId=pins[orange_versioned].version_id)
    report = verify_export(tmp_path / "export", env)
    assert [(p.uri, p.status) for p in report.problems] == [(orange_plain, "changed"), (orange_versioned, "missing")]


# --- the commands ------------------------------------------------------------------------------------------


def _invoke(command: Any, story: Story, *args: str) -> Any:
    obj = {"lake_uri": story.lake.location.root, "env": {}}
    return CliRunner().invoke(command, list(args), obj=obj)


def test_commands(story: Story, tmp_path: Path) -> None:
    result = _invoke(diff_command, story, "1", "2", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["tables"]["media"]["changed_keys"] == [{"media_id": story.ids[OVERWRITTEN]}]
    text = _invoke(diff_command, story, "2", "3")
    # Rows are matched by id, but shown by the object's key (the first hour: "mmp diff prints ids").
    assert text.exit_code == 0 and f"media changed: {DELETED}\n" in text.output
    assert story.ids[DELETED] not in text.output
    assert payload["tables"]["media"]["changed_objects"] == [OVERWRITTEN]

    result = _invoke(export_command, story, "--snapshot", "3", "--to", str(tmp_path / "e3"), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["objects"] == 3  # the deleted object's tombstone pins nothing

    result = _invoke(verify_export_command, story, str(tmp_path / "e3"))
    assert result.exit_code == 0 and "all match" in result.output
    result = _invoke(verify_export_command, story, str(story.export_dir), "--json")
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert (report["changed"], report["missing"]) == ([OVERWRITTEN], [DELETED])

    missing = _invoke(diff_command, story, "1", "9")
    assert missing.exit_code == 2 and "error: no published snapshot with seq 9" in missing.output
    again = _invoke(export_command, story, "--to", str(tmp_path / "e3"))
    assert again.exit_code == 2 and "hint: export into a new or empty folder" in again.output
    assert "Traceback" not in missing.output + again.output
