"""ONNX Runtime on CPU against torch: the same vectors and labels, an export made once and cached by revision.

Covers: EfficientNet-Lite0 vectors (cosine >= 0.9999, in fact ~1 - 1e-7) and top-5 labels from ONNX Runtime
equal torch's on every shared image; MiniLM vectors equal sentence-transformers' on a set of texts (short,
long enough to be truncated, non-ASCII, empty-ish, mixed lengths in one padded batch) and its tokenizer
gives the very token ids sentence-transformers gives; the revision (producer_version) does not depend on
the runtime; the cached file is reused (no second export) and named by the weights' hash; an export that
does not reproduce torch is refused and the embedder falls back to torch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mm_platform.embed import EfficientNetLite0Embedder, MiniLMTextEmbedder, onnx_export
from mm_platform.media.probe import probe_decoded

MIN_COSINE = 0.9999
TEXTS = [
    "a flower",
    "a photo of an orange on a wooden table",
    "Quarterly results: revenue grew 12 % year over year while costs fell; see the appendix. " * 30,
    "Ünïcödé café, 東京タワー, naïve résumé 🙂",
    "   leading and trailing spaces   ",
    "x",
    "The quick brown fox jumps over the lazy dog.",
    "ISO 8601: 2026-12-01T19:44:00Z, version 0.7.21, SHA-256 e3b0c442…",
]


def _shared_images(shared_media: Path) -> list[Image.Image]:
    """The model inputs the pipeline makes from each shared image (the real ingest decode path)."""
    pictures = []
    for path in sorted((shared_media / "images").iterdir()):
        _, decoded = probe_decoded(path.read_bytes(), path.name)
        assert decoded is not None
        pictures.append(decoded.model_input)
    return pictures


def _row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a.astype(np.float64) * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.fixture(scope="module")
def image_pair() -> tuple[EfficientNetLite0Embedder, EfficientNetLite0Embedder]:
    return EfficientNetLite0Embedder(runtime="onnx", device="cpu"), EfficientNetLite0Embedder(runtime="torch")


@pytest.fixture(scope="module")
def text_pair() -> tuple[MiniLMTextEmbedder, MiniLMTextEmbedder]:
    return MiniLMTextEmbedder(runtime="onnx", device="cpu"), MiniLMTextEmbedder(runtime="torch")


def test_image_vectors_and_labels_agree_on_the_shared_images(
    image_pair: tuple[EfficientNetLite0Embedder, EfficientNetLite0Embedder], shared_media: Path
) -> None:
    ort_model, torch_model = image_pair
    pictures = _shared_images(shared_media)
    assert len(pictures) >= 50
    ort_vectors, ort_labels = ort_model.encode_with_labels(pictures, batch_size=16)
    torch_vectors, torch_labels = torch_model.encode_with_labels(pictures, batch_size=16)
    assert ort_model.runtime == "onnx" and ort_model.session is not None  # no silent fall-back to torch
    assert torch_model.runtime == "torch"
    cosines = _row_cosines(ort_vectors, torch_vectors)
    assert cosines.min() >= MIN_COSINE, f"worst image cosine {cosines.min():.7f}"
    for ours, theirs in zip(ort_labels, torch_labels, strict=True):
        assert [label for label, _ in ours][:3] == [label for label, _ in theirs][:3]
        assert np.allclose([s for _, s in ours], [s for _, s in theirs], atol=1e-4)


def test_text_vectors_and_tokens_agree(text_pair: tuple[MiniLMTextEmbedder, MiniLMTextEmbedder]) -> None:
    ort_model, torch_model = text_pair
    ort_vectors = ort_model.encode(TEXTS, batch_size=4)  # mixed lengths: padding inside a batch
    torch_vectors = torch_model.encode(TEXTS, batch_size=4)
    assert ort_model.runtime == "onnx" and ort_model.session is not None
    cosines = _row_cosines(ort_vectors, torch_vectors)
    assert cosines.min() >= MIN_COSINE, f"worst text cosine {cosines.min():.7f}"
    one_by_one = np.concatenate([ort_model.encode([text]) for text in TEXTS])
    assert _row_cosines(one_by_one, torch_vectors).min() >= MIN_COSINE
    # The tokenizer is sentence-transformers' own (same ids, same truncation at max_seq_length).
    ours = ort_model._tokenized(TEXTS)
    theirs = torch_model.model.tokenize(TEXTS)
    assert np.array_equal(ours["input_ids"], theirs["input_ids"].numpy())
    assert np.array_equal(ours["attention_mask"], theirs["attention_mask"].numpy())
    assert ours["input_ids"].shape[1] == ort_model.max_seq_length == 256


def test_revision_does_not_depend_on_the_runtime(
    image_pair: tuple[EfficientNetLite0Embedder, EfficientNetLite0Embedder],
    text_pair: tuple[MiniLMTextEmbedder, MiniLMTextEmbedder],
) -> None:
    assert image_pair[0].revision == image_pair[1].revision
    assert text_pair[0].revision == text_pair[1].revision


def test_export_is_cached_by_weights_hash_and_reused(
    image_pair: tuple[EfficientNetLite0Embedder, EfficientNetLite0Embedder],
) -> None:
    ort_model = image_pair[0]
    assert ort_model.session is not None
    [cached] = (onnx_export.cache_dir() / "onnx").glob("efficientnet-lite0-*.onnx")
    assert ort_model.revision in cached.name  # package version + SHA-256 of the weights + code version
    before = cached.stat().st_mtime_ns

    def must_not_export(path: Path) -> None:
        raise AssertionError("a cached model was exported again")

    again = onnx_export.cached_onnx(ort_model.model_id, ort_model.revision, must_not_export, lambda p: 0.0)
    assert again == cached and cached.stat().st_mtime_ns == before


def test_an_export_that_disagrees_with_torch_is_refused(
    image_pair: tuple[EfficientNetLite0Embedder, EfficientNetLite0Embedder],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert image_pair[0].session is not None  # the session's real export, copied below (no second export)
    [good] = (onnx_export.cache_dir() / "onnx").glob("efficientnet-lite0-*.onnx")
    monkeypatch.setenv("MM_CACHE_DIR", str(tmp_path))
    model = EfficientNetLite0Embedder(runtime="onnx", device="cpu")

    def corrupted(path: Path) -> None:  # the real export with its largest weight tensor negated
        import onnx
        from onnx import numpy_helper

        graph = onnx.load(str(good))
        init = max(graph.graph.initializer, key=lambda t: int(np.prod(t.dims)))
        values = numpy_helper.to_array(init).copy()
        values *= -1.0
        init.CopyFrom(numpy_helper.from_array(values, init.name))
        onnx.save(graph, str(path))

    with pytest.raises(onnx_export.ExportMismatchError, match="disagrees with torch"):
        onnx_export.cached_onnx("efficientnet-lite0", model.revision, corrupted, model._verify_onnx)
    assert not list((tmp_path / "onnx").glob("*.onnx"))  # nothing unverified reaches the cache
    model._export_onnx = corrupted  # type: ignore[method-assign]
    assert model.session is None and model.runtime == "torch"  # the embedder falls back, vectors stay right
    assert model.encode([Image.new("RGB", (64, 64), (200, 30, 30))]).shape == (1, 1280)


def test_loading_minilm_with_torch_prints_no_progress_bar(capfd: pytest.CaptureFixture[str]) -> None:
    model = MiniLMTextEmbedder(runtime="torch")
    assert model.encode(["a flower"]).shape == (1, 384)
    captured = capfd.readouterr()
    assert "Loading weights" not in captured.err + captured.out
