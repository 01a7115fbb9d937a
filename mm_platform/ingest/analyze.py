"""What a probe worker does with one object's bytes: metadata, derived artifacts and embedding inputs.

Runs inside ``ProbePool`` worker processes (decoding is the expensive, crash-prone part), so the main
process only embeds — decode overlaps compute. Everything returned must pickle.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from PIL import Image, ImageOps

import mm_platform.media.probe_av
import mm_platform.media.probe_document  # noqa: F401 - with probe_av: loaded with the workers (forkserver preload)
from mm_platform.media import Probed, chunk_text, extract_keyframes
from mm_platform.media.blob import Buffer, as_stream
from mm_platform.media.probe import probe_decoded

ANALYZE_VERSION = "1"
"""Bump when metadata extraction or derivation changes: rows from older versions become stale."""
EMBED_INPUT_SIDE = 256
"""Embedding inputs keep a short side of this many pixels (models crop 224 from it)."""
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


def embedding_input(data: Buffer) -> Image.Image:
    """The model input the pipeline makes from these image bytes (for queries: a stored image finds itself)."""
    im = Image.open(as_stream(data))
    if im.format == "JPEG":
        im.draft("RGB", (EMBED_INPUT_SIDE, EMBED_INPUT_SIDE))  # the pipeline's draft scale (THUMBNAIL_SIDE too)
    return _embed_input(ImageOps.exif_transpose(im))


def _embed_input(upright: Image.Image) -> Image.Image:
    """The model's input from the one decoded picture: RGB on white, short side at most EMBED_INPUT_SIDE."""
    if upright.mode != "RGB":
        background = Image.new("RGB", upright.size, (255, 255, 255))
        rgba = upright.convert("RGBA")
        background.paste(rgba, mask=rgba.getchannel("A"))
        upright = background
    scale = EMBED_INPUT_SIDE / min(upright.size)
    if scale < 1:
        size = (max(1, round(upright.width * scale)), max(1, round(upright.height * scale)))
        upright = upright.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    return upright


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
        analysis.images.append((None, _embed_input(decoded.upright)))
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
