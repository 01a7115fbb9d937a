"""One decode per image: probing, the thumbnail and the model input come from a single decode of the bytes.

Covers: every shared image is decoded exactly once by ``analyze`` (counted through an instrumented Pillow
opener), and the one decode's products equal what the separate decoders made before (thumbnail JPEG bytes
identical to ``make_thumbnail``'s, the model input identical to ``embedding_input``'s, metadata identical to
``probe``'s); through a real batch (probe workers, embedding, staging) every image is decoded once in its
worker and never in the main process; truncated and corrupt images are still rejected by the one decode.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
from PIL import Image

from mm_platform.catalog import open_lake
from mm_platform.config import PipelineConfig
from mm_platform.ingest import batch_stage
from mm_platform.ingest.analyze import Analysis, analyze
from mm_platform.ingest.process import BatchProcessor
from mm_platform.media import MediaRejected, ProbePool, make_thumbnail, probe
from mm_platform.pictures import embedding_input, model_input, model_input_from, to_rgb
from mm_platform.sources import LocalFolderSource
from tests import decode_counter


@pytest.fixture
def counted() -> Iterator[decode_counter.Counter[str]]:
    decode_counter.DECODES.clear()
    decode_counter.install()
    try:
        yield decode_counter.DECODES
    finally:
        decode_counter.uninstall()
        decode_counter.DECODES.clear()


def _images(shared_media: Path) -> list[Path]:
    return sorted((shared_media / "images").iterdir())


def test_each_image_is_decoded_once_and_gives_what_separate_decodes_gave(
    shared_media: Path, counted: decode_counter.Counter[str]
) -> None:
    paths = _images(shared_media)
    assert len(paths) >= 50
    per_image: dict[str, int] = {}
    analyses: dict[str, Analysis] = {}
    for path in paths:
        before = sum(counted.values())
        analyses[path.name] = analyze(path.read_bytes(), path.name)
        per_image[path.name] = sum(counted.values()) - before
    assert per_image == dict.fromkeys(per_image, 1), {k: v for k, v in per_image.items() if v != 1}
    decode_counter.uninstall()
    for path in paths:
        data, analysis = path.read_bytes(), analyses[path.name]
        [thumb] = [d for d in analysis.derived if d.kind == "thumbnail"]
        old = make_thumbnail(data, 256)
        assert (thumb.data, thumb.width, thumb.height) == (old.jpeg, old.width, old.height), path.name
        [(_, picture)] = analysis.images
        assert np.array_equal(np.asarray(picture), np.asarray(embedding_input(data))), path.name
        assert analysis.probed == probe(data, path.name), path.name


def test_a_batch_decodes_each_image_once_in_its_worker_and_never_in_the_main_process(
    shared_media: Path, tmp_path: Path, counted: decode_counter.Counter[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    class CountingProcessor(BatchProcessor):
        """The real pipeline; only the worker's function is wrapped, to report its decodes."""

        def _probe_pool(self) -> ProbePool:
            if self._pool is None:
                self._pool = ProbePool(
                    self.config.workers, self.config.timeout_s, probe_fn=cast(Any, decode_counter.counting_analyze)
                )
            return self._pool

    worker_decodes: dict[str, int] = {}
    real_embed = batch_stage.embed_pending

    def embed(embedders: Any, pending: list[Any], *args: Any) -> None:
        worker_decodes.update({p.media_id: p.analysis.decodes for p in pending})
        real_embed(embedders, pending, *args)

    monkeypatch.setattr(batch_stage, "embed_pending", embed)

    lake = open_lake(str(tmp_path / "lake"))
    source = LocalFolderSource(shared_media / "images")
    objects = list(source.list_objects())
    with CountingProcessor(lake, PipelineConfig(timeout_s=120, workers=2)) as processor:
        report = processor.run(source, objects, "images", "run-1")
    # fruits.jpg and fruits_really_a_jpeg.png are the same bytes: analysed (and decoded) once for both.
    assert report.analyzed == len(objects) - report.reused == len(worker_decodes)
    assert report.model_calls["image"] == -(-report.analyzed // processor.config.chunk_size)
    assert set(worker_decodes.values()) == {1}
    assert sum(counted.values()) == 0, counted  # the main process embeds decoded pictures; it decodes nothing


@pytest.mark.parametrize(("name", "reason"), [("truncated.jpg", "truncated"), ("corrupt.png", "corrupt")])
def test_the_one_decode_still_rejects_broken_images(shared_media: Path, tmp_path: Path, name: str, reason: str) -> None:
    data = (shared_media / "images" / "flower.jpg").read_bytes()
    broken = data[: len(data) // 2] if reason == "truncated" else b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    with pytest.raises(MediaRejected) as caught:
        analyze(broken, name)
    assert caught.value.reason.value == reason
    with pytest.raises(MediaRejected) as separately:
        probe(broken, name)
    assert separately.value.reason == caught.value.reason


def test_the_one_decode_gives_probes_verdict_on_every_malformed_file(shared_media: Path) -> None:
    def verdict(fn: Any, data: bytes, name: str) -> str:
        try:
            fn(data, name)
        except MediaRejected as exc:
            return exc.reason.value
        return "accepted"

    for path in sorted((shared_media / "malformed").iterdir()):
        data = path.read_bytes()
        assert verdict(analyze, data, path.name) == verdict(probe, data, path.name), path.name


def _picture(mode: str, size: tuple[int, int]) -> Image.Image:
    """A seeded picture in ``mode``: noise, with graded alpha where the mode has it, transparency for P."""
    rng = np.random.default_rng(len(mode))
    rgba = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 4), dtype=np.uint8), "RGBA")
    if mode == "P":
        picture = rgba.convert("RGB").quantize(64)
        picture.info["transparency"] = 3
        return picture
    if mode in ("I;16", "I"):
        deep = Image.fromarray(rng.integers(0, 65536, (size[1], size[0])).astype("<u2"))  # mode I;16
        return deep if mode == "I;16" else deep.convert(mode)
    return rgba.convert(mode)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "P", "1", "CMYK", "I;16", "I", "F"])
@pytest.mark.parametrize("size", [(300, 200), (120, 90)])  # reduced for the model, and kept as it is
def test_the_model_input_made_from_the_thumbnails_rgb_is_the_model_input(mode: str, size: tuple[int, int]) -> None:
    """The one decode composites a picture on white once, for the thumbnail, and the model input starts from
    that where the two colour rules agree: it must be, pixel for pixel, what the model rule alone makes."""
    picture = _picture(mode, size)
    rgb = to_rgb(picture)
    shared, alone = model_input_from(picture, rgb), model_input(picture)
    assert (shared.mode, shared.size) == (alone.mode, alone.size)
    assert np.array_equal(np.asarray(shared), np.asarray(alone)), mode
