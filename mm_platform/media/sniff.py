"""Content sniffing: decide what a file is from its bytes, never from its name.

Extensions lie (a JPEG saved as ``.png``, text saved as ``.jpg``); magic numbers rarely do. Formats
without a magic number (TGA and a few others) are identified by asking Pillow, and text is recognised
as valid, printable UTF-8.
"""

from __future__ import annotations

import codecs
import io
import re
import warnings
from dataclasses import dataclass
from typing import Literal

from PIL import Image, UnidentifiedImageError

Modality = Literal["image", "video", "audio", "document", "text", "unknown"]

__all__ = ["UNKNOWN", "ContentType", "Modality", "sniff"]


@dataclass(frozen=True)
class ContentType:
    """What a blob of bytes is, as decided by its content."""

    mime_type: str
    """IANA media type, e.g. ``image/jpeg``; ``application/octet-stream`` when unknown."""
    modality: Modality
    """Which prober handles it; audio vs video inside one container may be refined by the probe."""
    format: str
    """Short lowercase format name (``jpeg``, ``mp4``, ``wav``); for containers it matches FFmpeg's
    demuxer names so it can be compared with PyAV's ``container.format.name``."""


UNKNOWN = ContentType("application/octet-stream", "unknown", "")
TEXT = ContentType("text/plain", "text", "text")

# How much of a file the text check reads: enough to judge, cheap on huge files.
_TEXT_SNIFF_BYTES = 64 * 1024
# Share of control characters tolerated in "text" (form feeds, stray escapes in logs).
_MAX_CONTROL_RATIO = 0.02

# Formats Pillow can identify that we must not call images: video, stubs without a decoder, EPS
# (needs Ghostscript) and IPTC blocks.
_PILLOW_FALLBACK_EXCLUDED = frozenset({"MPEG", "EPS", "IPTC", "BUFR", "GRIB", "HDF5", "WMF"})

# (prefix, content type), checked in order; all are fixed-offset magic numbers.
_PREFIXES: tuple[tuple[bytes, ContentType], ...] = (
    (b"\xff\xd8\xff", ContentType("image/jpeg", "image", "jpeg")),
    (b"\x89PNG\r\n\x1a\n", ContentType("image/png", "image", "png")),
    (b"GIF87a", ContentType("image/gif", "image", "gif")),
    (b"GIF89a", ContentType("image/gif", "image", "gif")),
    (b"II*\x00", ContentType("image/tiff", "image", "tiff")),
    (b"MM\x00*", ContentType("image/tiff", "image", "tiff")),
    (b"II+\x00", ContentType("image/tiff", "image", "tiff")),  # BigTIFF
    (b"MM\x00+", ContentType("image/tiff", "image", "tiff")),
    (b"/* XPM */", ContentType("image/x-xpixmap", "image", "xpm")),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", ContentType("image/jp2", "image", "jpeg2000")),
    (b"\xff\x4f\xff\x51", ContentType("image/x-jp2-codestream", "image", "jpeg2000")),
    (b"fLaC", ContentType("audio/flac", "audio", "flac")),
    (b"ID3", ContentType("audio/mpeg", "audio", "mp3")),
    (b"%PDF-", ContentType("application/pdf", "document", "pdf")),
    (b"\x00\x00\x01\xba", ContentType("video/mpeg", "video", "mpeg")),
    (b"\x00\x00\x01\xb3", ContentType("video/mpeg", "video", "mpeg")),
)

_RIFF = {
    b"WAVE": ContentType("audio/wav", "audio", "wav"),
    b"AVI ": ContentType("video/x-msvideo", "video", "avi"),
    b"WEBP": ContentType("image/webp", "image", "webp"),
}

