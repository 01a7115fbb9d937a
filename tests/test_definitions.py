"""Smoke test of the Dagster layer: the Definitions load, and the main job materializes the demo media into a
lake through a real (temporary, SQLite) Dagster instance."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from assets import all_assets
from definitions import defs
from mm_platform.lake import Lake
from mm_platform.orchestration import LakeResource, MediaSourceResource

REPO = Path(__file__).resolve().parent.parent


def test_definitions_load() -> None:
    repo = defs.get_repository_def()
    keys = {key.to_user_string() for key in repo.asset_graph.get_all_asset_keys()}
    assert "raw_media" in keys


def test_main_job_publishes_the_demo_media(tmp_path: Path) -> None:
    lake_uri = str(tmp_path / "lake")
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        result = dg.materialize(
            all_assets,
            instance=instance,
            resources={
                "lake": LakeResource(uri=lake_uri),
                "source": MediaSourceResource(uri=str(REPO / "demo" / "media")),
            },
        )
        assert result.success
    snap = Lake.open(lake_uri).snapshot()
    media = snap.table("media")
    expected = sum(1 for p in (REPO / "demo" / "media").rglob("*") if p.is_file())
    assert snap.seq == 1 and media.num_rows == expected
    by_key = {r["key"]: r for r in media.to_pylist()}
    assert by_key["images/fruits_really_a_jpeg.png"]["mime_type"] == "image/jpeg"
    assert by_key["video/bikes.mp4"]["modality"] == "video"
