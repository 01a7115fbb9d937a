"""Annotations on a lake of real media (../shared/media, ingested by the real pipeline): a CSV matched by object
key and a JSON Lines file matched by content hash, written here, attach their good rows and report every other
row with its row number and reason (the counts add up to the file's rows); a second revision changes labels,
both revisions stay readable by snapshot and the diff lists exactly the changed rows; `--where` joins human
annotations and model labels, told apart by producer; search hits and exports carry annotations; the audit gate
blocks a planted bad box; Parquet with several boxes per image and schema evolution; a file on S3 (versioned
bucket) records its VersionId; the Dagster sensor, asset and blocking checks; CLI errors with hints."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from mm_platform.annotations import AttachOptions, NothingAttachedError, attach_file
from mm_platform.annotations.query import revision_snapshot, revisions
from mm_platform.catalog import open_lake
from mm_platform.cli import main as mmp
from mm_platform.erasure import erase
from mm_platform.errors import AuditFailedError
from mm_platform.ingest.process import BatchProcessor
from mm_platform.lake import Lake, RowFilter, Snapshot, TableWrite
from mm_platform.reprocess import stale_report
from mm_platform.search.hits import hydrate, matching_media
from mm_platform.snapshots import diff_snapshots, export_snapshot, verify_export
from mm_platform.sources import DeletedMedia, LocalFolderSource, S3Settings
from tests.annotation_lake import copy_lake, sha256_of
from tests.services import S3Endpoint


@pytest.fixture
def lake(media_lake: tuple[Path, Path], tmp_path: Path) -> Lake:
    return copy_lake(media_lake[1], tmp_path / "lake")


@pytest.fixture
def media(media_lake: tuple[Path, Path]) -> Path:
    return media_lake[0]


def _ids(snapshot: Snapshot) -> dict[str, str]:
    """object key → media id."""
    return {r["key"]: r["media_id"] for r in snapshot.table("media", columns=["key", "media_id"]).to_pylist()}


def _labels(snapshot: Snapshot, set_name: str) -> dict[str, str | None]:
    """object key → label of the set's annotations in the snapshot."""
    keys = {v: k for k, v in _ids(snapshot).items()}
    rows = snapshot.table("annotations", filter=pc.field("annotation_set") == set_name).to_pylist()
    return {keys[r["media_id"]]: r["label"] for r in rows}


def _cli(lake: Lake, *args: str) -> Any:
    return CliRunner().invoke(mmp, ["--lake", lake.location.root, *args], catch_exceptions=False)


PETS_CSV = """key,label,score,bbox,Customer ID
images/orange.jpg,orange,0.9,"[10, 20, 100, 80]",C-001
images/apple.jpg,apple,0.8,,C-002
images/unknown.jpg,cat,0.5,,C-003
images/orange.jpg,citrus,0.7,,C-004
images/chelsea.png,cat,very sure,,C-005
images/baboon.jpg,monkey,0.95,"[400, 400, 200, 50]",C-006
images/empty.jpg,broken,,,C-007
,dog,0.1,,C-008
images/butterfly.jpg,butterfly,,,C-009
"""


