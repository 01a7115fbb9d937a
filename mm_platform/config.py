"""Configuration values of the media pipeline (frozen; one docstring per field)."""

from __future__ import annotations

from dataclasses import dataclass

from mm_platform.media import DEFAULT_TIMEOUT_S


@dataclass(frozen=True)
class PipelineConfig:
    """How a batch is processed: which models, how much parallelism, how large the chunks."""

    image_model: str = "efficientnet-lite0"
    """Embedder spec for images and video keyframes (``efficientnet-lite0`` or ``clip:<name_or_path>``)."""
    text_model: str = "minilm"
    """Embedder spec for document text (``minilm`` or ``clip:<name_or_path>``)."""
    workers: int = 2
    """Decode/probe worker processes (they overlap with embedding in the main process)."""
    timeout_s: float = DEFAULT_TIMEOUT_S
    """Per-file time limit for probing and derivation; an overrun quarantines the file as ``timeout``."""
    chunk_size: int = 32
    """Objects per embedding batch and per staged chunk: bounds memory whatever the batch size."""
    label_top_k: int = 5
    """ImageNet labels kept per image (as ``derived`` rows of kind ``label``)."""
    progress: bool = False
    """Show a progress bar (tqdm) on stderr."""
