"""Media probing, derived data and quarantine classification — plain Python, no Dagster.

``sniff`` says what bytes are (by content), ``probe`` reads their metadata or raises ``MediaRejected``
with a stable ``QuarantineReason``; ``probe_with_limit`` / ``ProbePool`` bound the time per file;
``make_thumbnail``, ``extract_keyframes`` and ``chunk_text`` produce derived data.
"""

from mm_platform.media.budget import DEFAULT_TIMEOUT_S, MAX_IMAGE_PIXELS
from mm_platform.media.derive import (
    Keyframe,
    TextChunk,
    Thumbnail,
    chunk_text,
    extract_keyframes,
    make_thumbnail,
)
from mm_platform.media.pool import QUEUED_PER_WORKER, ProbePool, probe_with_limit
from mm_platform.media.probe import Probed, probe
from mm_platform.media.quarantine import (
    MediaRejected,
    QuarantineReason,
    classify_exception,
    media_extension_kind,
)
from mm_platform.media.sniff import ContentType, Modality, sniff

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "MAX_IMAGE_PIXELS",
    "ContentType",
    "Keyframe",
    "MediaRejected",
    "Modality",
    "QUEUED_PER_WORKER",
    "ProbePool",
    "Probed",
    "QuarantineReason",
    "TextChunk",
    "Thumbnail",
    "chunk_text",
    "classify_exception",
    "extract_keyframes",
    "make_thumbnail",
    "media_extension_kind",
    "probe",
    "probe_with_limit",
    "sniff",
]
