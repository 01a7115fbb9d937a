"""The first hour, as a new user met it: each friction seen when the platform was tried fresh, as a test
over the session's small real lake (tests/browser_lake.py) or a copy of it — `mmp diff` names object keys,
`mmp lineage` says which snapshots held other bytes, `--json` errors are JSON, `--image s3://…` works,
no "Loading weights" bar on a search, unknown `--columns` are an error, `captured_at` compares as a time,
results of different models are fused by rank (not by raw score), and publishes made by `mmp erase` /
`mmp annotate` reach the Dagster instance."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from click.testing import CliRunner

from mm_platform.catalog import open_lake
from mm_platform.cli import main
from mm_platform.embed import clear_embedder_cache
from mm_platform.errors import ConfigError
from mm_platform.search import search
from mm_platform.search.fusion import RRF_K, RouteHits, fuse
from mm_platform.serve.service import LakeBrowser
from tests.browser_lake import OVERWRITTEN, BrowserLake
from tests.services import S3Endpoint


def _mmp(lake: Path | str, *args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(main, ["--lake", str(lake), *args], env=env, catch_exceptions=False)


# --- the CLI -----------------------------------------------------------------------------------------------


def test_diff_names_object_keys_not_ids(browser_lake: BrowserLake) -> None:
    result = _mmp(browser_lake.root, "diff", "1", "2")
    assert result.exit_code == 0, result.output
    assert f"media changed: {OVERWRITTEN}\n" in result.output
    assert f"derived changed: {OVERWRITTEN} (×6)" in result.output  # thumbnail + 5 labels of the new bytes
    assert browser_lake.ids[OVERWRITTEN] not in result.output


def test_lineage_of_an_overwritten_object_says_which_snapshots_held_other_bytes(browser_lake: BrowserLake) -> None:
    result = _mmp(browser_lake.root, "lineage", OVERWRITTEN)
    assert result.exit_code == 0, result.output
    assert "snapshots  1, 2, 3" in result.output
    assert "snapshot 1 held other bytes: sha256=" in result.output
    assert "snapshots 2, 3 held these bytes" in result.output
    payload = json.loads(_mmp(browser_lake.root, "lineage", OVERWRITTEN, "--json").output)
    assert [(v["seqs"], v["current"]) for v in payload["versions"]] == [([1], False), ([2, 3], True)]


def test_json_errors_are_json(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["--lake", str(tmp_path / "nowhere"), "status", "--json"])
    assert result.exit_code == 2
    error = json.loads(result.stdout)
    assert error["error"].startswith("no lake at") and error["hint"]
    assert "error: no lake at" in result.stderr  # the usual line for a person, on stderr


def test_unknown_columns_are_an_error(browser_lake: BrowserLake) -> None:
    result = CliRunner().invoke(
        main, ["--lake", str(browser_lake.root), "search", "a fruit", "--columns", "width,../../etc/passwd"]
    )
    assert result.exit_code == 2
    assert "error: unknown metadata column(s) '../../etc/passwd'" in result.output and "hint: known:" in result.output
    fine = _mmp(browser_lake.root, "search", "a fruit", "--columns", "camera_make", "--k", "2")
    assert fine.exit_code == 0, fine.output


def test_search_shows_no_loading_bar_and_names_model_and_fusion(browser_lake: BrowserLake) -> None:
    clear_embedder_cache()  # the models load inside this command, as in a fresh `mmp search`
    result = _mmp(browser_lake.root, "search", "a fruit", "--k", "3")
    assert result.exit_code == 0, result.output
    assert "Loading weights" not in result.output and "it/s" not in result.output
    header = result.output.splitlines()[0]
    assert header.startswith("snapshot 3, models interleaved on one model's cosine scale: label-bridge (")


def test_image_query_from_s3(browser_lake: BrowserLake, s3_endpoint: S3Endpoint) -> None:
    bucket = s3_endpoint.create_bucket(f"queries-{uuid.uuid4().hex[:8]}")
    s3_endpoint.client().put_object(
        Bucket=bucket, Key="q/orange.jpg", Body=(browser_lake.media / "images/orange.jpg").read_bytes()
    )
    env = s3_endpoint.env()
    result = _mmp(browser_lake.root, "search", "--image", f"s3://{bucket}/q/orange.jpg", "--k", "2", "--json", env=env)
    assert result.exit_code == 0, result.output
    hits = json.loads(result.output)
    assert hits[0]["key"] == "images/orange.jpg" and hits[0]["score"] > 0.99
    missing = CliRunner().invoke(
        main, ["--lake", str(browser_lake.root), "search", "--image", f"s3://{bucket}/q/none.jpg"], env=env
    )
    assert missing.exit_code == 2 and f"error: no object at s3://{bucket}/q/none.jpg" in missing.output


def test_captured_at_compares_as_a_time(browser_lake: BrowserLake) -> None:
    # images/gps.jpg was captured at 2099-09-29T10:10:10 (EXIF, no zone: read as UTC).
    def keys(where: str) -> set[str]:
        return {h.key for h in search(browser_lake.lake, "a photo", k=20, where=where, thumbnails=False)}

    assert keys("captured_at >= '2099-09-29T12:00:00+05:00'") == {"images/gps.jpg"}  # 07:00 UTC: earlier
    assert keys("captured_at < '2099-09-29T10:10:10+05:00'") == set()  # as text this prefix compared smaller
    assert keys("captured_at between '2099-01-01' and '2100-01-01'") == {"images/gps.jpg"}
    with pytest.raises(ConfigError, match="not an ISO date/time"):
        keys("captured_at > 'yesterday'")


# --- results of different models ---------------------------------------------------------------------------


def _route(route: str, model: str, scale: str, scores: list[tuple[str, float]]) -> RouteHits:
    return RouteHits(route, model, scale, [(m, s, route, model, s) for m, s in scores])


CLIP = _route("clip", "clip-vit", "clip-vit", [("img-a", -0.41), ("img-b", -0.45), ("img-c", -0.52)])
MINILM = _route("text", "minilm", "minilm", [("doc-a", 0.058), ("doc-b", 0.013)])


def test_scores_of_different_models_are_fused_by_rank() -> None:
    hits, method = fuse([CLIP, MINILM], 4)
    assert method == "rrf"
    # Raw scores would list both documents first (0.058, 0.013 > -0.41); ranks interleave the models.
    assert [h[0] for h in hits] == ["img-a", "doc-a", "img-b", "doc-b"]
    assert hits[0][1] == -0.41 and hits[0][4] == pytest.approx(1 / (RRF_K + 1))
    grouped, method = fuse([MINILM, CLIP], 2, "group")
    assert method == "group" and [(h[2], h[0]) for h in grouped] == [
        ("clip", "img-a"),
        ("clip", "img-b"),
        ("text", "doc-a"),
        ("text", "doc-b"),
    ]
    with pytest.raises(ConfigError, match="different models' spaces"):
        fuse([CLIP, MINILM], 4, "scale")


def test_routes_on_one_models_scale_interleave_by_it() -> None:
    bridge = _route("label-bridge", "efficientnet-lite0", "minilm", [("img-a", 0.30), ("img-b", 0.10)])
    hits, method = fuse([bridge, MINILM], 3)
    assert method == "scale" and [h[0] for h in hits] == ["img-a", "img-b", "doc-a"]
    single, method = fuse([MINILM], 5)
    assert method == "single" and [h[4] for h in single] == [None, None]
    found_by_both = _route("text", "minilm", "minilm", [("img-a", 0.2)])
    fused, _ = fuse([CLIP, found_by_both], 5, "rrf")
    assert fused[0][0] == "img-a" and fused[0][4] == pytest.approx(2 / (RRF_K + 1))


# --- Dagster -----------------------------------------------------------------------------------------------


def test_erase_annotate_and_rollback_publishes_reach_dagster(browser_lake: BrowserLake, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    shutil.copytree(browser_lake.root, lake)
    home = tmp_path / "dagster_home"
    env = {"DAGSTER_HOME": str(home), "MM_BROWSER_URL": "http://127.0.0.1:8750"}
    labels = tmp_path / "birds.csv"
    labels.write_text("key,label\nimages/orange.jpg,not-a-bird\n")

    annotated = _mmp(lake, "annotate", str(labels), "--set", "birds", env=env)
    assert annotated.exit_code == 0, annotated.output
    rolled = _mmp(lake, "rollback", "4", "--reason", "undo nothing", env=env)
    assert rolled.exit_code == 0, rolled.output
    erased = _mmp(
        lake,
        "erase",
        browser_lake.ids["documents/crazyones.pdf"],
        "--reason",
        "request 1",
        "--requested-by",
        "dpo@example.org",
        env=env,
    )
    assert erased.exit_code == 0, erased.output
    assert "reported snapshot 6 to Dagster" in erased.output

    with dg.DagsterInstance.from_config(str(home)) as instance:
        annotation = instance.get_latest_materialization_event(dg.AssetKey("annotation_set"))
        publish = instance.fetch_materializations(dg.AssetKey("published_snapshot"), limit=10).records
    assert annotation is not None and annotation.asset_materialization is not None
    meta = annotation.asset_materialization.metadata
    assert (meta["kind"].value, meta["publish_seq"].value, meta["annotation_set"].value) == ("annotate", 4, "birds")
    kinds = [
        (r.asset_materialization.metadata["kind"].value, r.asset_materialization.metadata["publish_seq"].value)
        for r in publish
        if r.asset_materialization
    ]
    assert sorted(kinds) == [("erase", 6), ("rollback", 5)]
    latest = publish[0].asset_materialization
    assert latest is not None and latest.metadata["browser_snapshot"] == dg.MetadataValue.url(
        "http://127.0.0.1:8750/diff?a=5&b=6"
    )
    # The browser's snapshot list names who asked for the erasure and why (the `erasures` audit table).
    listed = LakeBrowser(open_lake(str(lake))).snapshots()[-1]
    assert (listed["kind"], listed["actor"]) == ("erase", "dpo@example.org")
    assert listed["message"].endswith("(reason: request 1)")
    # No DAGSTER_HOME: nothing is reported (and Dagster is not even imported for it).
    quiet = _mmp(lake, "rollback", "6", env={"DAGSTER_HOME": ""})
    assert quiet.exit_code == 0 and "Dagster" not in quiet.output
