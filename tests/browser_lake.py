"""One small, real lake for the lake-browser and first-hour tests, built once per session, and `mmp serve`
running over it on 127.0.0.1.

Snapshot 1: images (two of them fruit, one with EXIF capture time), a PDF, a video (keyframes), two files
that are quarantined (empty; text under a .jpg name). Snapshot 2: `images/apple.jpg` overwritten at the source
with other bytes (a butterfly). Snapshot 3: an annotation set `pets` attached by key.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mm_platform.annotations.attach import AttachOptions, attach_file
from mm_platform.catalog import open_lake
from mm_platform.config import PipelineConfig
from mm_platform.ingest.process import BatchProcessor
from mm_platform.lake import Lake
from mm_platform.sources import LocalFolderSource
from tests.services import free_port, installed_command

REPO = Path(__file__).resolve().parent.parent
FILES = {
    "images/orange.jpg": "images/orange.jpg",
    "images/apple.jpg": "images/apple.jpg",
    "images/chelsea.png": "images/chelsea.png",
    "images/gps.jpg": "images/pillow_exif_gps.jpg",
    "documents/crazyones.pdf": "documents/crazyones.pdf",
    "video/bikes.mp4": "video/bikes.mp4",
    "broken/empty.jpg": "malformed/empty.jpg",
    "broken/text_named.jpg": "malformed/text_named.jpg",
}
OVERWRITTEN = "images/apple.jpg"
START_TIMEOUT_S = 180


@dataclass(frozen=True)
class BrowserLake:
    """The lake, its media folder, and the ids of its objects by key."""

    root: Path
    media: Path
    lake: Lake
    ids: dict[str, str]


def build_browser_lake(shared_media: Path, root: Path) -> BrowserLake:
    media = root / "media"
    for key, shared in FILES.items():
        (media / key).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shared_media / shared, media / key)
    lake = open_lake(str(root / "lake"))
    processor = BatchProcessor(lake, PipelineConfig(timeout_s=120))
    source = LocalFolderSource(media)
    objects = list(source.list_objects())
    first = processor.run(source, objects, "batch-1", "run-1")
    assert first.publish is not None and first.publish.seq == 1, first
    shutil.copyfile(shared_media / "images/butterfly.jpg", media / OVERWRITTEN)
    changed = [o for o in source.list_objects() if o.key == OVERWRITTEN]
    second = processor.run(source, changed, "batch-2", "run-2")
    assert second.publish is not None and second.publish.seq == 2
    labels = root / "pets.csv"
    labels.write_text("key,label\nimages/chelsea.png,cat\nimages/orange.jpg,fruit\n")
    attached = attach_file(lake, str(labels), AttachOptions("pets"))
    assert attached.seq == 3, attached
    return BrowserLake(root / "lake", media, lake, {o.key: o.media_id for o in objects})


@dataclass(frozen=True)
class Served:
    """`mmp serve` over the browser lake."""

    url: str
    token: str
    log: Path

    def get(self, path: str, *, token: bool = True) -> tuple[int, bytes, dict[str, str]]:
        headers = {"Authorization": f"Bearer {self.token}"} if token else {}
        request = urllib.request.Request(self.url + path, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return response.status, response.read(), dict(response.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(), dict(exc.headers)


@contextlib.contextmanager
def serve(lake_root: Path, log: Path) -> Iterator[Served]:
    """Start `mmp serve` (loopback by default, with a token) and yield a ``Served``; stop it after."""
    port, token = free_port(), secrets.token_urlsafe(16)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "MM_BROWSER_TOKEN": token}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [installed_command("mmp"), "--lake", str(lake_root), "serve", "--port", str(port)],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    served = Served(f"http://127.0.0.1:{port}", token, log)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"mmp serve exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
            with contextlib.suppress(OSError):
                if served.get("/api/snapshots")[0] == 200:
                    break
            if time.monotonic() > deadline:
                raise AssertionError(f"mmp serve did not answer in {START_TIMEOUT_S}s:\n{log.read_text()[-4000:]}")
            time.sleep(0.5)
        yield served
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