def test_csv_rows_attach_by_key_and_every_other_row_is_reported(lake: Lake, tmp_path: Path) -> None:
    path = tmp_path / "pets.csv"
    path.write_text(PETS_CSV)
    before = lake.snapshot()

    run = _cli(lake, "annotate", str(path), "--set", "pets", "--json")

    assert run.exit_code == 0, run.output
    report = json.loads(run.output)
    assert report["match_by"] == "key" and report["key_column"] == "key"
    assert report["rows_in_file"] == 9
    assert report["rows_attached"] + report["rows_rejected"] == report["rows_in_file"]
    assert [(r["row"], r["line"], r["reason"]) for r in report["rejects"]] == [
        (3, 4, "unmatched"),
        (4, 5, "duplicate_key"),
        (5, 6, "wrong_type"),
        (6, 7, "box_outside_image"),
        (7, 8, "unmatched"),
        (8, 9, "missing_key"),
    ]
    details = {r["row"]: r["detail"] for r in report["rejects"]}
    assert "images/unknown.jpg" in details[3] and "row 1" in details[4] and "'very sure'" in details[5]
    assert "x + w = 600 > width 512" in details[6] and "quarantined" in details[7]

    after = lake.snapshot()
    assert after.seq == before.seq + 1 and after.partition == "annotations:pets:r1"
    rows = {r["media_id"]: r for r in after.table("annotations").to_pylist()}
    ids = _ids(after)
    assert set(rows) == {ids["images/orange.jpg"], ids["images/apple.jpg"], ids["images/butterfly.jpg"]}
    orange = rows[ids["images/orange.jpg"]]
    assert orange["label"] == "orange" and orange["score"] == 0.9 and orange["value_type"] == "box"
    assert orange["bbox"] == {"x": 10.0, "y": 20.0, "w": 100.0, "h": 80.0}
    assert orange["customer_id"] == "C-001"  # an extra column, added by schema evolution
    assert orange["source_row"] == 1 and orange["source_file"] == path.resolve().as_uri()
    assert orange["source_sha256"] == sha256_of(path) and orange["producer"] == "human"
    media_row = after.table("media", filter=pc.field("key") == "images/orange.jpg").to_pylist()[0]
    assert orange["source_content_sha256"] == media_row["content_sha256"]
    stored = after.table("annotation_rejects").sort_by("row").to_pylist()
    assert [(r["row"], r["reason"]) for r in stored] == [(r["row"], r["reason"]) for r in report["rejects"]]
    assert stored[3]["media_id"] == ids["images/baboon.jpg"] and stored[0]["media_id"] is None
    [revision] = after.table("annotation_sets").to_pylist()
    assert (revision["rows_in_file"], revision["rows_attached"], revision["rows_rejected"]) == (9, 3, 6)
    for table in ("media", "metadata", "derived", "embeddings"):  # nothing else was touched
        assert after.version_of(table) == before.version_of(table)


def test_json_lines_rows_attach_by_content_hash(lake: Lake, media: Path, tmp_path: Path) -> None:
    fruits, chelsea = sha256_of(media / "images/fruits.jpg"), sha256_of(media / "images/chelsea.png")
    lines = [
        json.dumps({"sha256": fruits, "label": "fruit", "value": {"vendor": "acme", "tags": ["bowl"]}}),
        json.dumps({"sha256": chelsea, "label": 7}),
        "",
        '{"sha256": "broken',
        json.dumps({"sha256": "0" * 64, "label": "x"}),
        json.dumps({"sha256": "not-a-hash", "label": "x"}),
        json.dumps({"sha256": chelsea, "label": "cat", "bbox": {"x": 0, "y": 0, "w": 50, "h": 50}}),
        "[1, 2]",
    ]
    path = tmp_path / "vendor.jsonl"
    path.write_text("\n".join(lines) + "\n")

    result = attach_file(lake, str(path), AttachOptions("vendor", producer="acme-labelling"))

    assert result.match_by == "sha256"
    assert result.rows_in_file == 7 and result.rows_attached == 2 and result.rows_rejected == 5
    assert [(p.row, p.line, p.reason) for p in result.rejects] == [
        (2, 2, "wrong_type"),
        (3, 4, "malformed_row"),
        (4, 5, "unmatched"),
        (5, 6, "wrong_type"),
        (7, 8, "malformed_row"),
    ]
    assert "label must be text" in result.rejects[0].detail and "SHA-256" in result.rejects[3].detail
    snap = lake.snapshot()
    assert _labels(snap, "vendor") == {  # identical bytes under two keys: both get the annotation
        "images/fruits.jpg": "fruit",
        "images/fruits_really_a_jpeg.png": "fruit",
        "images/chelsea.png": "cat",
    }
    assert result.annotations == 3
    fruit = snap.table("annotations", filter=pc.field("label") == "fruit").to_pylist()[0]
    assert json.loads(fruit["value_json"]) == {"tags": ["bowl"], "vendor": "acme"} and fruit["source_row"] == 1
    assert fruit["producer"] == "acme-labelling"


def _write(path: Path, rows: dict[str, str]) -> Path:
    path.write_text("key,label\n" + "".join(f"{k},{v}\n" for k, v in rows.items()))
    return path


