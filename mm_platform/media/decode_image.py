"""One decode per image: metadata, the validity check, the thumbnail and the model's input from one load.

Probing used to decode every image in full (to prove it is not truncated), then the thumbnailer and the
embedding input decoded it twice more at reduced scale. Here the header is read first (format, size,
mode, frames, EXIF — the metadata is that of the original), then the pixels are decoded once, JPEGs at
the smallest DCT scale that still covers ``draft_side`` (libjpeg still reads every byte, so a cut file
is still caught as truncated), and everything derived from pixels is made from that one picture.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image, ImageOps

from mm_platform.media.blob import Buffer
from mm_platform.media.derive import Thumbnail, encode_jpeg, fit
from mm_platform.media.limits import pillow_guard
from mm_platform.media.probe_image import frame_count, open_image, read_exif, truncated_error
from mm_platform.media.quarantine import MediaRejected, classify_exception
from mm_platform.media.sniff import ContentType
from mm_platform.pictures import model_input_from, to_rgb

__all__ = ["DecodedImage", "decode_image"]


def im_size(fields: dict[str, object]) -> tuple[int, int]:
    width, height = fields["width"], fields["height"]
    assert isinstance(width, int) and isinstance(height, int)
    return width, height


@dataclass(frozen=True)
class DecodedImage:
    """What one decode of an image yields."""

    fields: dict[str, object]
    """Metadata columns, as ``probe_image`` gives them (dimensions of the original, not of the decode)."""
    thumbnail: Thumbnail
    """The upright RGB JPEG preview (the same bytes ``make_thumbnail`` makes)."""
    model_input: Image.Image
    """What models embed (:func:`~mm_platform.pictures.model_input` of the decoded first frame, EXIF
    orientation applied, decoded at reduced scale where the format allows it: short side >= ``draft_side``
    for a JPEG)."""


def decode_image(
    data: Buffer, name: str, content_type: ContentType, *, thumb_side: int = 256, draft_side: int = 256
) -> DecodedImage:
    """Probe ``data`` (an image) and derive from a single decode; raises ``MediaRejected`` or a Pillow error.

    Errors before the pixels are decoded are the probe's (reason from the bytes); a failure while making
    the thumbnail from decoded pixels is reported at stage ``derive``, as ``make_thumbnail`` does.
    """
    with pillow_guard():
        im = open_image(data, content_type)
        frames = frame_count(im)
        im.seek(0)
        fields: dict[str, object] = {
            "format": im.format or content_type.format.upper(),
            "width": im.width,
            "height": im.height,
            "mode": im.mode,
            "frame_count": frames,
        }
        if im.format == "JPEG":
            # Let libjpeg decode at 1/2..1/8 scale: a 24 MP photo is not decoded at full size for 256 px uses.
            im.draft("RGB", (draft_side, draft_side))
        try:
            im.load()
        except OSError as exc:
            if "truncated" not in str(exc).lower():
                raise
            raise truncated_error(str(fields["format"]), im_size(fields), len(data), exc, name) from None
        # After the decode, as probe_image does: reading a PNG's EXIF can load the image, and read_exif keeps
        # going past errors, so read first it would swallow a broken data stream.
        fields.update(read_exif(im))
        try:
            # In place: a copy of a 5120×2880 picture costs as much as resizing it, and nothing else holds it.
            ImageOps.exif_transpose(im, in_place=True)
            rgb = to_rgb(im)  # the thumbnail's colours, and (for every common mode) the model's too
            model = model_input_from(im, rgb)
            # fit() resizes in place: a copy only where the model input is that very picture (a small RGB one).
            picture = fit(rgb.copy() if model is rgb else rgb, thumb_side)
            thumbnail = Thumbnail(encode_jpeg(picture), picture.width, picture.height)
        except MediaRejected:
            raise
        except Exception as exc:
            reason, detail = classify_exception(exc, content_type)
            raise MediaRejected(reason, detail, stage="derive") from exc
    return DecodedImage(fields, thumbnail, model)
