"""Embedding models behind one interface (``Embedder``), and text -> image search through labels.

Plain Python, no Dagster. Importing this package loads no model and does not import torch; weights load
on first ``encode``. Pick models by config string with ``embedder_for``.
"""

from mm_platform.embed.base import Embedder, Modality, l2_normalize, resolve_device, weights_revision
from mm_platform.embed.clip import ClipImageView, ClipTextView, SentenceTransformerClipEmbedder
from mm_platform.embed.image import EfficientNetLite0Embedder, ImageLabels, preprocess_image
from mm_platform.embed.imagenet_labels import IMAGENET_LABELS, short_label
from mm_platform.embed.label_bridge import LabelBridge, Weighting
from mm_platform.embed.registry import KNOWN_SPECS, clear_embedder_cache, embedder_for
from mm_platform.embed.text import MiniLMTextEmbedder

__all__ = [
    "IMAGENET_LABELS",
    "KNOWN_SPECS",
    "ClipImageView",
    "ClipTextView",
    "EfficientNetLite0Embedder",
    "Embedder",
    "ImageLabels",
    "LabelBridge",
    "MiniLMTextEmbedder",
    "Modality",
    "SentenceTransformerClipEmbedder",
    "Weighting",
    "clear_embedder_cache",
    "embedder_for",
    "l2_normalize",
    "preprocess_image",
    "resolve_device",
    "short_label",
    "weights_revision",
]