FIRST = {
    "images/orange.jpg": "orange",
    "images/apple.jpg": "apple",
    "images/chelsea.png": "cat",
    "images/baboon.jpg": "monkey",
    "images/butterfly.jpg": "butterfly",
}
# Rows reordered; two labels change, one row goes, one arrives, two stay.
SECOND = {
    "images/butterfly.jpg": "butterfly",
    "images/fruits.jpg": "fruit",
    "images/chelsea.png": "dog",
    "images/orange.jpg": "orange",
    "images/apple.jpg": "pear",
}


def test_a_second_revision_keeps_the_first_readable_and_the_diff_lists_exactly_the_changes(
    lake: Lake, tmp_path: Path
) -> None:
    path = tmp_path / "pets.csv"
    first = attach_file(lake, str(_write(path, FIRST)), AttachOptions("pets"))
    second = attach_file(lake, str(_write(path, SECOND)), AttachOptions("pets"))

    assert (first.revision, second.revision) == (1, 2) and first.seq is not None and second.seq is not None
    assert (second.added, second.changed, second.removed, second.unchanged) == (1, 2, 1, 2)
    assert _labels(revision_snapshot(lake, "pets", 1), "pets") == FIRST
    assert _labels(revision_snapshot(lake, "pets", 2), "pets") == SECOND
    assert _labels(lake.snapshot(seq=first.seq), "pets") == FIRST
    assert [(r["revision"], r["seq"]) for r in revisions(lake, "pets")] == [(1, first.seq), (2, second.seq)]

    diff = diff_snapshots(lake, first.seq, second.seq).tables["annotations"]
    ids = _ids(lake.snapshot())
    assert (diff.added, diff.changed, diff.removed) == (1, 2, 1)
    assert {k["media_id"] for k in diff.changed_keys} == {ids["images/apple.jpg"], ids["images/chelsea.png"]}
    assert [k["media_id"] for k in diff.added_keys] == [ids["images/fruits.jpg"]]
    assert [k["media_id"] for k in diff.removed_keys] == [ids["images/baboon.jpg"]]
    assert diff.changed_columns["label"] == 2 and diff.rewritten_unchanged == 2  # unchanged rows kept as they were
    unchanged = lake.snapshot().table("annotations", filter=pc.field("label") == "orange").to_pylist()[0]
    assert unchanged["revision"] == 1 and unchanged["source_row"] == 1  # the value arrived in revision 1, row 1

    shown = _cli(lake, "diff", str(first.seq), str(second.seq))
    assert shown.exit_code == 0, shown.output
    assert "images/apple.jpg  label: apple → pear" in shown.output
    assert "images/chelsea.png  label: cat → dog" in shown.output
    assert "added    pets  images/fruits.jpg  label=fruit" in shown.output
    assert "removed  pets  images/baboon.jpg  label=monkey" in shown.output
    assert "orange" not in shown.output.split("annotation changes")[1]

    again = attach_file(lake, str(path), AttachOptions("pets"))  # the same file, the same result
    assert again.noop and again.revision == 2 and lake.snapshot().seq == second.seq
    # The model's labels live beside the humans' (in `derived`, by producer) and were not touched.
    assert lake.snapshot().version_of("derived") == lake.snapshot(seq=first.seq - 1).version_of("derived")


