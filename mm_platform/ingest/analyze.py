"""What a probe worker does with one object's bytes: metadata, derived artifacts and embedding inputs.

Runs inside ``ProbePool`` worker processes (decoding is the expensive, crash-prone part), so the main
process only embeds — decode overlaps compute. Everything returned must pickle.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from PIL import Image

import mm_platform.media.probe_av
import mm_platform.media.probe_document  # noqa: F401 - with probe_av: loaded with the workers (forkserver preload)
from mm_platform.media import Probed, chunk_text, extract_keyframes
from mm_platform.media.blob import Buffer
from mm_platform.media.probe import probe_decoded
from mm_platform.pictures import EMBED_INPUT_SIDE

ANALYZE_VERSION = "1"
"""Bump when metadata extraction or derivation changes: rows from older versions become stale."""
THUMBNAIL_SIDE = 256
"""Longest side of a thumbnail."""
MAX_KEYFRAMES = 8


@dataclass
class DerivedArtifact:
    """One derived row before lineage is attached."""

    kind: str
    ordinal: int
    mime_type: str | None = None
    data: bytes | None = None
    width: int | None = None
    height: int | None = None
    timestamp_s: float | None = None
    text: str | None = None


@dataclass
class Analysis:
    """Everything the workers learned about one object's bytes."""

    probed: Probed
    derived: list[DerivedArtifact] = field(default_factory=list)
    images: list[tuple[int | None, Image.Image]] = field(default_factory=list)
    """Embedding inputs: (keyframe ordinal or None for the image itself, RGB picture)."""
    texts: list[tuple[int, str]] = field(default_factory=list)
    """Text chunks to embed: (chunk ordinal, text)."""


def analyze(data: Buffer, name: str) -> Analysis:
    """Probe, derive and prepare embedding inputs; raises ``MediaRejected`` for unusable bytes."""
    # An image is decoded once, here: metadata, validity, thumbnail and model input all come from that decode.
    probed, decoded = probe_decoded(
        data, name, thumb_side=THUMBNAIL_SIDE, draft_side=max(THUMBNAIL_SIDE, EMBED_INPUT_SIDE)
    )
    analysis = Analysis(probed=probed)
    modality = probed.modality
    if decoded is not None:
        thumb = decoded.thumbnail
        analysis.derived.append(DerivedArtifact("thumbnail", 0, "image/jpeg", thumb.jpeg, thumb.width, thumb.height))
        analysis.images.append((None, decoded.model_input))
    elif modality == "video":
        for frame in extract_keyframes(data, max_frames=MAX_KEYFRAMES):
            analysis.derived.append(
                DerivedArtifact(
                    "keyframe", frame.ordinal, "image/jpeg", frame.jpeg, frame.width, frame.height, frame.timestamp_s
                )
            )
            analysis.images.append((frame.ordinal, frame.rgb))
        if analysis.derived:
            first = analysis.derived[0]
            analysis.derived.append(
                DerivedArtifact("thumbnail", 0, "image/jpeg", first.data, first.width, first.height, first.timestamp_s)
            )
    elif modality in ("document", "text"):
        text = probed.fields.get("text")
        if isinstance(text, str) and text.strip():
            for chunk in chunk_text(text):
                analysis.derived.append(DerivedArtifact("text_chunk", chunk.ordinal, "text/plain", text=chunk.text))
                analysis.texts.append((chunk.ordinal, chunk.text))
    return analysis
