"""The Dagster layer over a real instance: the asset graph and its blocking checks, a batch of real media
materialized end to end into a local lake, the same from a real S3 API on 127.0.0.1 triggered by a sensor
tick (a second tick with no change requests nothing; an overwrite and a deletion become new batches), a
planted bad batch that the blocking checks stop before anything is published, `mmp ingest` and
`dagster asset materialize --partition`."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pyarrow.compute as pc
import pytest
from click.testing import CliRunner

from definitions import defs
from mm_platform.catalog import open_lake
from mm_platform.cli import main as mmp
from mm_platform.embed import Embedder
from mm_platform.ingest.scan import plan_batches
from mm_platform.lake import Lake
from mm_platform.orchestration import LakeResource, MediaSourceResource, PipelineResource
from mm_platform.sources import LocalFolderSource
from sensors import s3_media_sensor
from tests.sensor_ticks import SensorTicks, run_ingest_job, use_s3_lake
from tests.services import S3Endpoint

REPO = Path(__file__).resolve().parent.parent
SAMPLE = [
    "images/orange.jpg",
    "images/chelsea.png",
    "video/bikes.mp4",
    "documents/crazyones.pdf",
    "audio/freedesktop_bell.oga",
    "malformed/empty.jpg",
]


@pytest.fixture
def media_folder(shared_media: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "media"
    for name in SAMPLE:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(shared_media / name, folder / name)
    return folder


def _plan(lake: Lake, folder: Path) -> list[str]:
    return [b.batch_id for b in plan_batches(lake, LocalFolderSource(folder), deletions=False).batches]


def test_the_asset_graph_reads_as_layers_with_blocking_checks() -> None:
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"raw_media", "media_metadata", "derived_media", "embeddings", "published_snapshot"} <= keys
    parents = {
        k.to_user_string(): {p.to_user_string() for p in graph.get(k).parent_keys} for k in graph.get_all_asset_keys()
    }
    assert parents["media_metadata"] == {"raw_media"} and parents["embeddings"] == {"derived_media"}
    assert parents["published_snapshot"] == {"raw_media", "media_metadata", "derived_media", "embeddings"}
    checks = {(c.asset_key.to_user_string(), c.name) for c in graph.asset_check_keys}
    for asset in ("raw_media", "media_metadata", "derived_media", "embeddings"):
        assert any(a == asset for a, _ in checks), f"{asset} has no checks"
    assert all(graph.get_check_spec(key).blocking for key in graph.asset_check_keys)


def test_a_batch_materializes_end_to_end(
    media_folder: Path, instance: dg.DagsterInstance, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MM_LAKE", str(tmp_path / "lake"))
    monkeypatch.setenv("MM_BROWSER_URL", "http://127.0.0.1:8750")
    lake = open_lake(str(tmp_path / "lake"))
    [batch] = _plan(lake, media_folder)
    result = run_ingest_job(instance, batch)
    assert result.success
    snap = lake.snapshot()
    assert snap.seq == 1 and snap.partition == batch
    assert snap.table("media").num_rows == len(SAMPLE)
    assert snap.table("quarantine").num_rows == 1
    publish = instance.get_latest_materialization_event(dg.AssetKey("published_snapshot"))
    assert publish is not None and publish.asset_materialization is not None
    assert publish.asset_materialization.metadata["publish_seq"].value == 1
    assert "data:image/jpeg;base64" in str(publish.asset_materialization.metadata["thumbnails"].value)
    # MM_BROWSER_URL set: the materialization links to the snapshot's page and to each item's page.
    meta = publish.asset_materialization.metadata
    assert meta["browser_snapshot"] == dg.MetadataValue.url("http://127.0.0.1:8750/diff?a=0&b=1")
    orange = lake.snapshot().table("media", filter=pc.field("key") == "images/orange.jpg").column("media_id")[0]
    assert meta["browser_item: images/orange.jpg"] == dg.MetadataValue.url(
        f"http://127.0.0.1:8750/items/{orange.as_py()}?snapshot=1"
    )
    pipeline = {"raw_media", "media_metadata", "derived_media", "embeddings"}
    for check in [c for c in defs.resolve_asset_graph().asset_check_keys if c.asset_key.to_user_string() in pipeline]:
        record = instance.get_latest_asset_check_evaluation_record(check)
        assert record is not None and record.event is not None, check
        assert record.event.dagster_event.asset_check_evaluation_data.passed, check  # type: ignore[union-attr]
        assert record.event.dagster_event.asset_check_evaluation_data.partition == batch  # type: ignore[union-attr]


class _NaNEmbedder(Embedder[Any]):
    """A real embedder whose every vector is NaN: a planted bug across the batch (systemic)."""

    def __init__(self, inner: Embedder[Any]) -> None:
        super().__init__(device="cpu", torch_threads=None)
        self.inner = inner

    model_id = property(lambda self: self.inner.model_id)  # type: ignore[assignment]
    revision = property(lambda self: self.inner.revision)  # type: ignore[assignment]
    dim = property(lambda self: self.inner.dim)  # type: ignore[assignment]
    modality = property(lambda self: self.inner.modality)  # type: ignore[assignment]

    def _encode_batch(self, items: Any) -> np.ndarray:
        vectors = self.inner.encode(items).copy()
        vectors[:] = np.nan
        return vectors


class BrokenPipeline(PipelineResource):
    """The pipeline resource with a broken image model (swapped by subclassing, not mocking)."""

    def embedders(self) -> dict[str, Embedder[Any]]:
        real = super().embedders()
        return {"image": _NaNEmbedder(real["image"]), "text": real["text"]}


def test_a_bad_batch_is_stopped_by_the_blocking_checks(
    media_folder: Path, instance: dg.DagsterInstance, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MM_LAKE", str(tmp_path / "lake"))
    lake = open_lake(str(tmp_path / "lake"))
    [good] = _plan(lake, media_folder)
    assert run_ingest_job(instance, good).success
    before = {n: lake.snapshot().table(n).num_rows for n in ("media", "metadata", "embeddings")}

    # Two new images and a model that emits NaN for every one: systemic (one alone would only quarantine it).
    for name in ("orange", "chelsea"):
        suffix = ".jpg" if name == "orange" else ".png"
        original = (media_folder / f"images/{name}{suffix}").read_bytes()
        (media_folder / f"images/{name}-copy{suffix}").write_bytes(original + b"new")
    [bad] = _plan(lake, media_folder)
    result = run_ingest_job(instance, bad, pipeline=BrokenPipeline())
    assert not result.success
    failed = [
        e.asset_check_evaluation_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION" and not e.asset_check_evaluation_data.passed
    ]  # type: ignore[union-attr]
    assert [(f.check_name, f.asset_key.to_user_string()) for f in failed] == [("validation_share", "raw_media")]
    # Evaluated per batch: the failure belongs to partition `bad` (the UI shows it there, and a later
    # passing batch does not flip it), not to the asset as a whole ("Partition —").
    assert {f.partition for f in failed} == {bad}
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events() if e.asset_key}
    assert "published_snapshot" not in materialized
    assert lake.snapshot().seq == 1
    assert {n: lake.snapshot().table(n).num_rows for n in before} == before
    rejected = [e for e in lake.state().entries if e.event == "rejected"]
    assert rejected and rejected[-1].partition == bad and "NaN" in (rejected[-1].message or "")


def test_s3_sensor_tick_requests_new_objects_once(
    s3_endpoint: S3Endpoint,
    shared_media: Path,
    instance: dg.DagsterInstance,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    use_s3_lake(monkeypatch, s3_endpoint, tmp_path / "lake")
    bucket = s3_endpoint.create_bucket("sensor-media")
    client = s3_endpoint.client()
    for name in SAMPLE[:3]:
        client.upload_file(str(shared_media / name), bucket, f"library/{name}")
    resources = {
        "lake": LakeResource(uri=str(tmp_path / "lake")),
        "s3_source": MediaSourceResource(uri=f"s3://{bucket}/library"),
    }

    tick = SensorTicks(s3_media_sensor, instance, resources).tick

    first = tick(None)
    assert len(first.run_requests or []) == 1 and first.dynamic_partitions_requests
    batch = first.run_requests[0].partition_key  # type: ignore[index]
    assert batch is not None
    assert run_ingest_job(instance, batch).success
    lake = open_lake(str(tmp_path / "lake"))
    assert lake.snapshot().table("media").num_rows == 3
    assert all(
        uri.startswith(f"s3://{bucket}/library/") for uri in lake.snapshot().table("media").column("uri").to_pylist()
    )

    second = tick(first.cursor)
    assert not second.run_requests  # no change, nothing requested

    client.upload_file(str(shared_media / "images/apple.jpg"), bucket, "library/images/orange.jpg")  # overwrite
    client.delete_object(Bucket=bucket, Key="library/video/bikes.mp4")
    # Every pass of the paged listing reconciles deletions too: the next tick finds both changes.
    third = tick(second.cursor)
    kinds = sorted(str(r.partition_key).split("-")[0] for r in third.run_requests or [])
    assert kinds == ["erasure", "ingest"]
    for request in third.run_requests or []:
        assert run_ingest_job(instance, str(request.partition_key)).success
    media = {r["key"]: r for r in lake.snapshot().table("media").to_pylist()}
    apple = hashlib.sha256((shared_media / "images/apple.jpg").read_bytes()).hexdigest()
    assert media["library/images/orange.jpg"]["content_sha256"] == apple  # the overwrite is re-derived
    assert media["library/video/bikes.mp4"]["status"] == "deleted"
    gone = media["library/video/bikes.mp4"]["media_id"]
    for table in ("metadata", "derived", "embeddings"):
        assert lake.snapshot().table(table, filter=pc.field("media_id") == gone).num_rows == 0, table
    assert not tick(third.cursor).run_requests


def test_mmp_ingest_runs_batches_through_dagster(
    media_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.chdir(REPO)
    result = CliRunner().invoke(
        mmp, ["--lake", str(tmp_path / "lake"), "ingest", str(media_folder), "--json"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert [b["success"] for b in summary["batches"]] == [True]
    assert summary["snapshot"]["seq"] == 1
    again = CliRunner().invoke(mmp, ["--lake", str(tmp_path / "lake"), "ingest", str(media_folder)])
    assert again.exit_code == 0 and "nothing new" in again.output


@pytest.mark.slow
def test_dagster_asset_materialize_with_a_partition(media_folder: Path, tmp_path: Path) -> None:
    env = {**os.environ, "MM_LAKE": str(tmp_path / "lake"), "DAGSTER_HOME": str(tmp_path / "home")}
    plan = subprocess.run(
        [
            sys.executable,
            "-m",
            "mm_platform",
            "--lake",
            str(tmp_path / "lake"),
            "ingest",
            str(media_folder),
            "--plan-only",
            "--json",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    [batch] = [b["batch"] for b in json.loads(plan.stdout)]
    dagster = Path(sys.executable).parent / "dagster"
    run = subprocess.run(
        [
            str(dagster),
            "asset",
            "materialize",
            "-f",
            "definitions.py",
            "--select",
            "group:media_pipeline",
            "--partition",
            batch,
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert open_lake(str(tmp_path / "lake")).snapshot().partition == batch