def test_where_joins_annotations_and_model_labels_told_apart_by_producer(lake: Lake, tmp_path: Path) -> None:
    path = tmp_path / "pets.csv"
    path.write_text(PETS_CSV)
    attach_file(lake, str(path), AttachOptions("pets"))
    snap = lake.snapshot()
    keys = {v: k for k, v in _ids(snap).items()}

    def where(text: str) -> set[str]:
        return {keys[m] for m in matching_media(snap, text).to_pylist()}

    assert where("label = 'apple'") == {"images/apple.jpg"}
    assert where("label = 'apple' and label_producer = 'human'") == {"images/apple.jpg"}
    assert where("customer_id in ('C-001', 'C-009')") == {"images/orange.jpg", "images/butterfly.jpg"}
    assert where("bbox_w >= 100 and annotation_set = 'pets' and width >= 100") == {"images/orange.jpg"}
    model = snap.table("derived", filter=(pc.field("kind") == "label") & (pc.field("score") > 0.5)).to_pylist()
    assert model, "the image model labels some image above 0.5"
    label, producer = model[0]["label"], model[0]["producer"]
    found = where(f"label = '{label}' and label_producer = '{producer}' and score > 0.5")
    assert keys[model[0]["media_id"]] in found
    assert where(f"label = '{label}' and annotation_set is not null") == set()  # no human gave that label

    [hit] = hydrate(snap, [(_ids(snap)["images/orange.jpg"], 1.0, "image", "m", None)], thumbnails=False)
    [annotation] = hit.annotations
    assert annotation["label"] == "orange" and annotation["annotation_set"] == "pets"
    assert annotation["bbox"] == {"x": 10.0, "y": 20.0, "w": 100.0, "h": 80.0}
    assert annotation["customer_id"] == "C-001" and hit.to_dict()["annotations"] == [annotation]


def test_search_results_and_exports_carry_annotations(lake: Lake, media: Path, tmp_path: Path) -> None:
    from mm_platform.search import search

    path = tmp_path / "pets.csv"
    path.write_text(PETS_CSV)
    result = attach_file(lake, str(path), AttachOptions("pets"))
    hits = search(lake, media / "images/orange.jpg", k=3, where="annotation_set = 'pets'", thumbnails=False)
    assert hits[0].key == "images/orange.jpg" and hits[0].annotations[0]["label"] == "orange"
    assert {h.key for h in hits} <= {"images/orange.jpg", "images/apple.jpg", "images/butterfly.jpg"}

    manifest = export_snapshot(lake, result.seq, tmp_path / "export")
    exported = pq.read_table(tmp_path / "export" / manifest.tables["annotations"].file)
    assert sorted(exported.column("label").to_pylist()) == ["apple", "butterfly", "orange"]
    assert manifest.tables["annotation_rejects"].rows == 6 and manifest.tables["annotation_sets"].rows == 1
    # The manifest pins the annotation file the rows came from, and verify-export checks its bytes.
    assert [(f.uri, f.sha256) for f in manifest.annotation_files] == [(path.resolve().as_uri(), sha256_of(path))]
    assert verify_export(tmp_path / "export").passed
    path.write_text(PETS_CSV.replace("orange,0.9", "lemon,0.9"))  # edited after it was attached
    report = verify_export(tmp_path / "export")
    assert [(p.uri, p.status) for p in report.problems] == [(path.resolve().as_uri(), "changed")]


def test_vocabulary_is_declared_kept_and_enforced(lake: Lake, tmp_path: Path) -> None:
    path = _write(tmp_path / "pets.csv", {"images/orange.jpg": "cat", "images/apple.jpg": "dgo"})
    first = attach_file(lake, str(path), AttachOptions("pets", vocabulary=("cat", "dog")))
    assert [(p.row, p.reason) for p in first.rejects] == [(2, "label_not_in_vocabulary")]
    assert "'dgo'" in first.rejects[0].detail and first.vocabulary == ("cat", "dog")
    _write(path, {"images/orange.jpg": "cat", "images/apple.jpg": "bird"})
    second = attach_file(lake, str(path), AttachOptions("pets"))  # the declaration is kept
    assert [p.reason for p in second.rejects] == ["label_not_in_vocabulary"]
    with pytest.raises(NothingAttachedError) as nothing:
        attach_file(lake, str(_write(path, {"images/apple.jpg": "bird"})), AttachOptions("pets"))
    assert nothing.value.problems[0].reason == "label_not_in_vocabulary"
    assert lake.snapshot().seq == second.seq  # nothing was published


