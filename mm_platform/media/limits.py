"""In-process limits for decoding untrusted media: the pixel budget and Pillow's strictness.

Decoders are native code fed hostile bytes. The pixel limit stops decompression bombs before any pixel
is allocated. (The per-file time limit needs a separate process: :mod:`mm_platform.media.pool`.)
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from PIL import Image, ImageFile

from mm_platform.errors import ConfigError
from mm_platform.media.budget import DEFAULT_TIMEOUT_S, MAX_IMAGE_PIXELS, MAX_TEXT_CHARS
from mm_platform.media.quarantine import MediaRejected, QuarantineReason

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "MAX_IMAGE_PIXELS",
    "MAX_TEXT_CHARS",
    "check_image_pixels",
    "pillow_guard",
    "require_strict_pillow",
]


def check_image_pixels(width: int, height: int, what: str = "the image") -> None:
    """Reject an image whose declared size exceeds the pixel budget, before it is decoded."""
    pixels = width * height
    if pixels > MAX_IMAGE_PIXELS:
        raise MediaRejected(
            QuarantineReason.DECOMPRESSION_BOMB,
            f"decompression bomb: {what} declares {width}x{height} = {pixels:,} pixels, "
            f"exceeding the limit of {MAX_IMAGE_PIXELS:,}",
        )


def require_strict_pillow() -> None:
    """Fail loudly (not per file) if this process relaxed Pillow: truncated images would pass as valid."""
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise ConfigError(
            "PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True in this process",
            hint="leave it False; mm_platform.media must see truncated images as truncated",
        )


@contextmanager
def pillow_guard() -> Iterator[None]:
    """Run Pillow strictly: bomb warnings become errors, EXIF-parsing chatter is silenced."""
    require_strict_pillow()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Corrupt EXIF data", "Tag data larger than file"
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield
