"""Clear errors, never tracebacks: one ``error:`` line, a hint, exit code 2, and the published snapshot intact.

Storage that fills up or turns read-only during an ingest, three ``mmp ingest`` of one folder started at
once on a fresh DAGSTER_HOME (Dagster's SQLite schema race, then stale stages that re-stage), a filter
number out of range, annotation files too wide, too deep or with too large numbers, a set name with a
newline, and S3 "folder" marker objects (skipped, not quarantined).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from click.testing import CliRunner

from mm_platform.catalog import open_lake
from mm_platform.cli import main
from mm_platform.sources import S3Settings, source_from_uri
from tests.conftest import REPO_ROOT
from tests.factories import partition_writes
from tests.services import S3Endpoint


def _ingest(src: Path, lake: Path, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MM_LAKE": str(lake), "DAGSTER_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "mm_platform", "ingest", str(src)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _images(folder: Path, shared_media: Path, names: tuple[str, ...]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(shared_media / "images" / name, folder / name)
    return folder


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MB tmpfs of our own (root only), unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(mount)], capture_output=True)
        subprocess.run(["umount", "-l", str(mount)], check=True)


def _assert_clean_failure(run: subprocess.CompletedProcess[str], says: str) -> None:
    assert run.returncode == 2, run.stderr[-3000:]
    errors = [line for line in run.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and says in errors[0], run.stderr[-3000:]
    assert any(line.startswith("hint: ") for line in run.stderr.splitlines())
    assert "Traceback" not in run.stderr.split(errors[0])[-1]


def test_full_then_read_only_storage(small_disk: Path, tmp_path: Path, shared_media: Path) -> None:
    lake_root, home = small_disk / "lake", tmp_path / "home"
    first = _ingest(_images(tmp_path / "a", shared_media, ("apple.jpg",)), lake_root, home)
    assert first.returncode == 0, first.stderr[-3000:]
    before = open_lake(str(lake_root), create=False).snapshot().seq

    stats = os.statvfs(small_disk)  # leave ~30 kB: the next batch's stage cannot fit
    (small_disk / "filler").write_bytes(b"\0" * (stats.f_bavail * stats.f_frsize - 30_000))
    more = _images(tmp_path / "b", shared_media, ("apple.jpg", "baboon.jpg", "fruits.jpg", "chelsea.png"))
    full = _ingest(more, lake_root, home)
    _assert_clean_failure(full, "no space is left on the device")
    assert open_lake(str(lake_root), create=False).snapshot().seq == before

    (small_disk / "filler").unlink()
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    read_only = _ingest(more, lake_root, home)
    _assert_clean_failure(read_only, "the file system is read-only")
    assert open_lake(str(lake_root), create=False).snapshot().seq == before


def test_three_ingests_of_one_folder_at_once_on_a_fresh_home(tmp_path: Path, shared_media: Path) -> None:
    src = _images(tmp_path / "src", shared_media, ("apple.jpg", "orange.jpg", "flower.jpg"))
    lake_root, home = tmp_path / "lake", tmp_path / "fresh_home"
    with ThreadPoolExecutor(3) as pool:
        runs = list(pool.map(lambda _: _ingest(src, lake_root, home), range(3)))
    for run in runs:
        assert run.returncode == 0, run.stderr[-3000:]
    snapshot = open_lake(str(lake_root), create=False).snapshot()
    media = snapshot.table("media").column("key").to_pylist()
    assert sorted(media) == ["apple.jpg", "flower.jpg", "orange.jpg"], "each object exactly once"
    assert snapshot.table("metadata").num_rows == 3


def _mmp(lake: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["--lake", str(lake), *args])
    return result.exit_code, result.output


def test_filter_number_out_of_range(tmp_path: Path) -> None:
    open_lake(str(tmp_path / "lake")).publish("b1", partition_writes("b1", 2))
    before = open_lake(str(tmp_path / "lake")).snapshot().seq
    code, out = _mmp(tmp_path / "lake", "search", "a cat", "--where", "width > 99999999999999999999")
    assert code == 2 and "error: the number 99999999999999999999 is out of range" in out, out
    assert "Traceback" not in out and "hint:" in out
    assert open_lake(str(tmp_path / "lake")).snapshot().seq == before


@pytest.fixture(scope="module")
def annotated_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("annotations") / "lake"
    open_lake(str(root)).publish("b1", partition_writes("b1", 2))
    return root


def _keys(lake: Path) -> list[str]:
    return [str(k) for k in open_lake(str(lake)).snapshot().table("media").column("key").to_pylist()]


UNMATCHED = '{{"key": "not-in-the-lake.jpg", "label": "cat"}}\n'  # a first row that matches nothing


@pytest.mark.parametrize(
    ("name", "body", "says"),
    [
        ("deep.jsonl", UNMATCHED + '{{"key": "{key}", "value": ' + "[" * 10**5 + "]" * 10**5 + "}}\n", "nested deeper"),
        ("digits.jsonl", UNMATCHED + '{{"key": "{key}", "score": ' + "9" * 5000 + "}}\n", "Exceeds the limit"),
        ("wide.csv", "key," + ",".join(f"c{i}" for i in range(100_000)) + "\n{key}" + ",1" * 100_000 + "\n", None),
    ],
)
def test_hostile_annotation_files(annotated_lake: Path, tmp_path: Path, name: str, body: str, says: str | None) -> None:
    before = open_lake(str(annotated_lake)).snapshot().seq
    path = tmp_path / name
    path.write_text(body.format(key=_keys(annotated_lake)[0]))
    code, out = _mmp(annotated_lake, "annotate", str(path), "--set", "hostile", "--json")
    assert code == 2, out
    if says is None:
        assert "error: " in out and "100,001 columns; an annotation file may have at most 1,024" in out, out
    else:
        assert "error: no row of" in out and says in out, out  # each row is rejected with its reason
    assert "Traceback" not in out and "hint:" in out
    assert open_lake(str(annotated_lake)).snapshot().seq == before


def test_set_name_with_a_newline_is_refused(annotated_lake: Path, tmp_path: Path) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text(f"key,label\n{_keys(annotated_lake)[0]},cat\n")
    code, out = _mmp(annotated_lake, "annotate", str(labels), "--set", "pets\n")
    assert code == 2 and "error: invalid annotation set name 'pets\\n'" in out, out


def test_s3_folder_markers_are_not_media(s3_endpoint: S3Endpoint) -> None:
    bucket = s3_endpoint.create_bucket("markers")
    client = s3_endpoint.client()
    objects = {"photos/": b"", "photos/a.jpg": b"\xff\xd8\xff", "photos/sub/": b"", "odd +%20?&#.jpg": b"x"}
    for key, body in objects.items():
        client.put_object(Bucket=bucket, Key=key, Body=body)
    source = source_from_uri(f"s3://{bucket}", s3_settings=S3Settings.from_env(s3_endpoint.env()))
    assert [o.key for o in source.list_objects()] == ["odd +%20?&#.jpg", "photos/a.jpg"]
    assert json.dumps([o.uri for o in source.list_objects()])  # every key is valid UTF-8 text