def _bad_box_write(lake: Lake) -> dict[str, TableWrite]:
    """A revision built by hand (not through validation) whose box lies outside its image."""
    snap = lake.snapshot()
    media = snap.table("media", filter=pc.field("key") == "images/chelsea.png").to_pylist()[0]
    row = {
        "media_id": media["media_id"],
        "annotation_set": "planted",
        "annotation_key": "",
        "value_type": "box",
        "label": "cat",
        "bbox": {"x": 0.0, "y": 0.0, "w": 5000.0, "h": 10.0},
        "revision": 1,
        "source_file": "file:///planted.csv",
        "source_version": "1",
        "source_sha256": "0" * 64,
        "source_row": 1,
        "match_by": "key",
        "match_value": "images/chelsea.png",
        "attached_at": media["registered_at"],
        "source_content_sha256": media["content_sha256"],
        "producer": "human",
        "producer_version": "1",
        "run_id": "planted",
        "partition": "annotations:planted:r1",
    }
    rows = pa.Table.from_pylist([row], schema=snap.schema("annotations"))
    return {"annotations": TableWrite(rows, (RowFilter("annotation_set", ("planted",)),))}


def test_the_audit_gate_blocks_a_box_outside_its_image(lake: Lake) -> None:
    from mm_platform.annotations import annotation_checks

    before = lake.snapshot()
    with pytest.raises(AuditFailedError) as failed:
        lake.publish("annotations:planted:r1", _bad_box_write(lake), checks=annotation_checks())
    assert "annotation_boxes_inside_image" in failed.value.message
    assert lake.snapshot().seq == before.seq and lake.snapshot().table("annotations").num_rows == 0


def test_parquet_with_several_boxes_per_image_and_new_typed_columns(lake: Lake, tmp_path: Path) -> None:
    boxes = pa.table(
        {
            "uri": [lake.snapshot().table("media", filter=pc.field("key") == k)["uri"][0].as_py() for k in
                    ("images/chelsea.png", "images/chelsea.png", "images/orange.jpg")],
            "box_id": [1, 2, 1],
            "label": ["cat", "ear", "orange"],
            "bbox_x": [10.0, 50.0, 0.0],
            "bbox_y": [10.0, 20.0, 0.0],
            "bbox_w": [100.0, 20.0, 30.0],
            "bbox_h": [100.0, 20.0, 30.0],
            "frame": [3, 3, 0],
        }
    )  # fmt: skip
    pq.write_table(boxes, tmp_path / "boxes.parquet")
    result = attach_file(lake, str(tmp_path / "boxes.parquet"), AttachOptions("boxes", id_column="box_id"))
    assert (result.rows_attached, result.rows_rejected, result.match_by) == (3, 0, "uri")
    assert result.new_columns == ("frame",)
    assert pa.types.is_integer(lake.snapshot().schema("annotations").field("frame").type)
    keys = lake.snapshot().table("annotations", columns=["annotation_key", "label"]).sort_by("label").to_pylist()
    assert keys == [{"annotation_key": "1", "label": "cat"}, {"annotation_key": "2", "label": "ear"},
                    {"annotation_key": "1", "label": "orange"}]  # fmt: skip
    # The column now holds integers: a later file whose value does not fit is told so, row by row.
    (tmp_path / "later.csv").write_text("key,label,frame\nimages/apple.jpg,apple,seven\nimages/baboon.jpg,monkey,7\n")
    later = attach_file(lake, str(tmp_path / "later.csv"), AttachOptions("later"))
    assert [(p.row, p.reason) for p in later.rejects] == [(1, "wrong_type")]
    assert "frame holds integers" in later.rejects[0].detail


def test_a_file_on_s3_records_its_version(lake: Lake, s3_endpoint: S3Endpoint) -> None:
    bucket = s3_endpoint.create_bucket("annotations-src", versioned=True)
    client = s3_endpoint.client()
    client.put_object(Bucket=bucket, Key="teams/pets.csv", Body=_csv_bytes({"images/apple.jpg": "apple"}))
    put = client.put_object(Bucket=bucket, Key="teams/pets.csv", Body=_csv_bytes({"images/apple.jpg": "pear"}))
    settings = S3Settings.from_env(s3_endpoint.env())
    result = attach_file(lake, f"s3://{bucket}/teams/pets.csv", AttachOptions("pets"), s3_settings=settings)
    assert result.file.version == put["VersionId"] and result.file.uri == f"s3://{bucket}/teams/pets.csv"
    assert _labels(lake.snapshot(), "pets") == {"images/apple.jpg": "pear"}


