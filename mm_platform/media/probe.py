"""Probe dispatch: sniff, route to the modality's prober, translate every failure into a reason code.

``probe`` either returns ``Probed`` or raises ``MediaRejected`` — never a Pillow, PyAV or pypdf error —
so a caller needs one ``except`` to send a file to quarantine. It runs in the caller's process; use
``probe_with_limit`` / ``ProbePool`` (limits.py) to bound its time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from mm_platform.media.blob import Buffer, head
from mm_platform.media.decode_image import DecodedImage, decode_image
from mm_platform.media.limits import require_strict_pillow
from mm_platform.media.probe_image import probe_image
from mm_platform.media.quarantine import (
    MediaRejected,
    QuarantineReason,
    classify_exception,
    media_extension_kind,
)
from mm_platform.media.sniff import ContentType, sniff

__all__ = ["DECODER_MODULES", "Probed", "probe", "probe_decoded"]

DECODER_MODULES = ("mm_platform.media.probe", "mm_platform.media.probe_av", "mm_platform.media.probe_document")
"""What a probe worker should import before its first file (the forkserver preloads them)."""

T = TypeVar("T")


@dataclass(frozen=True)
class Probed:
    """A file that can be registered, with the metadata read from it."""

    content_type: ContentType
    """What the file is; for audio/video the modality follows its streams (an audio-only MP4 is audio)."""
    fields: dict[str, object]
    """Metadata columns (snake_case, stable types per modality); see the probe_* modules."""

    @property
    def modality(self) -> str:
        return self.content_type.modality


def probe(data: Buffer, name: str = "", content_type: ContentType | None = None) -> Probed:
    """Read ``data``'s metadata, decoding enough to prove it is usable. ``name`` only labels messages.

    Raises ``MediaRejected`` with a ``QuarantineReason`` for anything that cannot be registered.
    """
    ct = _content_type(data, name, content_type)
    return _translated(name, ct, lambda: _dispatch(data, name, ct))


def probe_decoded(
    data: Buffer,
    name: str = "",
    content_type: ContentType | None = None,
    *,
    thumb_side: int = 256,
    draft_side: int = 256,
) -> tuple[Probed, DecodedImage | None]:
    """As ``probe``; for an image, also the thumbnail and upright picture from the same, single decode.

    The rejections are the same as ``probe``'s for the same bytes: the one decode is also the validity check.
    """
    ct = _content_type(data, name, content_type)
    if ct.modality != "image":
        return _translated(name, ct, lambda: _dispatch(data, name, ct)), None
    decoded = _translated(name, ct, lambda: decode_image(data, name, ct, thumb_side=thumb_side, draft_side=draft_side))
    return Probed(ct, decoded.fields), decoded


def _content_type(data: Buffer, name: str, content_type: ContentType | None) -> ContentType:
    if not data:
        raise MediaRejected(QuarantineReason.EMPTY, "the object has zero bytes", name=name, stage="sniff")
    require_strict_pillow()  # a process-wide misconfiguration, not a property of this file
    return content_type or sniff(head(data), name)


def _translated(name: str, ct: ContentType, step: Callable[[], T]) -> T:
    """Run ``step``; every failure leaves as ``MediaRejected`` naming the file."""
    try:
        return step()
    except MediaRejected as exc:
        if not exc.name:
            raise MediaRejected(exc.reason, exc.detail, name=name, stage=exc.stage) from exc
        raise
    except Exception as exc:  # any library failure is a property of these bytes: classify it
        reason, detail = classify_exception(exc, ct)
        raise MediaRejected(reason, detail, name=name) from exc


def _dispatch(data: Buffer, name: str, ct: ContentType) -> Probed:
    # PyAV and pypdf load with the first file that needs them (probe workers preload them: DECODER_MODULES).
    from mm_platform.media.probe_av import probe_av
    from mm_platform.media.probe_document import probe_pdf, probe_text

    if ct.modality == "image":
        return Probed(ct, probe_image(data, name, ct))
    if ct.modality in ("video", "audio"):
        modality, fields = probe_av(data, name, ct)
        if modality != ct.modality:  # e.g. an .mp4 with only an audio track
            ct = dataclasses.replace(ct, modality=modality, mime_type=f"{modality}/{ct.mime_type.split('/', 1)[1]}")
        return Probed(ct, fields)
    if ct.modality == "document":
        return Probed(ct, probe_pdf(data, name))
    if ct.modality == "text":
        claimed = media_extension_kind(name)
        if claimed is not None:
            # The extension explains the rejection; it did not decide the type (the bytes are text).
            raise MediaRejected(
                QuarantineReason.TEXT_UNDER_MEDIA_EXTENSION,
                f"the name claims {claimed} but the {len(data):,} bytes are plain UTF-8 text "
                f"(starts {data[:40].decode('utf-8', 'replace')!r})",
                stage="sniff",
            )
        return Probed(ct, probe_text(data, name))
    raise MediaRejected(
        QuarantineReason.UNSUPPORTED,
        f"content not recognised as any supported image, video, audio, PDF or text format "
        f"(first bytes {data[:8].hex(' ')})",
        stage="sniff",
    )
