"""Erasure: `erase` removes every row of an object from every table in one publish and writes an audit row
(what, when, why — no URI, no content hash); older snapshots keep it until `vacuum_erased`, after which the
object's media id, URI and content hash are in no readable snapshot and in no file under the lake root
(checked here independently: the bytes of every file, and every string inside every Parquet file), older
snapshots raise `SnapshotExpiredError`, and every other row is still there. On a lake built from factory rows
(locally and on the S3 API), on one built by the real pipeline from two real images, and through the CLI."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from mm_platform.catalog import CATALOG, open_lake
from mm_platform.cli.erasure import erase_command, vacuum_erased_command
from mm_platform.erasure import ErasedRowsPresentError, erase, erasure_publishes, vacuum_erased
from mm_platform.errors import ConfigError, SnapshotExpiredError
from mm_platform.ingest.batches import ingest_batches, listed_batch, load_manifest, save_manifest
from mm_platform.ingest.process import BatchProcessor
from mm_platform.lake import Lake, Snapshot
from mm_platform.sources import LocalFolderSource
from mm_platform.sources.listing import listing_table
from tests.factories import partition_writes
from tests.lake_assertions import assert_log_has_no_gap

IMAGES = ("images/apple.jpg", "images/butterfly.jpg")


def _rows(snapshot: Snapshot) -> dict[str, list[dict[str, object]]]:
    """Every data table's rows (audit table aside), in a stable order."""
    out = {}
    for name, spec in CATALOG.items():
        if name == "erasures":
            continue
        rows = snapshot.table(name).to_pylist()
        out[name] = sorted(rows, key=lambda r: tuple(str(r[k]) for k in spec.key))
    return out


def _without(rows: dict[str, list[dict[str, object]]], media_id: str) -> dict[str, list[dict[str, object]]]:
    return {name: [r for r in table if r.get("media_id") != media_id] for name, table in rows.items()}


def _strings(array: pa.Array) -> Iterator[pa.Array]:
    kind = array.type
    if pa.types.is_dictionary(kind):
        yield from _strings(array.dictionary)
    elif pa.types.is_struct(kind):
        for i in range(kind.num_fields):
            yield from _strings(array.field(i))
    elif pa.types.is_map(kind):
        yield from _strings(array.keys)
        yield from _strings(array.items)
    elif pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
        yield from _strings(array.flatten())
    elif pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_binary(kind):
        yield array


def _files_naming(lake: Lake, tokens: dict[str, str]) -> list[str]:
    """Every file under the lake root whose bytes, or any string in it if it is Parquet, contain a token.

    The audit table names the erased media id by design (never its URI or content): media ids are not
    searched for under ``erasures/``.
    """
    root = lake.location.fs_path().rstrip("/") + "/"
    hits = []
    infos = lake.location.fs.get_file_info(pafs.FileSelector(root, recursive=True))
    for info in infos:
        if info.type != pafs.FileType.File:
            continue
        rel = info.path[len(root) :]
        wanted = {k: t for k, t in tokens.items() if not (k == "media_id" and rel.startswith("erasures/"))}
        with lake.location.fs.open_input_stream(info.path) as src:
            data = src.read()
        found = {k for k, t in wanted.items() if t.encode() in data}
        if rel.endswith(".parquet"):
            table = pq.read_table(pa.BufferReader(data))
            for column in table.columns:
                for chunk in column.chunks:
                    for leaf in _strings(chunk):
                        found |= {k for k, t in wanted.items() if pc.any(pc.match_substring(leaf, t)).as_py()}
        hits += [f"{rel}: {k}" for k in sorted(found)]
    assert len(infos) > 10, "the scan saw too few files to mean anything"
    return hits


Rows = dict[str, list[dict[str, object]]]


def _check_erased_everywhere(lake: Lake, victim: dict[str, object], expected: Rows) -> None:
    tokens = {"media_id": str(victim["media_id"]), "uri": str(victim["uri"]), "sha": str(victim["content_sha256"])}
    for snapshot in lake.snapshots():
        for name, table in _rows(snapshot).items():
            for row in table:
                assert not set(tokens.values()) & {str(v) for v in row.values()}, (snapshot.seq, name)
    assert _files_naming(lake, tokens) == []
    assert _rows(lake.snapshot()) == expected


