"""Why a file was quarantined: stable reason codes and the mapping from library errors to them.

Pillow, PyAV and pypdf each fail in their own vocabulary (``OSError`` with a message, FFmpeg error
numbers, ``PdfReadError``). Downstream code — the quarantine table, dashboards, alerts — needs one
small, stable set of codes plus a detail that names what is wrong in this particular file.
"""

from __future__ import annotations

import mimetypes
import re
import struct
import sys
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from PIL import Image, UnidentifiedImageError

from mm_platform.errors import MMPlatformError
from mm_platform.media.budget import MAX_IMAGE_PIXELS

if TYPE_CHECKING:
    from mm_platform.media.sniff import ContentType

__all__ = ["MediaRejected", "QuarantineReason", "classify_exception", "media_extension_kind"]


class QuarantineReason(StrEnum):
    """Stable reason codes; their string values are stored in the ``quarantine`` table."""

    EMPTY = "empty"
    TRUNCATED = "truncated"
    CORRUPT = "corrupt"
    DECOMPRESSION_BOMB = "decompression_bomb"
    UNSUPPORTED = "unsupported"
    UNDECODABLE = "undecodable"
    TEXT_UNDER_MEDIA_EXTENSION = "text_under_media_extension"
    TIMEOUT = "timeout"
    UNREADABLE = "unreadable"
    INVALID = "invalid"

    @property
    def explanation(self) -> str:
        """One line for a human reading the quarantine table."""
        return _EXPLANATIONS[self]


_EXPLANATIONS = {
    QuarantineReason.EMPTY: "the object has zero bytes",
    QuarantineReason.TRUNCATED: "the data ends before the image, stream or container is complete",
    QuarantineReason.CORRUPT: "the format is recognised but its data is invalid and cannot be decoded",
    QuarantineReason.DECOMPRESSION_BOMB: "decoding would need far more memory than the file's size "
    "justifies (pixel or decompressed-size limit exceeded)",
    QuarantineReason.UNSUPPORTED: "the content is not a format this platform registers",
    QuarantineReason.UNDECODABLE: "the container opens but holds nothing decodable (no audio or video "
    "stream, no codec)",
    QuarantineReason.TEXT_UNDER_MEDIA_EXTENSION: "the name says image/video/audio but the bytes are "
    "plain text (a mislabelled or placeholder upload)",
    QuarantineReason.TIMEOUT: "probing took longer than the per-file time limit and was abandoned",
    QuarantineReason.UNREADABLE: "the bytes could not be read, or the decoder process died on them",
    QuarantineReason.INVALID: "a row derived from the object broke a validation rule (the detail names the "
    "check, column and value); the rest of its batch was published",
}


class MediaRejected(MMPlatformError):
    """A file cannot be registered; it belongs in quarantine with ``reason`` and ``detail``."""

    def __init__(self, reason: QuarantineReason | str, detail: str, *, name: str = "", stage: str = "probe"):
        self.reason = QuarantineReason(reason)
        self.detail = detail
        self.name = name
        self.stage = stage
        # A slow file may be fast on a less loaded worker; every other reason is a property of the bytes.
        self.retryable = self.reason is QuarantineReason.TIMEOUT
        where = f"{name}: " if name else ""
        super().__init__(f"{where}{self.reason.value}: {detail}", hint=self.reason.explanation)

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only arguments do not survive the default exception pickling (process pools).
        return (_rebuild, (self.reason.value, self.detail, self.name, self.stage))


def _rebuild(reason: str, detail: str, name: str, stage: str) -> MediaRejected:
    return MediaRejected(reason, detail, name=name, stage=stage)


# Extensions that mimetypes may not know, so the explanation below still fires for them.
_MEDIA_EXTENSIONS = {".oga": "audio", ".opus": "audio", ".mkv": "video", ".webm": "video", ".flac": "audio"}


def media_extension_kind(name: str) -> str | None:
    """``"image"``/``"video"``/``"audio"`` if the name's extension claims media, else None.

    The one place a name is consulted: to explain a mismatch (text named ``.jpg``), never to decide a type.
    """
    suffix = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if not suffix:
        return None
    if f".{suffix}" in _MEDIA_EXTENSIONS:
        return _MEDIA_EXTENSIONS[f".{suffix}"]
    guessed, _ = mimetypes.guess_type(f"x.{suffix}", strict=False)
    major = guessed.split("/", 1)[0] if guessed else None
    return major if major in ("image", "video", "audio") else None