def test_revisions_on_a_lake_on_s3(shared_media: Path, s3_endpoint: S3Endpoint, tmp_path: Path) -> None:
    media = tmp_path / "media"
    for name in ("images/apple.jpg", "images/orange.jpg"):
        (media / name).parent.mkdir(parents=True, exist_ok=True)
        (media / name).write_bytes((shared_media / name).read_bytes())
    bucket = s3_endpoint.create_bucket("annotated-lake")
    lake = open_lake(f"s3://{bucket}/lake", {**os.environ, **s3_endpoint.env()})
    source = LocalFolderSource(media)
    with BatchProcessor(lake) as processor:
        processor.run(source, list(source.list_objects()), "b1", "run-1")
    first = attach_file(lake, str(_write(tmp_path / "r1.csv", {"images/apple.jpg": "apple"})), AttachOptions("pets"))
    second = attach_file(
        lake,
        str(_write(tmp_path / "r2.csv", {"images/apple.jpg": "pear", "images/orange.jpg": "orange"})),
        AttachOptions("pets"),
    )
    assert _labels(revision_snapshot(lake, "pets", first.revision), "pets") == {"images/apple.jpg": "apple"}
    assert _labels(lake.snapshot(), "pets") == {"images/apple.jpg": "pear", "images/orange.jpg": "orange"}
    assert second.revision == first.revision + 1


def _csv_bytes(rows: dict[str, str]) -> bytes:
    return ("key,label\n" + "".join(f"{k},{v}\n" for k, v in rows.items())).encode()


def test_erasing_media_removes_its_annotations_and_rejects(lake: Lake, tmp_path: Path) -> None:
    path = tmp_path / "pets.csv"
    path.write_text(PETS_CSV)
    attach_file(lake, str(path), AttachOptions("pets"))
    ids = _ids(lake.snapshot())
    result = erase(lake, [ids["images/orange.jpg"], ids["images/baboon.jpg"]], reason="request 7")
    snap = lake.snapshot()
    assert result.rows_removed["annotations"] == 1 and result.rows_removed["annotation_rejects"] == 2
    assert ids["images/orange.jpg"] not in snap.table("annotations")["media_id"].to_pylist()
    assert ids["images/baboon.jpg"] not in snap.table("annotation_rejects")["media_id"].to_pylist()


def test_an_object_deleted_at_its_source_takes_its_annotations_along(lake: Lake, tmp_path: Path) -> None:
    path = tmp_path / "pets.csv"
    path.write_text(PETS_CSV)
    attach_file(lake, str(path), AttachOptions("pets"))
    ids = _ids(lake.snapshot())
    gone = ids["images/orange.jpg"]
    deleted = DeletedMedia(gone, lake.snapshot().table("media", filter=pc.field("media_id") == gone)["uri"][0].as_py())
    staged = BatchProcessor(lake).stage_erasure([deleted], "delete-1", "run-delete")
    assert staged.stage is not None
    lake.publish_stage(staged.stage)  # one publish: the media row says deleted, its annotations are gone
    snap = lake.snapshot()
    assert snap.table("media", filter=pc.field("media_id") == gone)["status"].to_pylist() == ["deleted"]
    assert set(_labels(snap, "pets")) == {"images/apple.jpg", "images/butterfly.jpg"}


def test_annotations_on_overwritten_bytes_are_reported_stale(lake: Lake, media: Path, tmp_path: Path) -> None:
    path = tmp_path / "pets.csv"
    path.write_text(PETS_CSV)
    attach_file(lake, str(path), AttachOptions("pets"))
    apple = media / "images/apple.jpg"
    original = apple.read_bytes()
    processor = BatchProcessor(lake)
    assert not [item for item in stale_report(lake.snapshot(), processor.models()) if item.table == "annotations"]
    try:
        apple.write_bytes((media / "images/orange.jpg").read_bytes())  # new bytes under the same key
        source = LocalFolderSource(media)
        [changed] = [o for o in source.list_objects() if o.key == "images/apple.jpg"]
        processor.run(source, [changed], "overwrite-1", "run-overwrite")
    finally:
        apple.write_bytes(original)  # the module's other tests share the folder
    [item] = [item for item in stale_report(lake.snapshot(), processor.models()) if item.table == "annotations"]
    assert item.rows == 1 and "set pets" in item.reason
    assert _labels(lake.snapshot(), "pets")["images/apple.jpg"] == "apple"  # kept until someone looks again