def test_erase_then_vacuum_on_factory_rows(lake_env: tuple[str, dict[str, str]]) -> None:
    uri, env = lake_env
    lake = open_lake(uri, env)
    lake.publish("b1", partition_writes("b1", 3))
    lake.publish("b2", partition_writes("b2", 3, seed=1))
    lake.stage("b1", partition_writes("b1", 3, run_id="run-retry"))  # staged, never published: orphan files
    before = lake.snapshot()
    # In b1: its files hold two other objects' rows too, and so do the orphan files of the unpublished stage.
    victim = [r for r in before.table("media").to_pylist() if r["partition"] == "b1"][1]
    rows_before = _rows(before)
    assert any(r["media_id"] == victim["media_id"] for r in rows_before["embeddings"])

    result = erase(lake, [str(victim["uri"])], reason="GDPR art. 17 request 41", requested_by="dpo")
    assert result.seq == before.seq + 1 and result.media_ids == (victim["media_id"],)
    assert result.rows_removed["media"] == result.rows_removed["metadata"] == result.rows_removed["embeddings"] == 1
    assert assert_log_has_no_gap(lake)[-1] == result.seq
    latest = lake.snapshot()
    assert latest.kind == "erase" and result.erasure_id in str(lake.state().latest_published().message)  # type: ignore[union-attr]
    expected = _without(rows_before, str(victim["media_id"]))
    assert _rows(latest) == expected
    (audit,) = latest.table("erasures").to_pylist()
    assert audit["media_id"] == victim["media_id"] and audit["reason"] == "GDPR art. 17 request 41"
    assert audit["uri_sha256"] == hashlib.sha256(str(victim["uri"]).encode()).hexdigest()
    assert audit["producer"] == "erase" and audit["source_content_sha256"] is None
    assert not {str(victim["uri"]), str(victim["content_sha256"])} & {str(v) for v in audit.values()}
    assert erasure_publishes(lake.state())[result.erasure_id] == result.seq
    assert _rows(lake.snapshot(seq=before.seq)) == rows_before  # history until vacuum

    report = vacuum_erased(lake)
    assert report.complete, report
    assert report.expired_below_seq == result.seq
    assert sum(report.data_files_deleted.values()) == 6  # 3 tables × (replaced published file + orphan)
    assert sum(report.vacuumed_files.values()) == 0
    with pytest.raises(SnapshotExpiredError):
        lake.snapshot(seq=before.seq)
    assert [s.seq for s in lake.snapshots()] == [result.seq]
    _check_erased_everywhere(lake, victim, expected)

    # The lake goes on after its logs were purged: reopen and publish.
    lake = open_lake(uri, env)
    lake.publish("b3", partition_writes("b3", 2, seed=2))
    assert lake.snapshot().table("media").num_rows == 7
    assert lake.snapshot().table("erasures").num_rows == 1