_BOMB_PIXELS = re.compile(r"\((\d+) pixels\)")


def classify_exception(exc: BaseException, content_type: ContentType | None) -> tuple[QuarantineReason, str]:
    """Map a Pillow / PyAV / pypdf (or worker) failure to a reason code and a specific detail."""
    what = _what(content_type)
    message = str(exc).strip() or type(exc).__name__
    if isinstance(exc, MediaRejected):
        return exc.reason, exc.detail
    if isinstance(exc, Image.DecompressionBombError | Image.DecompressionBombWarning):
        found = _BOMB_PIXELS.search(message)
        pixels = f"{int(found.group(1)):,} pixels" if found else "the declared size"
        return QuarantineReason.DECOMPRESSION_BOMB, (
            f"decompression bomb: {what} declares {pixels}, exceeding the limit of {MAX_IMAGE_PIXELS:,}"
        )
    if isinstance(exc, ValueError) and "Decompressed data too large" in message:
        return QuarantineReason.DECOMPRESSION_BOMB, (
            f"decompression bomb: a compressed metadata chunk in {what} inflates beyond Pillow's safety "
            f"limit ({message})"
        )
    if isinstance(exc, MemoryError):
        return QuarantineReason.DECOMPRESSION_BOMB, f"decoding {what} ran out of memory"
    if isinstance(exc, TimeoutError):
        return QuarantineReason.TIMEOUT, f"probing {what} timed out"
    # PyAV's and pypdf's errors are checked only where those libraries are loaded: an exception cannot be
    # theirs otherwise, and importing them here would cost every `mmp` command ~0.15 s.
    av_error: Any = sys.modules.get("av.error")
    pdf_errors: Any = sys.modules.get("pypdf.errors")
    if pdf_errors is not None and isinstance(exc, pdf_errors.EmptyFileError):
        return QuarantineReason.EMPTY, "the PDF has zero bytes"
    if isinstance(exc, EOFError):  # FFmpeg's AVERROR_EOF (av.error.EOFError) included
        return QuarantineReason.TRUNCATED, f"{what} ends unexpectedly ({message})"
    if av_error is not None and isinstance(exc, av_error.DecoderNotFoundError):
        return QuarantineReason.UNDECODABLE, f"no decoder for the {what} stream's codec ({message})"
    if av_error is not None and isinstance(exc, av_error.PatchWelcomeError):
        return QuarantineReason.UNSUPPORTED, f"{what} uses a feature FFmpeg does not implement ({message})"
    if av_error is not None and isinstance(exc, av_error.FFmpegError):
        return QuarantineReason.CORRUPT, f"FFmpeg cannot parse the {what} data ({message})"
    if isinstance(exc, UnidentifiedImageError):
        return QuarantineReason.CORRUPT, f"the file starts like {what} but Pillow cannot parse its header"
    if pdf_errors is not None and isinstance(exc, pdf_errors.PdfStreamError | pdf_errors.PdfReadError):
        if "EOF marker" in message or "startxref" in message:
            return QuarantineReason.TRUNCATED, f"the PDF has no end-of-file trailer ({message})"
        return QuarantineReason.CORRUPT, f"pypdf cannot parse the PDF ({message})"
    if isinstance(exc, UnicodeDecodeError):
        return (
            QuarantineReason.UNDECODABLE,
            f"the text is not valid {exc.encoding} ({exc.reason} at byte {exc.start})",
        )
    if isinstance(exc, OSError) and "truncated" in message.lower():
        return (
            QuarantineReason.TRUNCATED,
            f"{what} is truncated: the data ends before the image is complete ({message})",
        )
    if isinstance(exc, OSError | SyntaxError | ValueError | TypeError | KeyError | IndexError | struct.error):
        return QuarantineReason.CORRUPT, f"{what} data is invalid: {message}"
    return QuarantineReason.CORRUPT, f"{what} could not be decoded: {type(exc).__name__}: {message}"


def _what(content_type: ContentType | None) -> str:
    if content_type is None or not content_type.format:
        return "the file"
    return f"the {content_type.format.upper()} {content_type.modality}"
