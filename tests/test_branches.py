"""Branches of the lake: a re-embedding with another model (the tiny test CLIP) on a branch while main's
readers and searches are unchanged, then one merge publish that switches main; a conflicting annotation
change refused with the conflict listed and resolved by --prefer; SIGKILL at every named step of a merge;
branch creation on 1M media rows as cheap as a small publish with no data file copied; vacuum with live
and deleted branches; and the audit trail (`mmp log`, export manifests) for publishes, merges, erasures."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from mm_platform.catalog import open_lake
from mm_platform.cli import main
from mm_platform.config import PipelineConfig
from mm_platform.ingest.process import BatchProcessor
from mm_platform.lake import CheckResult, Lake, TableWrite
from mm_platform.lake.audit_trail import audit_context
from mm_platform.lake.branch import create_branch, delete_branch
from mm_platform.lake.merge import merge_branch
from mm_platform.quality import default_checks
from mm_platform.reprocess import activate_model, active_models, reprocess
from mm_platform.search import search
from mm_platform.sources import source_from_uri
from tests.annotation_lake import copy_lake
from tests.factories import data_files, large_media_rows, partition_writes
from tests.lake_assertions import assert_no_duplicate_keys, snapshot_content
from tests.tiny_clip import build_tiny_clip

REPO = Path(__file__).resolve().parent.parent


def _mmp(lake: Path, *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(main, ["--lake", str(lake), *args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output


def _image_hits(source: Lake, image: Path) -> list[str]:
    return [hit.model_id for hit in search(source, image, k=3, thumbnails=False)]


def test_reembed_on_a_branch_search_there_then_merge_switches_main(
    media_lake: tuple[Path, Path], tmp_path: Path
) -> None:
    media, lake_dir = media_lake
    lake = copy_lake(lake_dir, tmp_path / "lake")
    query = media / "images/orange.jpg"
    main_before = lake.snapshot()
    content_before = snapshot_content(main_before)
    assert _image_hits(lake, query) == ["efficientnet-lite0"] * 3

    create_branch(lake, "clip-exp")
    branch = lake.branch("clip-exp")
    processor = BatchProcessor(branch, PipelineConfig(image_model=f"clip:{build_tiny_clip(tmp_path / 'clip')}"))
    clip = processor.embedders["image"].model_id
    checks = default_checks({e.model_id: e.dim for e in processor.embedders.values()})
    report = reprocess(branch, processor, source_from_uri, run_id="exp-1", checks=checks, max_objects=10)
    activate_model(branch, clip)
    branch_publishes = len(report.batches) + 1
    assert branch.snapshot().seq == branch_publishes

    # The branch searches with the new model; main's readers and searches see nothing of it.
    assert _image_hits(branch, query) == [clip] * 3
    assert active_models(branch.snapshot())["image"] == clip
    assert lake.snapshot().seq == main_before.seq
    assert snapshot_content(lake.snapshot()) == content_before
    assert _image_hits(lake, query) == ["efficientnet-lite0"] * 3

    with audit_context(actor="ana", message="adopt the CLIP model"):
        result = merge_branch(lake, "clip-exp")
    assert result.publish is not None and result.publish.seq == main_before.seq + 1  # exactly one publish
    assert lake.snapshot().seq == main_before.seq + 1
    assert active_models(lake.snapshot())["image"] == clip
    assert _image_hits(lake, query) == [clip] * 3
    assert_no_duplicate_keys(lake.snapshot())
    # The branch's new vector files were committed to main as they lie: no row was copied.
    assert result.tables["embeddings"].files_committed >= 1 and result.tables["embeddings"].files_rewritten == 0
    merged_event = lake.state().latest_published()
    assert merged_event is not None and merged_event.kind == "merge"
    assert merged_event.audit["actor"] == "ana" and merged_event.audit["merge"]["source"] == "clip-exp"
    assert merge_branch(lake, "clip-exp").publish is None  # nothing new: merging again publishes nothing
    assert lake.snapshot().seq == main_before.seq + 1


def test_a_conflicting_annotation_change_is_refused_then_resolved_with_prefer(
    media_lake: tuple[Path, Path], tmp_path: Path
) -> None:
    _, lake_dir = media_lake
    lake_path = tmp_path / "lake"
    copy_lake(lake_dir, lake_path)
    labels = tmp_path / "labels.csv"
    labels.write_text("key,label\nimages/orange.jpg,orange\nimages/apple.jpg,apple\n")
    _mmp(lake_path, "annotate", str(labels), "--set", "fruit")
    _mmp(lake_path, "branch", "create", "relabel")
    labels.write_text("key,label\nimages/orange.jpg,citrus\nimages/apple.jpg,apple\n")
    _mmp(lake_path, "--branch", "relabel", "annotate", str(labels), "--set", "fruit")
    labels.write_text("key,label\nimages/orange.jpg,tangerine\nimages/apple.jpg,apple\n")
    _mmp(lake_path, "annotate", str(labels), "--set", "fruit")
    seq = open_lake(str(lake_path)).snapshot().seq

    refused = _mmp(lake_path, "merge", "relabel", "-m", "relabel oranges", code=2)
    # The orange's label, and revision 2 of the set's record (each side published its own revision 2).
    assert "refused: 2 row(s) changed differently on both sides" in refused
    assert "annotations [" in refused and "label='citrus'" in refused and "label='tangerine'" in refused
    assert "annotation_sets [annotation_set=fruit, revision=2]" in refused
    assert "--prefer" in refused
    assert open_lake(str(lake_path)).snapshot().seq == seq  # nothing published

    out = _mmp(lake_path, "merge", "relabel", "--prefer", "source", "-m", "relabel oranges", "--json")
    merged = json.loads(out)
    assert merged["publish_seq"] == seq + 1 and len(merged["conflicts"]) == 2
    [conflict] = [c for c in merged["conflicts"] if c["table"] == "annotations"]
    assert conflict["table"] == "annotations" and conflict["source"]["label"] == "citrus"
    assert conflict["target"]["label"] == "tangerine"
    rows = open_lake(str(lake_path)).snapshot().table("annotations").to_pylist()
    assert sorted(r["label"] for r in rows if r["annotation_set"] == "fruit") == ["apple", "citrus"]
    # `mmp diff main relabel` compares by key across branches: the branch now equals main's annotations.
    diff = json.loads(_mmp(lake_path, "diff", "main", "relabel", "--json"))
    assert diff["tables"]["annotations"]["changed"] == 0


MERGE_POINTS = [
    "after_stage",
    "after_audit",
    "after_intent",
    "after_apply:embeddings",
    "after_apply:media",
    "after_apply:metadata",
    "after_published",
]


def _kill_at(point: str, ready: Path, argv: list[str]) -> None:
    """Run ``argv`` until it pauses at fault point ``point``, then SIGKILL it."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "MMP_FAULT_PAUSE_AT": point, "MMP_FAULT_READY_FILE": str(ready)}
    proc = subprocess.Popen([sys.executable, *argv], cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not ready.exists():
        assert proc.poll() is None, f"exited before {point}: {proc.stderr.read() if proc.stderr else ''}"
        assert time.monotonic() < deadline, f"never reached {point}"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def test_sigkill_at_every_step_of_a_branch_publish_and_of_a_merge(tmp_path: Path) -> None:
    """Each round: a branch publish killed at the step (the branch shows its previous snapshot or the new one,
    main nothing; the re-run converges), then the merge killed at the same step (main shows the pre- or the
    post-merge snapshot, never a mix; the re-run converges and a third run publishes nothing)."""
    uri = str(tmp_path / "lake")
    lake = open_lake(uri)
    lake.publish("p0", partition_writes("p0", 12))
    for round_, point in enumerate(MERGE_POINTS):
        name, partition = f"exp{round_}", f"p{round_ + 1}"
        create_branch(lake, name)
        branch = lake.branch(name)
        branch.publish("p0", partition_writes("p0", 12 - round_ - 1, seed=round_ + 10))  # change and delete
        main_content, before = snapshot_content(lake.snapshot()), snapshot_content(branch.snapshot())
        worker = [
            "-m",
            "tests.publish_worker",
            "--lake",
            uri,
            "--branch",
            name,
            "--partition",
            partition,
            "--rows",
            "5",
        ]
        _kill_at(point, tmp_path / f"ready-publish-{round_}", worker)
        seen = snapshot_content(open_lake(uri, branch=name).snapshot())
        assert seen == before or point == "after_published", f"branch publish visible before its end: {point}"
        assert snapshot_content(open_lake(uri).snapshot()) == main_content  # main saw nothing
        open_lake(uri, branch=name).publish(partition, partition_writes(partition, 5))  # the re-run converges
        branch = open_lake(uri).branch(name)
        assert branch.snapshot().table("media").num_rows == len(before["media"]) + 5
        assert_no_duplicate_keys(branch.snapshot())

        pre, post = main_content, snapshot_content(branch.snapshot())
        merge = f"from mm_platform.catalog import open_lake; from mm_platform.lake.merge import merge_branch; " \
                f"merge_branch(open_lake({uri!r}), {name!r})"  # fmt: skip
        _kill_at(point, tmp_path / f"ready-merge-{round_}", ["-c", merge])
        seen = snapshot_content(open_lake(uri).snapshot())
        assert seen in (pre, post), f"a mix after SIGKILL at {point}"
        assert (seen == post) == (point == "after_published"), point
        merge_branch(open_lake(uri), name)  # the re-run converges
        lake = open_lake(uri)
        assert snapshot_content(lake.snapshot()) == post, point
        assert_no_duplicate_keys(lake.snapshot())
        assert merge_branch(lake, name).publish is None  # and a third run publishes nothing
    merges = [e for e in lake.state().published() if e.kind == "merge"]
    assert len(merges) == len(MERGE_POINTS)  # one publish per merge, crash or not


@pytest.mark.parametrize("rows", [200_000, pytest.param(1_000_000, marks=pytest.mark.benchmark)])
def test_branch_creation_on_a_large_lake_costs_a_small_publish_and_copies_nothing(tmp_path: Path, rows: int) -> None:
    """1M media rows with `pytest -m benchmark` (and in BENCHMARKS.md); 200k in the default suite, to stay fast."""
    lake = open_lake(str(tmp_path / "lake"))
    lake.publish("big", {"media": TableWrite(large_media_rows(rows))})
    assert lake.snapshot().dataset("media").count_rows() == rows
    files_before = data_files(tmp_path / "lake")
    publish_s, branch_s = [], []
    for i in range(3):  # interleaved, best of three: the machine is shared
        start = time.perf_counter()
        lake.publish(f"small-{i}", partition_writes(f"small-{i}", 10))
        publish_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        create_branch(lake, f"b{i}")
        branch_s.append(time.perf_counter() - start)
    assert min(branch_s) <= 2 * min(publish_s), (branch_s, publish_s)
    new_files = data_files(tmp_path / "lake") - files_before
    assert len(new_files) == 3 * 3  # the small publishes' files (media, metadata, embeddings); none by a branch
    branch_files = [p for p in (tmp_path / "lake" / "_branches").rglob("*.parquet") if "_delta_log" not in p.parts]
    assert [p for p in branch_files if "_publish_log" not in p.parts] == []  # a branch holds no data file
    assert lake.branch("b0").snapshot().dataset("media").count_rows() == rows + 10


def test_vacuum_keeps_a_live_branch_readable_and_frees_its_files_once_deleted(tmp_path: Path) -> None:
    lake = open_lake(str(tmp_path / "lake"))
    lake.publish("p1", partition_writes("p1", 10))
    create_branch(lake, "exp")
    branch = lake.branch("exp")
    branch.publish("p2", partition_writes("p2", 6))
    branch.publish("p2", partition_writes("p2", 4, seed=2))  # the branch replaces its own files once
    lake.publish("p1", partition_writes("p1", 8, seed=1))  # main replaces the file the branch forked with
    on_branch = snapshot_content(branch.snapshot())
    on_main = snapshot_content(lake.snapshot())
    folder = tmp_path / "lake" / "media"
    branch_only = {folder / p for p in _paths(branch, "media")} - {folder / p for p in _paths(lake, "media")}
    # Among them: the branch's own new files, and main's p1 file that main replaced after the fork.
    assert {p for p in branch_only if "p1" in _partitions(p)} and {p for p in branch_only if "p2" in _partitions(p)}

    lake.vacuum(keep_last=1, min_age_hours=0)  # main keeps only its latest snapshot
    assert all(p.exists() for p in branch_only)
    assert snapshot_content(lake.branch("exp").snapshot()) == on_branch  # the branch reads as before
    assert snapshot_content(lake.snapshot()) == on_main

    delete_branch(lake, "exp")
    lake.vacuum(keep_last=1, min_age_hours=0)
    assert not any(p.exists() for p in branch_only)  # its files are freed
    assert snapshot_content(lake.snapshot()) == on_main
    assert not (tmp_path / "lake" / "_branches" / "exp").exists()


def _partitions(path: Path) -> set[str]:
    import pyarrow.parquet as pq

    return set(pq.read_table(path, columns=["partition"]).column("partition").to_pylist())


def _paths(lake: Lake, name: str) -> set[str]:
    prefix = lake.location.uri(name) + "/"
    return {uri.removeprefix(prefix) for uri in lake.snapshot().file_uris(name)}


def test_log_shows_actor_and_message_of_publishes_merges_and_erasures(
    media_lake: tuple[Path, Path], tmp_path: Path
) -> None:
    _, lake_dir = media_lake
    lake_path = tmp_path / "lake"
    copy_lake(lake_dir, lake_path)
    labels = tmp_path / "labels.csv"
    labels.write_text("key,label\nimages/orange.jpg,orange\n")
    _mmp(lake_path, "--actor", "bob", "annotate", str(labels), "--set", "fruit", "-m", "first labels")
    _mmp(lake_path, "branch", "create", "exp", "--actor", "carol")
    labels.write_text("key,label\nimages/orange.jpg,orange\nimages/apple.jpg,apple\n")
    _mmp(lake_path, "annotate", str(labels), "--set", "fruit", "--branch", "exp", "--actor", "carol", "-m", "apples")
    _mmp(lake_path, "merge", "exp", "--actor", "dave", "-m", "ship the apple label")
    os.environ["MM_ACTOR"] = "erin"  # the environment names the actor too
    try:
        media = open_lake(str(lake_path)).snapshot().table("media").to_pylist()
        [uri] = [m["uri"] for m in media if m["key"] == "images/baboon.jpg"]
        _mmp(lake_path, "erase", uri, "--reason", "takedown", "-m", "legal request 17")
    finally:
        del os.environ["MM_ACTOR"]

    text = _mmp(lake_path, "log")
    assert "bob: first labels" in text
    assert "dave: ship the apple label" in text and "merge exp@1 into main (base: fork" in text
    assert "erin: legal request 17" in text and "erasure" in text
    assert "by mmp merge source=exp" in text  # the command that published
    events = json.loads(_mmp(lake_path, "log", "--json"))
    kinds = {e["kind"]: e for e in events if e["event"] == "published"}
    assert kinds["merge"]["merge"]["source"] == "exp" and kinds["merge"]["actor"] == "dave"
    assert kinds["erase"]["actor"] == "erin"
    branch_log = _mmp(lake_path, "log", "--branch", "exp")
    assert "log of exp" in branch_log and "carol: apples" in branch_log

    _mmp(lake_path, "export", "--to", str(tmp_path / "export"))
    manifest = json.loads((tmp_path / "export" / "manifest.json").read_text())
    assert [e["actor"] for e in manifest["audit"] if e["kind"] == "merge"] == ["dave"]


def test_a_dagster_run_tagged_with_a_branch_publishes_there(
    shared_media: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dagster as dg

    from definitions import defs
    from mm_platform.ingest.scan import plan_batches
    from mm_platform.sources import LocalFolderSource

    folder = tmp_path / "media"
    folder.mkdir()
    for name in ("images/orange.jpg", "images/apple.jpg"):
        shutil.copy(shared_media / name, folder / Path(name).name)
    monkeypatch.setenv("MM_LAKE", str(tmp_path / "lake"))
    lake = open_lake(str(tmp_path / "lake"))
    create_branch(lake, "exp")
    [batch] = plan_batches(lake, LocalFolderSource(folder), deletions=False).batches
    (tmp_path / "dagster_home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster_home")) as instance:
        instance.add_dynamic_partitions("ingest_batches", [batch.batch_id])
        job = defs.resolve_job_def("ingest_job")
        tags = {"mm/branch": "exp", "mm/actor": "fay", "mm/message": "try on a branch"}
        result = job.execute_in_process(instance=instance, partition_key=batch.batch_id, tags=tags)
        assert result.success
        event = instance.get_latest_materialization_event(dg.AssetKey("published_snapshot"))
        assert event is not None and event.asset_materialization is not None
        assert event.asset_materialization.metadata["branch"].value == "exp"
    assert lake.snapshot().seq == 0  # main saw nothing
    branch = lake.branch("exp")
    assert branch.snapshot().table("media").num_rows == 2
    [published] = branch.state().published()
    assert published.audit["actor"] == "fay" and published.audit["message"] == "try on a branch"
    assert published.audit["command"] == f"dagster run {result.run_id}"


def test_the_merge_audit_refuses_keys_that_would_be_duplicated(tmp_path: Path) -> None:
    from mm_platform.lake.audit import AuditContext
    from mm_platform.lake.branch_files import file_add, main_files
    from mm_platform.lake.merge import _merged_keys_unique
    from mm_platform.lake.operations import Merge
    from mm_platform.lake.stage import Stage, StagedTable, schema_to_ipc

    lake = open_lake(str(tmp_path / "lake"))
    lake.publish("p1", partition_writes("p1", 4))
    snapshot = lake.snapshot()
    files, schema = main_files(lake.location, "media", snapshot.version_of("media"))
    again = StagedTable("media", 1, (file_add(files.to_pylist()[0]),), (), 4, schema_to_ipc(schema))
    stage = Stage(stage_id="s", partition="merge:x", operation=Merge(), tables={"media": again})
    context = AuditContext(partition="merge:x", staged={}, base=snapshot)
    result = _merged_keys_unique(stage, snapshot)(context)
    assert isinstance(result, CheckResult) and not result.passed and "4 duplicate key(s)" in result.detail
    fine = Stage(stage_id="s", partition="merge:x", operation=Merge(), tables={"media": replace(again, adds=())})
    ok = _merged_keys_unique(fine, snapshot)(context)
    assert isinstance(ok, CheckResult) and ok.passed


def test_a_branch_lifecycle_on_s3(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """Create, publish, read, merge, vacuum with a live branch, delete, vacuum: on the S3 API (moto)."""
    from tests.conftest import lake_location

    uri, env = lake_location(request, tmp_path, "s3")
    lake = open_lake(uri, env)
    lake.publish("p1", partition_writes("p1", 6))
    create_branch(lake, "exp")
    branch = open_lake(uri, env, branch="exp")
    branch.publish("p1", partition_writes("p1", 4, seed=1))
    branch.publish("p2", partition_writes("p2", 3))
    assert lake.snapshot().table("media").num_rows == 6 and branch.snapshot().table("media").num_rows == 7
    on_branch = snapshot_content(branch.snapshot())
    lake.vacuum(keep_last=1, min_age_hours=0)
    assert snapshot_content(open_lake(uri, env, branch="exp").snapshot()) == on_branch
    result = merge_branch(lake, "exp", message="on s3")
    assert result.publish is not None and snapshot_content(lake.snapshot()) == on_branch
    delete_branch(lake, "exp")
    assert lake.location.list_files("_branches/exp") == []
    lake.vacuum(keep_last=1, min_age_hours=0)
    assert snapshot_content(open_lake(uri, env).snapshot()) == on_branch


def test_erasures_and_branches(tmp_path: Path) -> None:
    """A merge never brings back an object main erased after the fork; an erasure made on a branch and merged
    is an erase publish on main, and vacuum-erased waits for the branches that still hold the object."""
    from mm_platform.erasure import erase, vacuum_erased
    from mm_platform.errors import MMPlatformError

    lake = open_lake(str(tmp_path / "lake"))
    lake.publish("p1", partition_writes("p1", 4))
    create_branch(lake, "stale")
    lake.branch("stale").publish("p1", partition_writes("p1", 4, seed=5))  # new vectors for every object
    victim = lake.snapshot().table("media").to_pylist()[0]["media_id"]
    erase(lake, [victim], "request 1")
    with pytest.raises(MMPlatformError, match="bring back 1 object"):
        merge_branch(lake, "stale")

    create_branch(lake, "cleanup")
    other = lake.branch("cleanup").snapshot().table("media").to_pylist()[0]["media_id"]
    erase(lake.branch("cleanup"), [other], "request 2")
    result = merge_branch(lake, "cleanup", message="erasure made on a branch")
    assert result.publish is not None and lake.state().latest_published().kind == "erase"  # type: ignore[union-attr]
    assert other not in lake.snapshot().table("media").column("media_id").to_pylist()
    with pytest.raises(MMPlatformError, match="still hold the erased objects"):
        vacuum_erased(lake)
    delete_branch(lake, "stale")
    delete_branch(lake, "cleanup")
    report = vacuum_erased(lake)
    assert report.erased_media == 2 and report.complete, report.leftovers


def test_an_erasure_on_a_branch_removes_rows_only_the_branch_has(tmp_path: Path) -> None:
    """A branch's erasure is staged against the branch's own tables: an object published only on the branch
    loses every row there (it used to be staged against main's tables, which do not hold it, and survived),
    and main is untouched."""
    from mm_platform.erasure import erase

    lake = open_lake(str(tmp_path / "lake"))
    lake.publish("p1", partition_writes("p1", 3))
    create_branch(lake, "exp")
    branch = lake.branch("exp")
    branch.publish("p2", partition_writes("p2", 2))  # only on the branch
    rows = branch.snapshot().table("media", columns=["media_id", "partition"]).to_pylist()
    only_here = next(r["media_id"] for r in rows if r["partition"] == "p2")
    shared = next(r["media_id"] for r in rows if r["partition"] == "p1")
    erase(branch, [only_here, shared], "request on a branch")
    after = branch.snapshot()
    for name in ("media", "metadata", "embeddings"):
        left = set(after.table(name, columns=["media_id"]).column("media_id").to_pylist())
        assert not left & {only_here, shared}, name
    assert shared in lake.main().snapshot().table("media").column("media_id").to_pylist()  # main keeps its own
