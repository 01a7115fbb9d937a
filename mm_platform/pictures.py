"""How a decoded picture is made ready: for a thumbnail, and for a model.

The one place for image preparation, used by ingest (``media.derive``, ``ingest.analyze``), the embedders
and search (an image query is prepared exactly as the pipeline prepares a stored image, so it finds itself).
Two colour rules, identical for every mode a decoder yields (RGB, RGBA, L, LA, P, 1, CMYK, YCbCr) and for
all of the shared test media, and different only on high bit depths:

* :func:`to_rgb` (thumbnails, keyframes) *scales* 16/32-bit greyscale to 8 bits, so a 16-bit PNG's
  preview shows its picture;
* :func:`rgb_for_model` (model inputs) takes Pillow's own conversion, which clips such values. The stored
  vectors of those images were made this way, so changing it would need a new embedding revision.

Both composite alpha on white. :func:`model_input` is what the pipeline embeds (the model rule, then the
short side cut to :data:`EMBED_INPUT_SIDE`).

A leaf module (Pillow and numpy only): search and the embedders use it without loading the decoders.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps

__all__ = ["EMBED_INPUT_SIDE", "embedding_input", "model_input", "model_input_from", "rgb_for_model", "to_rgb"]

EMBED_INPUT_SIDE = 256
"""Embedding inputs keep a short side of this many pixels (models crop 224 from it)."""

_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}
_HIGH_DEPTH_MODES = {"I", "I;16", "I;16L", "I;16B", "I;16N", "F"}


def to_rgb(im: Image.Image) -> Image.Image:
    """Any Pillow mode as 8-bit RGB: palettes expanded, alpha composited on white, 16/32-bit scaled."""
    if im.mode in _HIGH_DEPTH_MODES:
        values = np.asarray(im, dtype=np.float64)
        low, high = (
            (0.0, 65535.0 if values.max(initial=0) > 255 else 255.0)
            if im.mode != "F"
            else (float(values.min(initial=0)), float(values.max(initial=1)))
        )
        scaled = np.clip((values - low) / max(high - low, 1e-12) * 255.0, 0, 255).astype(np.uint8)
        im = Image.fromarray(scaled, mode="L")
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in _ALPHA_MODES:
        rgba = im.convert("RGBA")
        white = Image.new("RGB", rgba.size, (255, 255, 255))
        white.paste(rgba, mask=rgba.getchannel("A"))
        return white
    return im if im.mode == "RGB" else im.convert("RGB")


def model_input(upright: Image.Image) -> Image.Image:
    """The model's input from the one decoded picture: RGB on white, short side at most EMBED_INPUT_SIDE."""
    upright = rgb_for_model(upright)
    scale = EMBED_INPUT_SIDE / min(upright.size)
    if scale < 1:
        size = (max(1, round(upright.width * scale)), max(1, round(upright.height * scale)))
        upright = upright.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    return upright


# Modes whose two colour rules give the same pixels (checked in tests/test_decode_once.py): for them the model's
# input can start from the thumbnail's RGB picture, so a large RGBA picture is composited on white once.
_RULES_AGREE = {"RGB", "RGBA", "L", "LA", "P", "1"}


def model_input_from(upright: Image.Image, rgb: Image.Image) -> Image.Image:
    """``model_input(upright)``, given ``rgb = to_rgb(upright)`` made already (for the thumbnail): where both
    rules agree it starts from ``rgb`` and skips a second composite (~130 ms on a 5120×2880 RGBA PNG)."""
    return model_input(rgb if upright.mode in _RULES_AGREE else upright)


def embedding_input(data: bytes) -> Image.Image:
    """The model input the pipeline makes from these image bytes (for queries: a stored image finds itself)."""
    im = Image.open(io.BytesIO(data))
    if im.format == "JPEG":
        im.draft("RGB", (EMBED_INPUT_SIDE, EMBED_INPUT_SIDE))  # the pipeline's draft scale (its thumbnails' too)
    return model_input(ImageOps.exif_transpose(im))


def rgb_for_model(image: Image.Image) -> Image.Image:
    """RGB for a model: other modes go through RGBA and are composited onto white (transparent is not black)."""
    if image.mode == "RGB":
        return image
    background = Image.new("RGB", image.size, (255, 255, 255))
    rgba = image.convert("RGBA")
    background.paste(rgba, mask=rgba.getchannel("A"))
    return background
