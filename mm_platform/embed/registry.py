"""Config strings -> embedders, built on first use and cached for the life of the process.

Specs: ``minilm`` (text), ``efficientnet-lite0`` (image), ``clip:<name_or_path>`` (both: pass
``modality`` to pick the view; image by default, since media is what gets embedded).
"""

from __future__ import annotations

import threading
from typing import Any

from mm_platform.embed.base import Embedder, Modality
from mm_platform.embed.clip import SentenceTransformerClipEmbedder
from mm_platform.embed.image import EfficientNetLite0Embedder
from mm_platform.embed.text import MiniLMTextEmbedder
from mm_platform.errors import ConfigError

__all__ = ["KNOWN_SPECS", "clear_embedder_cache", "embedder_for"]

KNOWN_SPECS = ("minilm", "efficientnet-lite0", "clip:<name_or_path>")

_ALIASES = {
    "minilm": "minilm",
    "all-minilm-l6-v2": "minilm",
    MiniLMTextEmbedder.MODEL_ID.lower(): "minilm",
    "efficientnet-lite0": "efficientnet-lite0",
}

# Weights are hundreds of MB and loading takes seconds: one instance per spec, shared by every caller.
_SINGLE: dict[str, Embedder[Any]] = {}
_CLIP: dict[str, SentenceTransformerClipEmbedder] = {}
_LOCK = threading.Lock()


def embedder_for(model_spec: str, modality: Modality | None = None) -> Embedder[Any]:
    """The cached embedder for ``model_spec``; ``modality`` picks a CLIP view or checks the others."""
    spec = model_spec.strip()
    if spec.lower().startswith("clip:"):
        return _clip_view(spec[len("clip:") :].strip(), modality or "image")
    key = _ALIASES.get(spec.lower())
    if key is None:
        raise ConfigError(f"unknown embedding model {model_spec!r}", hint=f"use one of {', '.join(KNOWN_SPECS)}")
    with _LOCK:
        if key not in _SINGLE:
            _SINGLE[key] = MiniLMTextEmbedder() if key == "minilm" else EfficientNetLite0Embedder()
        embedder = _SINGLE[key]
    if modality is not None and modality != embedder.modality:
        raise ConfigError(f"{model_spec!r} embeds {embedder.modality}, not {modality}")
    return embedder


def _clip_view(name_or_path: str, modality: Modality) -> Embedder[Any]:
    if not name_or_path:
        raise ConfigError("empty CLIP model in spec", hint="write clip:<name_or_path>, e.g. clip:clip-ViT-B-32")
    with _LOCK:
        if name_or_path not in _CLIP:
            _CLIP[name_or_path] = SentenceTransformerClipEmbedder(name_or_path)
        clip = _CLIP[name_or_path]
    return clip.text if modality == "text" else clip.images


def clear_embedder_cache() -> None:
    """Forget every cached embedder (tests; or to free a model's memory)."""
    with _LOCK:
        _SINGLE.clear()
        _CLIP.clear()
