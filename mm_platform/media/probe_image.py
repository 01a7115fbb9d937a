"""Image metadata with Pillow: dimensions, mode, frames, readable EXIF, orientation, camera, time, GPS.

The image is fully decoded (first frame) so truncated and corrupt files fail here, not later in a
thumbnailer. EXIF is read tag by tag and IFD by IFD: a broken EXIF block loses those tags, never the image.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any

from PIL import ExifTags, Image, UnidentifiedImageError

from mm_platform.media.blob import Buffer, as_stream
from mm_platform.media.limits import check_image_pixels, pillow_guard
from mm_platform.media.quarantine import MediaRejected, QuarantineReason
from mm_platform.media.sniff import ContentType

__all__ = ["frame_count", "open_image", "probe_image", "read_exif", "truncated_error"]

# Sniffed format -> Pillow plugin name; formats found by asking Pillow are already plugin names.
_PILLOW_FORMAT = {"jpeg": "JPEG", "pnm": "PPM", "jpeg2000": "JPEG2000", "heif": "HEIF"}
_MAX_TAG_CHARS = 256
_EXIF_POINTERS = {0x8769, 0x8825, 0xA005}  # Exif/GPS/Interop sub-IFD offsets, not values
_OFFSET = re.compile(r"^[+-]\d{2}:\d{2}$")


def open_image(data: Buffer, content_type: ContentType) -> Image.Image:
    """Open (not decode) ``data`` with the one Pillow plugin its content names, within the pixel budget.

    Call inside ``pillow_guard()``; the returned image reads from an in-memory buffer.
    """
    plugin = _PILLOW_FORMAT.get(content_type.format, content_type.format.upper())
    Image.init()
    formats = None if content_type.format in ("", "unknown") else [plugin]
    if formats and plugin not in Image.OPEN:
        raise MediaRejected(
            QuarantineReason.UNSUPPORTED, f"this Pillow build has no decoder for {content_type.mime_type}"
        )
    try:
        im = Image.open(as_stream(data), formats=formats)
    except UnidentifiedImageError:
        raise MediaRejected(QuarantineReason.CORRUPT, _why_unidentified(data, plugin)) from None
    check_image_pixels(im.width, im.height, f"the {im.format} image")
    return im


def probe_image(data: Buffer, name: str, content_type: ContentType) -> dict[str, object]:
    """Metadata fields for an image; raises ``MediaRejected`` or a Pillow error for bad files."""
    with pillow_guard():
        im = open_image(data, content_type)
        frames = frame_count(im)
        im.seek(0)
        try:
            im.load()
        except OSError as exc:
            if "truncated" not in str(exc).lower():
                raise
            raise truncated_error(str(im.format), im.size, len(data), exc, name) from None
        fields: dict[str, object] = {
            "format": im.format or content_type.format.upper(),
            "width": im.width,
            "height": im.height,
            "mode": im.mode,
            "frame_count": frames,
        }
        fields.update(read_exif(im))
    return fields


def read_exif(im: Image.Image) -> dict[str, Any]:
    """Readable EXIF as ``exif`` (tag name -> text) plus orientation, camera, capture time and GPS."""
    out: dict[str, Any] = {
        "exif": {},
        "orientation": None,
        "camera_make": None,
        "camera_model": None,
        "captured_at": None,
        "gps_lat": None,
        "gps_lon": None,
    }
    try:
        exif = im.getexif()
    except Exception:  # a block Pillow cannot even index: nothing readable, image still fine
        return out
    tags: dict[str, str] = {}
    gps: dict[int, Any] = {}
    ifds = (
        (None, ExifTags.TAGS),
        (ExifTags.IFD.Exif, ExifTags.TAGS),
        (ExifTags.IFD.GPSInfo, ExifTags.GPSTAGS),
    )
    for ifd_id, names in ifds:
        try:
            ifd = exif if ifd_id is None else exif.get_ifd(ifd_id)
            entries = list(ifd.items())
        except Exception:  # this sub-IFD is broken; the others may not be
            continue
        if ifd_id is ExifTags.IFD.GPSInfo:
            gps = dict(entries)
        for tag, value in entries:
            text = _readable(value)
            if tag in names and tag not in _EXIF_POINTERS and text is not None:
                tags.setdefault(names[tag], text)
    orientation = exif.get(0x0112)
    out["exif"] = tags
    out["orientation"] = orientation if isinstance(orientation, int) and 1 <= orientation <= 8 else None
    out["camera_make"] = tags.get("Make")
    out["camera_model"] = tags.get("Model")
    out["captured_at"] = _captured_at(tags)
    out["gps_lat"] = _degrees(gps.get(2), gps.get(1), limit=90.0, negative="S")
    out["gps_lon"] = _degrees(gps.get(4), gps.get(3), limit=180.0, negative="W")
    return out


def truncated_error(fmt: str, size: tuple[int, int], n_bytes: int, exc: OSError, name: str) -> MediaRejected:
    """The rejection of an image whose bytes end before its last row."""
    return MediaRejected(
        QuarantineReason.TRUNCATED,
        f"{fmt} {size[0]}x{size[1]} image is truncated: its {n_bytes:,} bytes end before "
        f"the last row is decoded ({exc})",
        name=name,
    )


def frame_count(im: Image.Image) -> int:
    try:
        return int(getattr(im, "n_frames", 1))
    except Exception:  # a broken next-frame pointer (seen in TIFFs): the first frame is what is readable
        return 1


def _readable(value: object) -> str | None:
    """Text for a tag value a person can read; None for blobs (MakerNote, thumbnails) and junk."""
    if isinstance(value, bytes):
        if len(value) > _MAX_TAG_CHARS:
            return None
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            return None
    if isinstance(value, str):
        text = value.replace("\x00", " ").strip()
        return text[:_MAX_TAG_CHARS] if text and text.isprintable() else None
    if isinstance(value, tuple):
        parts = [_readable(v) for v in value[:16]]
        return ", ".join(p for p in parts if p is not None) or None
    number = _number(value)
    if number is None:
        return None
    return str(int(number)) if isinstance(value, int) else f"{number:g}"


def _number(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]  # IFDRational, int, float
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return number if math.isfinite(number) else None


def _captured_at(tags: dict[str, str]) -> str | None:
    for key, offset_key in (("DateTimeOriginal", "OffsetTimeOriginal"), ("DateTime", "OffsetTime")):
        raw = tags.get(key)
        if raw is None:
            continue
        try:
            stamp = datetime.strptime(raw[:19], "%Y:%m:%d %H:%M:%S").isoformat()
        except ValueError:
            continue
        offset = tags.get(offset_key, "")
        return stamp + offset if _OFFSET.match(offset) else stamp
    return None


def _degrees(value: object, ref: object, *, limit: float, negative: str) -> float | None:
    """EXIF degrees/minutes/seconds + hemisphere ref -> signed decimal degrees; None if unusable."""
    parts = value if isinstance(value, tuple) else (value,)
    numbers = [_number(p) for p in parts[:3]]
    if not numbers or any(n is None for n in numbers):
        return None
    if isinstance(ref, bytes):
        ref = ref.decode("ascii", "replace")
    if not isinstance(ref, str) or ref.strip("\x00 ").upper() not in ("N", "S", "E", "W"):
        return None  # without a hemisphere the sign is unknown
    degrees = sum(n / 60**i for i, n in enumerate(numbers) if n is not None)
    if degrees > limit:
        return None
    return -degrees if ref.strip("\x00 ").upper() == negative else degrees


def _why_unidentified(data: Buffer, plugin: str) -> str:
    """Ask the plugin itself why it refused, since Image.open only says 'cannot identify'."""
    factory_accept = Image.OPEN.get(plugin)
    reason = "unrecognised header"
    if factory_accept is not None:
        try:
            factory_accept[0](as_stream(data), "")
        except Exception as exc:  # the plugin's own complaint is the useful detail
            reason = f"{type(exc).__name__}: {exc}"
    return f"the data starts with a {plugin} signature but its header is invalid ({reason})"
