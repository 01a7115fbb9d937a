"""Crash safety of an annotation publish: `mmp annotate` in its own process is killed with SIGKILL at each named
step of the publish protocol while it publishes a set's second revision (real media, real files). A reader then
sees exactly the previous snapshot (the first revision), and running the same command again converges: the
second revision is published once, every row once, no gap in the publish log."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.compute as pc
import pytest

from mm_platform.annotations import AttachOptions, attach_file
from mm_platform.lake import Lake, Snapshot
from tests.annotation_lake import copy_lake
from tests.lake_assertions import assert_log_has_no_gap, assert_no_duplicate_keys, snapshot_content

REPO = Path(__file__).resolve().parent.parent
FIRST = {"images/orange.jpg": "orange", "images/apple.jpg": "apple", "images/chelsea.png": "cat"}
SECOND = {"images/orange.jpg": "orange", "images/apple.jpg": "pear", "images/baboon.jpg": "monkey"}
KILL_POINTS = [
    "after_stage",
    "after_audit",
    "after_intent",
    "after_apply:annotation_sets",  # one of the revision's tables committed, the other not
    "after_apply:annotations",
    "after_published",
]


def _write(path: Path, labels: dict[str, str]) -> Path:
    path.write_text("key,label\n" + "".join(f"{k},{v}\n" for k, v in labels.items()))
    return path


def _labels(snapshot: Snapshot) -> dict[str, str]:
    keys = {r["media_id"]: r["key"] for r in snapshot.table("media", columns=["media_id", "key"]).to_pylist()}
    rows = snapshot.table("annotations", filter=pc.field("annotation_set") == "pets").to_pylist()
    return {keys[r["media_id"]]: r["label"] for r in rows}


def _annotate_until_killed(lake: Lake, path: Path, point: str, marker: Path) -> None:
    """Run `mmp annotate` in a child process paused at ``point``, then SIGKILL it there."""
    command = [
        sys.executable,
        "-m",
        "mm_platform",
        "--lake",
        lake.location.root,
        "annotate",
        str(path),
        "--set",
        "pets",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO), "MMP_FAULT_PAUSE_AT": point, "MMP_FAULT_READY_FILE": str(marker)}
    child = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    give_up = time.monotonic() + 120
    while not marker.exists():
        if child.poll() is not None:
            pytest.fail(f"mmp annotate finished before reaching {point}: {child.communicate()}")
        if time.monotonic() > give_up:
            child.kill()
            pytest.fail(f"mmp annotate never reached {point}")
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL


@pytest.mark.slow
@pytest.mark.parametrize("point", KILL_POINTS)
def test_sigkill_during_an_annotation_publish_leaves_the_previous_snapshot(
    media_lake: tuple[Path, Path], tmp_path: Path, point: str
) -> None:
    lake = copy_lake(media_lake[1], tmp_path / "lake")
    path = tmp_path / "pets.csv"
    first = attach_file(lake, str(_write(path, FIRST)), AttachOptions("pets"))
    before = lake.snapshot()
    content = snapshot_content(before)
    assert _labels(before) == FIRST

    _annotate_until_killed(lake, _write(path, SECOND), point, tmp_path / "reached")

    after_kill = lake.snapshot()
    if point == "after_published":
        assert after_kill.seq == before.seq + 1 and _labels(after_kill) == SECOND  # the publish point had passed
    else:
        assert after_kill.seq == before.seq and after_kill.table_versions == before.table_versions
        assert snapshot_content(after_kill) == content
        assert _labels(lake.snapshot(seq=first.seq)) == FIRST

    again = attach_file(lake, str(path), AttachOptions("pets"))  # the same command, run again

    final = lake.snapshot()
    assert again.revision == 2 and _labels(final) == SECOND
    assert sorted(final.table("annotation_sets", columns=["revision"]).column("revision").to_pylist()) == [1, 2]
    assert _labels(lake.snapshot(seq=first.seq)) == FIRST
    assert_no_duplicate_keys(final)
    assert assert_log_has_no_gap(lake) == [1, 2, 3]