def test_erase_real_pipeline_rows(shared_media: Path, tmp_path: Path) -> None:
    media_dir = tmp_path / "media"
    for name in IMAGES:
        (media_dir / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(shared_media / name, media_dir / name)
    lake = open_lake(str(tmp_path / "lake"))
    source = LocalFolderSource(media_dir)
    objects = list(source.list_objects())
    (batch,) = ingest_batches(source.uri, objects)
    save_manifest(lake.location, batch)  # batch manifests hold URIs: vacuum must drop the erased one
    listed = listed_batch(source.uri, listing_table(objects))  # as a listing plans it: Parquet, in columns
    save_manifest(lake.location, listed)
    BatchProcessor(lake).run(source, objects, batch.batch_id, "run-1")
    before = lake.snapshot()
    rows_before = _rows(before)
    media = {str(r["key"]): r for r in before.table("media").to_pylist()}
    victim, other = media[IMAGES[0]], media[IMAGES[1]]
    assert victim["content_sha256"] != other["content_sha256"]
    for name in ("media", "metadata", "derived", "embeddings"):
        ids = {r["media_id"] for r in rows_before[name]}
        assert {victim["media_id"], other["media_id"]} <= ids, name

    result = erase(lake, [str(victim["uri"])], reason="user request", requested_by="support")
    assert result.seq == before.seq + 1
    expected = _without(rows_before, str(victim["media_id"]))
    assert _rows(lake.snapshot()) == expected
    assert all(any(r["media_id"] == other["media_id"] for r in expected[n]) for n in ("metadata", "derived"))
    assert _rows(lake.snapshot(seq=before.seq)) == rows_before

    report = vacuum_erased(lake)
    assert report.complete, report
    assert report.manifests_rewritten == 2
    with pytest.raises(SnapshotExpiredError):
        lake.snapshot(seq=before.seq)
    _check_erased_everywhere(lake, victim, expected)
    manifest = lake.location.read_json(f"_batches/{batch.batch_id}.json")
    assert manifest is not None and [o["uri"] for o in manifest["objects"]] == [other["uri"]]
    assert [o.uri for o in load_manifest(lake.location, listed.batch_id).objects] == [other["uri"]]


def test_cli_erase_and_vacuum(tmp_path: Path) -> None:
    lake = open_lake(str(tmp_path / "lake"))
    lake.publish("b1", partition_writes("b1", 4))
    victim = lake.snapshot().table("media").to_pylist()[2]
    obj = {"lake_uri": str(tmp_path / "lake"), "env": {}}
    runner = CliRunner()

    missing = runner.invoke(erase_command, ["s3://bucket/none.jpg", "--reason", "x"], obj=obj)
    assert missing.exit_code == 2 and "s3://bucket/none.jpg" in missing.output and "Traceback" not in missing.output

    done = runner.invoke(erase_command, [str(victim["media_id"]), "--reason", "request 7", "--json"], obj=obj)
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["media_ids"] == [victim["media_id"]]
    assert lake.snapshot().table("media").num_rows == 3
    with pytest.raises(ConfigError, match="1 of them erased already"):
        erase(lake, [str(victim["uri"])], reason="again")

    # A search-index cache version that holds the erased media's vector goes whole; another one stays.
    index_dir = tmp_path / "lake" / "_indexes" / "model"
    for version, ids in (("v1", [victim["media_id"], "other"]), ("v2", ["other"])):
        (index_dir / version).mkdir(parents=True)
        pq.write_table(pa.table({"media_id": ids}), index_dir / version / "keys.parquet")
        (index_dir / version / "index.faiss").write_bytes(b"vectors")

    # Expiring history is not silent: --dry-run names the snapshots that would go, and changes nothing.
    dry = runner.invoke(vacuum_erased_command, ["--dry-run"], obj=obj)
    assert dry.exit_code == 0 and "would expire snapshot 1 (history before the erasure of 1 media)" in dry.output
    assert lake.snapshot(seq=1).seq == 1
    vacuumed = runner.invoke(vacuum_erased_command, ["--json"], obj=obj)
    assert vacuumed.exit_code == 0, vacuumed.output
    assert json.loads(vacuumed.output)["expired"] == [1]
    assert json.loads(vacuumed.output)["complete"] is True
    assert json.loads(vacuumed.output)["index_files_deleted"] == 2
    assert not (index_dir / "v1").exists() or not any((index_dir / "v1").iterdir())
    assert (index_dir / "v2" / "index.faiss").exists()
    again = runner.invoke(vacuum_erased_command, [], obj=obj)  # idempotent: nothing more to delete
    assert again.exit_code == 0 and "1 erased media: deleted 0 data file(s)" in again.output


def test_a_rollback_past_an_erasure_is_caught(tmp_path: Path) -> None:
    lake = open_lake(str(tmp_path / "lake"))
    lake.publish("b1", partition_writes("b1", 3))
    victim = lake.snapshot().table("media").to_pylist()[0]
    erase(lake, [str(victim["uri"])], reason="request 9")
    with pytest.raises(ConfigError, match="came after it"):
        lake.rollback(1)  # erased objects must not come back through a rollback
    lake.publish("b1", partition_writes("b1", 3, run_id="again"))  # ...but a re-ingest by other means brings them
    with pytest.raises(ErasedRowsPresentError, match=str(victim["media_id"])):
        vacuum_erased(lake)
    assert lake.snapshot(seq=1).table("media").num_rows == 3  # nothing was deleted or expired

    expected = _without(_rows(lake.snapshot()), str(victim["media_id"]))
    again = erase(lake, [str(victim["media_id"])], reason="request 9, again")
    report = vacuum_erased(lake)
    assert report.complete and report.expired_below_seq == again.seq
    _check_erased_everywhere(lake, victim, expected)
