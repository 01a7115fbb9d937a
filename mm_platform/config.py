"""Configuration values of the media pipeline (frozen; one docstring per field)."""

from __future__ import annotations

from dataclasses import dataclass, field

from mm_platform.machine import default_probe_workers
from mm_platform.media import DEFAULT_TIMEOUT_S


@dataclass(frozen=True)
class PipelineConfig:
    """How a batch is processed: which models, how much parallelism, how large the chunks."""

    image_model: str = "efficientnet-lite0"
    """Embedder spec for images and video keyframes (``efficientnet-lite0`` or ``clip:<name_or_path>``)."""
    text_model: str = "minilm"
    """Embedder spec for document text (``minilm`` or ``clip:<name_or_path>``)."""
    workers: int = field(default_factory=default_probe_workers)
    """Decode/probe worker processes (they overlap with embedding in the main process); by default one per
    usable CPU core (affinity and cgroup quota respected)."""
    timeout_s: float = DEFAULT_TIMEOUT_S
    """Per-file time limit for probing and derivation; an overrun quarantines the file as ``timeout``."""
    chunk_size: int = 32
    """Objects per embedding batch and per staged chunk: bounds memory whatever the batch size."""
    label_top_k: int = 5
    """ImageNet labels kept per image (as ``derived`` rows of kind ``label``)."""
    progress: bool = False
    """Show a progress bar (tqdm) on stderr."""
