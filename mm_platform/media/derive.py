"""Derived data: image thumbnails, video keyframes and text chunks.

One set of thumbnail rules serves images and keyframes: upright (EXIF orientation / display matrix
applied), 8-bit RGB (alpha composited on white), longest side at most ``max_side``, JPEG quality 85.
Embedders downstream then see the same kind of picture whatever the source format was.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field

from PIL import Image, ImageOps

from mm_platform.media.blob import Buffer, as_stream, head
from mm_platform.media.limits import pillow_guard, require_strict_pillow
from mm_platform.media.probe_image import open_image
from mm_platform.media.quarantine import MediaRejected, QuarantineReason, classify_exception
from mm_platform.media.sniff import ContentType, sniff
from mm_platform.pictures import to_rgb

__all__ = [
    "Keyframe",
    "TextChunk",
    "Thumbnail",
    "chunk_text",
    "extract_keyframes",
    "make_thumbnail",
]

JPEG_QUALITY = 85
# Where a chunk may end, best first: paragraph break, line break, sentence end, any whitespace.
_WHITESPACE = re.compile(r"\s")
_BOUNDARIES = (re.compile(r"\n\s*\n"), re.compile(r"\n"), re.compile(r"[.!?…。](?=\s)"), re.compile(r"\s"))


@dataclass(frozen=True)
class Thumbnail:
    """An upright RGB JPEG preview."""

    jpeg: bytes
    width: int
    height: int


@dataclass(frozen=True)
class Keyframe:
    """A decoded key (I-) frame of a video, thumbnailed by the same rules as images."""

    ordinal: int
    """Position among the returned keyframes, from 0."""
    timestamp_s: float
    """Presentation time of the frame in the video."""
    jpeg: bytes
    width: int
    height: int
    rgb: Image.Image = field(compare=False, repr=False)
    """The same picture as an RGB image, ready for an image embedder."""


@dataclass(frozen=True)
class TextChunk:
    """A slice ``text == source[start:end]`` of a longer text, for text embedding."""

    ordinal: int
    text: str
    start: int
    end: int


def make_thumbnail(data: Buffer, max_side: int = 256, content_type: ContentType | None = None) -> Thumbnail:
    """Thumbnail of an image (first frame if animated); raises ``MediaRejected`` for bad input."""
    require_strict_pillow()
    ct = content_type or sniff(head(data))
    if ct.modality != "image":
        raise MediaRejected(QuarantineReason.UNSUPPORTED, f"cannot thumbnail {ct.mime_type} as an image")
    try:
        with pillow_guard():
            im = open_image(data, ct)
            if im.format == "JPEG":
                # Let libjpeg decode at 1/2..1/8 scale: a 24 MP photo thumbnails without a full decode.
                im.draft("RGB", (max_side, max_side))
            upright = ImageOps.exif_transpose(im)  # also loads (first frame) and copies
            picture = fit(upright, max_side)
    except MediaRejected:
        raise
    except Exception as exc:
        reason, detail = classify_exception(exc, ct)
        raise MediaRejected(reason, detail, stage="derive") from exc
    return Thumbnail(encode_jpeg(picture), picture.width, picture.height)


def extract_keyframes(data: Buffer, max_frames: int = 8, max_side: int = 256) -> list[Keyframe]:
    """Up to ``max_frames`` key frames spread evenly over the video, each as a thumbnail."""
    import av  # here, not at import: commands that never see a video should not load FFmpeg

    try:
        with av.open(as_stream(data), mode="r") as container:
            stream = next(
                (s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic),
                None,
            )
            if stream is None:
                raise MediaRejected(QuarantineReason.UNDECODABLE, "no video stream to take keyframes from")
            # A demux pass reads packet headers only: cheap, and it tells where the keyframes are.
            keys = sorted({p.pts for p in container.demux(stream) if p.is_keyframe and p.size and p.pts is not None})
            stream.codec_context.skip_frame = "NONKEY"  # decode I-frames only
            frames: list[Keyframe] = []
            seen: set[int] = set()
            for pts in _spread(keys, max_frames):
                container.seek(pts, stream=stream, backward=True, any_frame=False)
                frame = next(iter(container.decode(stream)), None)
                if frame is None or frame.pts in seen:
                    continue
                seen.add(frame.pts if frame.pts is not None else -1)
                picture = frame.to_image()
                if frame.rotation and frame.rotation % 90 == 0:
                    # The display-matrix angle is counter-clockwise, like PIL's rotate: phone videos stand up.
                    picture = picture.rotate(frame.rotation, expand=True)
                picture = fit(picture, max_side)
                frames.append(
                    Keyframe(
                        len(frames),
                        float(frame.time or 0.0),
                        encode_jpeg(picture),
                        picture.width,
                        picture.height,
                        picture,
                    )
                )
    except MediaRejected:
        raise
    except Exception as exc:
        reason, detail = classify_exception(exc, ContentType("video/*", "video", ""))
        raise MediaRejected(reason, detail, stage="derive") from exc
    return frames


def chunk_text(text: str, max_chars: int = 1000, overlap: int = 100) -> list[TextChunk]:
    """Split ``text`` into chunks of at most ``max_chars``, ending at paragraph/sentence/word boundaries
    where possible, each starting up to ``overlap`` characters before the previous one ended."""
    if max_chars <= 0 or not 0 <= overlap < max_chars:
        raise ValueError("need max_chars > 0 and 0 <= overlap < max_chars")
    chunks: list[TextChunk] = []
    start = 0
    while start < len(text):
        end = _chunk_end(text, start, max_chars)
        chunks.append(TextChunk(len(chunks), text[start:end], start, end))
        if end >= len(text):
            break
        start = _next_start(text, start, end, overlap)
    return chunks


def fit(im: Image.Image, max_side: int) -> Image.Image:
    """The thumbnail rule: RGB, longest side <= max_side, aspect ratio kept, never enlarged."""
    rgb = to_rgb(im)
    rgb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return rgb


def encode_jpeg(im: Image.Image) -> bytes:
    out = io.BytesIO()
    im.save(out, format="JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


def _spread(items: list[int], count: int) -> list[int]:
    """``count`` of the sorted ``items`` nearest to evenly spaced times from first to last."""
    if len(items) <= count:
        return items
    if count == 1:
        return [items[0]]
    first, last = items[0], items[-1]
    chosen: list[int] = []
    for i in range(count):
        target = first + (last - first) * i / (count - 1)
        chosen.append(min((x for x in items if x not in chosen), key=lambda x: abs(x - target)))
    return sorted(chosen)


def _chunk_end(text: str, start: int, max_chars: int) -> int:
    limit = start + max_chars
    if limit >= len(text):
        return len(text)
    window = text[start:limit]
    floor = max_chars // 2  # a boundary in the first half would make a tiny chunk: try the next kind
    for pattern in _BOUNDARIES:
        ends = [m.end() for m in pattern.finditer(window) if m.end() > floor]
        if ends:
            return start + ends[-1]
    return limit  # one long "word": hard cut


def _next_start(text: str, start: int, end: int, overlap: int) -> int:
    """Back up by ``overlap`` but begin on a word; always move forward."""
    candidate = max(end - overlap, start + 1)
    if candidate < end and not text[candidate - 1].isspace():
        space = _WHITESPACE.search(text, candidate, end)
        candidate = space.end() if space else end
    return min(candidate, end)