def test_cli_errors_name_the_problem_and_the_fix(lake: Lake, tmp_path: Path) -> None:
    missing = _cli(lake, "annotate", str(tmp_path / "nope.csv"), "--set", "pets")
    assert missing.exit_code == 2 and "does not exist" in missing.output and "Traceback" not in missing.output
    path = _write(tmp_path / "pets.csv", {"images/apple.jpg": "apple"})
    column = _cli(lake, "annotate", str(path), "--set", "pets", "--key-column", "filename")
    assert column.exit_code == 2 and "'filename' is not a column" in column.output and "key, label" in column.output
    bad_match = _cli(lake, "annotate", str(path), "--set", "pets", "--match", "md5")
    assert bad_match.exit_code == 2 and "md5" in bad_match.output
    nothing = _cli(lake, "annotate", str(_write(path, {"nope.jpg": "x"})), "--set", "pets")
    assert nothing.exit_code == 2 and "row 1" in nothing.output and "unmatched" in nothing.output
    assert "hint:" in nothing.output and lake.snapshot().table("annotations").num_rows == 0
    strict = _cli(
        lake, "annotate", str(_write(path, {"images/apple.jpg": "a", "x.jpg": "b"})), "--set", "p", "--strict"
    )
    assert strict.exit_code == 2 and "--strict" in strict.output
    listed = _cli(lake, "annotations")
    assert listed.exit_code == 0 and "no annotation sets" in listed.output


# --- Dagster ---------------------------------------------------------------------------------------------------


def test_sensor_asset_and_blocking_checks_publish_a_dropped_file(
    lake: Lake, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    from definitions import defs
    from mm_platform.orchestration import LakeResource
    from mm_platform.orchestration.annotations import AnnotationSourceResource
    from sensors import annotation_file_sensor

    graph = defs.resolve_asset_graph()
    checks = [k for k in graph.asset_check_keys if k.asset_key.to_user_string() == "staged_annotation_set"]
    assert {k.name for k in checks} >= {"annotation_boxes_inside_image", "annotation_labels_in_vocabulary"}
    assert all(graph.get_check_spec(k).blocking for k in checks)

    drop = tmp_path / "drop"
    (drop / "teams").mkdir(parents=True)
    _write(drop / "teams" / "pets.csv", FIRST)
    (drop / "notes.txt").write_text("not an annotation file")
    resources = {
        "lake": LakeResource(uri=lake.location.root),
        "annotation_source": AnnotationSourceResource(uri=str(drop)),
    }

    def tick(cursor: str | None) -> dg.SensorResult:
        result = annotation_file_sensor(dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources))
        assert isinstance(result, dg.SensorResult)
        return result

    first = tick(None)
    [request] = first.run_requests or []
    assert request.partition_key == "teams.pets"
    instance.add_dynamic_partitions("annotation_sets", ["teams.pets"])
    job = dg.Definitions(
        assets=defs.assets,
        jobs=defs.jobs,
        resources={**defs.resources, **resources},  # type: ignore[arg-type]
    ).resolve_job_def("annotation_job")
    run = job.execute_in_process(instance=instance, partition_key="teams.pets", run_config=request.run_config)
    assert run.success
    assert _labels(lake.snapshot(), "teams.pets") == FIRST
    evaluations = [e for e in run.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    assert len(evaluations) == len(checks) and all(e.asset_check_evaluation_data.passed for e in evaluations)  # type: ignore[union-attr]
    assert not tick(first.cursor).run_requests  # the same version: nothing new
    assert not tick(None).run_requests  # even with a lost cursor: the lake says it is attached
    _write(drop / "teams" / "pets.csv", SECOND)
    assert [r.partition_key for r in tick(first.cursor).run_requests or []] == ["teams.pets"]
