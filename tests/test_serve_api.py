"""The lake browser's JSON API, served by a real `mmp serve` on 127.0.0.1 over a small ingested lake
(tests/browser_lake.py): search answers what `mmp search --json` answers, an item's lineage is what
`mmp lineage --json` prints, path-traversal attempts and hostile filters are refused with 4xx, sizes are
bounded, the token is required, and a non-loopback bind without a token is refused."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

import pytest
from click.testing import CliRunner

from mm_platform.cli import main
from tests.browser_lake import OVERWRITTEN, BrowserLake, Served


def _cli_json(lake: BrowserLake, *args: str) -> Any:
    result = CliRunner().invoke(main, ["--lake", str(lake.root), *args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _api(served: Served, path: str) -> Any:
    status, body, _ = served.get(path)
    assert status == 200, (path, status, body[:500])
    return json.loads(body)


def _q(**params: object) -> str:
    return urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})


@pytest.mark.parametrize(
    ("query", "where"),
    [("a fruit", None), ("here's to the crazy ones", None), ("a cat", "modality = 'image' and width > 400")],
)
def test_search_returns_the_hits_of_mmp_search(
    served: Served, browser_lake: BrowserLake, query: str, where: str | None
) -> None:
    args = [query, "--k", "6"] + (["--where", where] if where else [])
    cli = _cli_json(browser_lake, "search", *args)
    api = _api(served, "/api/search?" + _q(q=query, k=6, where=where))
    assert cli, "the query should find something"
    assert api == cli


def test_search_of_an_old_snapshot_and_more_like_this(served: Served, browser_lake: BrowserLake) -> None:
    apple = browser_lake.ids[OVERWRITTEN]
    old = _api(served, "/api/search?" + _q(q="a fruit", k=8, snapshot=1))
    assert old == _cli_json(browser_lake, "search", "a fruit", "--k", "8", "--snapshot", "1")
    like = _api(served, "/api/search?" + _q(like=browser_lake.ids["images/orange.jpg"], k=3))
    assert like[0]["key"] == "images/orange.jpg" and like[0]["route"] == "image"
    assert apple in {h["media_id"] for h in _api(served, "/api/search?" + _q(q="a butterfly", k=8))}


def test_item_lineage_matches_mmp_lineage(served: Served, browser_lake: BrowserLake) -> None:
    apple = browser_lake.ids[OVERWRITTEN]
    cli = _cli_json(browser_lake, "lineage", apple)
    assert _api(served, "/api/lineage?" + _q(ref=apple)) == cli
    assert _api(served, "/api/lineage?" + _q(ref=OVERWRITTEN)) == cli  # by key, too
    item = _api(served, f"/api/items/{apple}")
    assert item["lineage"] == cli
    versions = cli["versions"]
    assert [v["seqs"] for v in versions] == [[1], [2, 3]] and [v["current"] for v in versions] == [False, True]
    assert item["media"]["key"] == OVERWRITTEN and item["thumbnail"] and item["labels"]
    assert {v["model_id"] for v in item["vectors"]} == {"efficientnet-lite0"}


def test_item_shows_keyframes_annotations_and_metadata(served: Served, browser_lake: BrowserLake) -> None:
    video = _api(served, f"/api/items/{browser_lake.ids['video/bikes.mp4']}")
    assert video["keyframes"] and video["metadata"]["codec"]
    status, body, headers = served.get(f"/api/derived/{video['keyframes'][0]['derived_id']}")
    assert status == 200 and headers["content-type"] == "image/jpeg" and body[:2] == b"\xff\xd8"
    cat = _api(served, f"/api/items/{browser_lake.ids['images/chelsea.png']}")
    assert [(a["annotation_set"], a["label"]) for a in cat["annotations"]] == [("pets", "cat")]
    doc = _api(served, f"/api/items/{browser_lake.ids['documents/crazyones.pdf']}")
    assert doc["metadata"]["page_count"] >= 1 and "crazy" in doc["metadata"]["text"].lower()


def test_snapshots_diff_and_quarantine(served: Served, browser_lake: BrowserLake) -> None:
    snapshots = _api(served, "/api/snapshots")
    assert [s["seq"] for s in snapshots] == [1, 2, 3] and snapshots[0]["run_id"] == "run-1"
    diff = _api(served, "/api/diff?a=1&b=2")
    cli = _cli_json(browser_lake, "diff", "1", "2")
    assert diff["tables"] == {
        name: {k: v for k, v in t.items() if not k.endswith("_objects")} for name, t in cli["tables"].items()
    }
    assert cli["tables"]["media"]["changed_objects"] == [OVERWRITTEN]
    objects = diff["objects"]
    assert (objects["added"], objects["changed"], objects["removed"]) == (0, 1, 0)
    assert objects["objects"][0]["key"] == OVERWRITTEN and "content_sha256" in objects["objects"][0]["columns"]
    quarantine = _api(served, "/api/quarantine")
    assert quarantine["reasons"] == {"empty": 1, "text_under_media_extension": 1}
    only = _api(served, "/api/quarantine?reason=empty")
    assert [r["uri"].rsplit("/", 1)[1] for r in only["rows"]] == ["empty.jpg"] and only["total"] == 1


@pytest.mark.parametrize(
    "path",
    [
        "/api/items/..%2F..%2F..%2Fetc%2Fpasswd",
        "/api/items/../../../etc/passwd",
        "/api/derived/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
        "/api/media/..%2F..%2Flake%2F_publish_log/thumbnail",
        "/items/..%2F..%2Fetc%2Fpasswd",
        "/api/lineage?ref=%2Fetc%2Fpasswd",
        "/api/lineage?ref=..%2F..%2F..%2Fetc%2Fpasswd",
        "/static/..%2F..%2Fetc%2Fpasswd",
    ],
)
def test_path_traversal_is_refused(served: Served, path: str) -> None:
    status, body, _ = served.get(path)
    assert 400 <= status < 500, (path, status)
    assert b"root:" not in body


@pytest.mark.parametrize(
    "where",
    [
        "1=1; drop table media",
        "__import__('os').system('id')",
        "width > 1 or exec('x')",
        "uri = '' union select * from media",
        "(" * 40 + "width > 1" + ")" * 40,
        "../../etc/passwd = 1",
    ],
)
def test_hostile_filters_are_refused(served: Served, where: str) -> None:
    status, body, _ = served.get("/api/search?" + _q(q="a fruit", where=where))
    assert status == 400, (where, status, body[:300])
    assert json.loads(body)["error"]


def test_sizes_and_parameters_are_bounded(served: Served, browser_lake: BrowserLake) -> None:
    assert served.get("/api/search?q=x&k=100000")[0] == 422
    assert served.get("/api/quarantine?limit=100000")[0] == 422
    assert served.get("/api/search?q=x&fusion=exec")[0] == 400
    assert served.get("/api/search")[0] == 400  # neither q nor like
    assert served.get("/api/items/" + "0" * 32)[0] == 404
    assert served.get("/api/search?q=x&snapshot=99")[0] == 404


def test_the_token_is_required_and_the_api_is_documented(served: Served) -> None:
    assert served.get("/api/snapshots", token=False)[0] == 401
    assert served.get("/search", token=False)[0] == 401
    status, body, _ = served.get("/openapi.json")
    paths = json.loads(body)["paths"]
    assert status == 200 and {"/api/search", "/api/items/{media_id}", "/api/lineage", "/api/diff"} <= set(paths)
    status, body, headers = served.get("/docs")  # rendered offline from the same schema, no scripts
    assert status == 200 and b"/api/lineage" in body and b"<script" not in body
    assert "default-src 'none'" in headers["content-security-policy"]


def test_serving_off_loopback_needs_a_token(browser_lake: BrowserLake) -> None:
    result = CliRunner().invoke(
        main,
        ["--lake", str(browser_lake.root), "serve", "--host", "0.0.0.0", "--no-warm"],
        env={"MM_BROWSER_TOKEN": ""},
    )
    assert result.exit_code == 2
    assert "error: refusing to serve the lake on 0.0.0.0 without a token" in result.output
