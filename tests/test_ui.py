"""The Dagster UI over a real instance: `dagster-webserver` serves workspace.yaml on 127.0.0.1 after one batch of
real media was ingested; its GraphQL API shows the asset graph raw_media → media_metadata → derived_media →
embeddings → published_snapshot with the blocking checks on the staged assets, and headless Chromium renders
the asset lineage page to `.test-artifacts/lineage.png`."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ARTIFACTS
from tests.services import free_port, installed_command

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
SAMPLE = ["images/orange.jpg", "documents/crazyones.pdf"]
CHAIN = ["raw_media", "media_metadata", "derived_media", "embeddings", "published_snapshot"]
STAGED = CHAIN[:-1]
START_TIMEOUT_S = 90
GRACE_S = 15
# The lineage tab of the publish asset: it depends on all four staged assets, so depth 1 draws the whole chain.
LINEAGE_PAGE = "assets/published_snapshot?view=lineage"

ASSET_GRAPH_QUERY = """
{
  assetNodes {
    assetKey { path }
    groupName
    dependencyKeys { path }
    assetChecksOrError { ... on AssetChecks { checks { name blocking } } }
  }
}
"""


@dataclass(frozen=True)
class Webserver:
    """A running dagster-webserver on 127.0.0.1."""

    url: str
    log: Path

    def graphql(self, query: str) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{self.url}/graphql",
            data=json.dumps({"query": query}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            body = json.load(response)
        assert not body.get("errors"), body["errors"]
        return body["data"]  # type: ignore[no-any-return]


def _live_members(pgid: int) -> list[str]:
    """Processes of a process group that are still alive (zombies waiting for init to reap them do not count)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) ": state ppid pgrp ...
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(text[: text.rindex(")") + 1])
    return alive


def _stop_group(proc: subprocess.Popen[bytes], grace_s: float = GRACE_S) -> None:
    """SIGTERM the leader, then SIGKILL whatever is left of its process group after a grace period."""
    pgid = proc.pid  # started with start_new_session=True: the leader's pid is the group id
    deadline = time.monotonic() + grace_s
    if proc.poll() is None:
        proc.terminate()
    while (proc.poll() is None or _live_members(pgid)) and time.monotonic() < deadline:
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    proc.wait(10)
    deadline = time.monotonic() + 10
    while (left := _live_members(pgid)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, f"processes left behind: {left}"


def _wait_for_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"dagster-webserver exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    pytest.fail(f"no HTTP 200 from {url} after {timeout_s}s:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="module")
def webserver(shared_media: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Webserver]:
    """dagster-webserver on a free port with a SQLite instance in which one batch has been ingested."""
    root = tmp_path_factory.mktemp("ui")
    home, lake, media = root / "dagster_home", root / "lake", root / "media"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    for name in SAMPLE:
        (media / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(shared_media / name, media / name)
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "MM_LAKE": str(lake),
        "GX_ANALYTICS_ENABLED": "false",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }

    ingest = subprocess.run(
        [installed_command("mmp"), "--lake", str(lake), "ingest", str(media), "--json"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ingest.returncode == 0, f"mmp ingest failed:\n{ingest.stdout[-3000:]}\n{ingest.stderr[-5000:]}"

    port = free_port()
    log = root / "webserver.log"
    with log.open("wb") as out:
        # Started in the background, the webserver ignores SIGINT/SIGTERM unless their default action is restored.
        proc = subprocess.Popen(
            [
                "env",
                "--default-signal=INT,TERM",
                installed_command("dagster-webserver"),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-w",
                "workspace.yaml",
            ],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_for_http(f"{url}/server_info", proc, log, START_TIMEOUT_S)
        yield Webserver(url, log)
    finally:
        _stop_group(proc)


def test_graphql_shows_the_layered_graph_with_blocking_checks(webserver: Webserver) -> None:
    nodes = {"/".join(n["assetKey"]["path"]): n for n in webserver.graphql(ASSET_GRAPH_QUERY)["assetNodes"]}
    assert set(CHAIN) <= set(nodes), f"assets in the UI: {sorted(nodes)}"
    deps = {key: {"/".join(d["path"]) for d in nodes[key]["dependencyKeys"]} for key in CHAIN}
    assert deps["raw_media"] == set()
    for parent, child in zip(CHAIN[:-2], CHAIN[1:-1], strict=True):
        assert deps[child] == {parent}, f"{child} depends on {deps[child]}"
    assert deps["published_snapshot"] == set(STAGED)
    assert {nodes[key]["groupName"] for key in CHAIN} == {"media_pipeline"}
    for key in STAGED:
        checks = nodes[key]["assetChecksOrError"].get("checks")
        assert checks, f"{key} has no asset checks in the UI: {nodes[key]['assetChecksOrError']}"
        assert all(check["blocking"] for check in checks), f"{key} has non-blocking checks: {checks}"


def test_chromium_renders_the_lineage_graph(webserver: Webserver) -> None:
    setup = subprocess.run([str(REPO / "scripts" / "ensure_chromium.sh")], capture_output=True, text=True, timeout=600)
    assert setup.returncode == 0, f"ensure_chromium.sh failed:\n{setup.stdout}\n{setup.stderr}"
    if not CHROMIUM.exists() and os.geteuid() != 0:
        pytest.skip(f"no Chromium and not root to install it: {setup.stderr.strip()}")

    ARTIFACTS.mkdir(exist_ok=True)
    png = ARTIFACTS / "lineage.png"
    png.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        proc = subprocess.Popen(
            [
                str(CHROMIUM),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                "--virtual-time-budget=20000",
                f"--screenshot={png}",
                "--window-size=1400,900",
                f"{webserver.url}/{LINEAGE_PAGE}",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            output, _ = proc.communicate(timeout=120)
        finally:
            _stop_group(proc, grace_s=5)
    assert png.is_file(), f"no screenshot written:\n{output.decode(errors='replace')[-3000:]}"
    assert png.stat().st_size > 20_000, f"{png} is only {png.stat().st_size} bytes: the page rendered blank?"