# ISO base media (ftyp) major brands that are not plain video.
_AUDIO_BRANDS = {b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B "}
_IMAGE_BRANDS = {
    b"avif": ContentType("image/avif", "image", "avif"),
    b"avis": ContentType("image/avif", "image", "avif"),
    b"heic": ContentType("image/heic", "image", "heif"),
    b"heix": ContentType("image/heic", "image", "heif"),
    b"mif1": ContentType("image/heif", "image", "heif"),
    b"msf1": ContentType("image/heif", "image", "heif"),
}

_PNM = re.compile(rb"P[1-7][\s#]")


def sniff(data: bytes, name: str = "") -> ContentType:
    """Identify ``data`` by its content; ``name`` is accepted for symmetry with the probes and is
    deliberately ignored."""
    del name  # the extension must never decide the type
    if not data:
        return UNKNOWN
    for prefix, content_type in _PREFIXES:
        if data.startswith(prefix):
            return content_type
    found = (
        _sniff_riff(data)
        or _sniff_iso_bmff(data)
        or _sniff_ogg(data)
        or _sniff_matroska(data)
        or _sniff_small_magic(data)
        or _sniff_mpeg_audio(data)
    )
    if found is not None:
        return found
    if looks_like_text(data):
        return TEXT
    return _ask_pillow(data) or UNKNOWN


def looks_like_text(data: bytes) -> bool:
    """Valid UTF-8 (a BOM is allowed), no NUL bytes, and almost no control characters."""
    head = data[:_TEXT_SNIFF_BYTES]
    if not head or b"\x00" in head:
        return False
    try:
        # Incremental so a multi-byte character cut by the sniff window is not an error.
        text = codecs.getincrementaldecoder("utf-8-sig")().decode(head, final=len(data) <= len(head))
    except UnicodeDecodeError:
        return False
    if not text:
        return False
    controls = sum(1 for ch in text if ch < " " and ch not in "\t\n\r\f\v" or ch == "\x7f")
    return controls / len(text) <= _MAX_CONTROL_RATIO


def _sniff_riff(data: bytes) -> ContentType | None:
    if data[:4] in (b"RIFF", b"RIFX") and len(data) >= 12:
        return _RIFF.get(data[8:12])
    return None


def _sniff_iso_bmff(data: bytes) -> ContentType | None:
    if data[4:8] != b"ftyp" or len(data) < 12:
        return None
    brand = data[8:12]
    compatible = {data[i : i + 4] for i in range(16, min(len(data), int.from_bytes(data[:4])), 4)}
    if brand in _IMAGE_BRANDS:
        return _IMAGE_BRANDS[brand]
    if brand in _AUDIO_BRANDS:
        return ContentType("audio/mp4", "audio", "m4a")
    if brand == b"qt  ":
        return ContentType("video/quicktime", "video", "mov")
    if brand.startswith(b"3g"):
        return ContentType("video/3gpp", "video", "3gp")
    if compatible & set(_IMAGE_BRANDS) and not compatible & {b"isom", b"mp41", b"mp42"}:
        return _IMAGE_BRANDS[next(iter(compatible & set(_IMAGE_BRANDS)))]
    # Video by default; the probe re-labels an audio-only file (streams decide, not brands).
    return ContentType("video/mp4", "video", "mp4")


def _sniff_ogg(data: bytes) -> ContentType | None:
    if not data.startswith(b"OggS"):
        return None
    # The first page carries the first codec header packet right after the segment table.
    if len(data) > 27:
        body = data[27 + data[26] : 27 + data[26] + 16]
        if body.startswith(b"\x80theora"):
            return ContentType("video/ogg", "video", "ogg")
        if body.startswith(b"OpusHead"):
            return ContentType("audio/ogg", "audio", "ogg")
    return ContentType("audio/ogg", "audio", "ogg")  # vorbis, flac-in-ogg, speex: .oga/.ogg audio


def _sniff_matroska(data: bytes) -> ContentType | None:
    if not data.startswith(b"\x1aE\xdf\xa3"):
        return None
    # The EBML header's DocType element (id 0x4282, one-byte size) tells WebM from Matroska.
    at = data.find(b"\x42\x82", 4, 64)
    if at > 0 and len(data) > at + 3 and data[at + 2] & 0x80:
        doctype = data[at + 3 : at + 3 + (data[at + 2] & 0x7F)]
        if doctype == b"webm":
            return ContentType("video/webm", "video", "webm")
    return ContentType("video/x-matroska", "video", "matroska")


def _sniff_small_magic(data: bytes) -> ContentType | None:
    if (
        data.startswith(b"BM")
        and len(data) >= 26
        and int.from_bytes(data[14:18], "little")
        in (
            12,
            40,
            52,
            56,
            64,
            108,
            124,
        )
    ):
        return ContentType("image/bmp", "image", "bmp")
    if _PNM.match(data[:3]):
        return ContentType("image/x-portable-anymap", "image", "pnm")
    if data[:2] == b"\x01\xda" and len(data) >= 4 and data[2] in (0, 1) and data[3] in (1, 2):
        return ContentType("image/sgi", "image", "sgi")
    if len(data) >= 376 and data[0] == data[188] == data[376] == 0x47:
        return ContentType("video/mp2t", "video", "mpegts")
    return None


def _sniff_mpeg_audio(data: bytes) -> ContentType | None:
    if len(data) < 4 or data[0] != 0xFF or data[1] & 0xE0 != 0xE0:
        return None
    if data[1] & 0x06 == 0:  # layer bits 00: ADTS (AAC) uses the same sync word
        return ContentType("audio/aac", "audio", "aac")
    version_ok = data[1] & 0x18 != 0x08  # 01 is reserved
    bitrate_ok = data[2] >> 4 != 0x0F
    rate_ok = data[2] & 0x0C != 0x0C
    if version_ok and bitrate_ok and rate_ok:
        return ContentType("audio/mpeg", "audio", "mp3")
    return None


def _ask_pillow(data: bytes) -> ContentType | None:
    """Identify magic-less raster formats (TGA, ICO, PCX…) by letting Pillow's plugins try."""
    Image.init()
    formats = [f for f in Image.ID if f not in _PILLOW_FALLBACK_EXCLUDED]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data), formats=formats) as im:
                fmt = im.format or "unknown"
    except Image.DecompressionBombError:
        # Identified, but too large even to open: still an image, and the probe will say why.
        return ContentType("application/octet-stream", "image", "unknown")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError):
        return None
    mime = Image.MIME.get(fmt, f"image/x-{fmt.lower()}")
    return ContentType(mime, "image", fmt.lower())
