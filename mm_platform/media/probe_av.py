"""Video and audio metadata with PyAV (FFmpeg), plus container checks that explain FFmpeg's failures.

FFmpeg is lenient: it opens half a file and reports "End of file" or "Invalid data" without saying
what is missing. Before and after calling it we read the container's own structure (ISO-BMFF boxes,
RIFF chunk sizes, Matroska elements) so a rejection says which part is absent. Streams, not brands or
extensions, decide audio vs video.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from fractions import Fraction

import av
import av.error
from av.container import InputContainer
from av.stream import Disposition, Stream

from mm_platform.media.blob import Buffer, as_stream
from mm_platform.media.quarantine import MediaRejected, QuarantineReason
from mm_platform.media.sniff import ContentType, Modality

__all__ = ["probe_av"]

_BMFF = {"mp4", "mov", "m4a", "3gp"}
_RIFF = {"wav", "avi"}
_MATROSKA = {"matroska", "webm"}
_MKV_SEGMENT, _MKV_TRACKS, _MKV_CLUSTER = 0x18538067, 0x1654AE6B, 0x1F43B675
_MKV_TRACK_ENTRY, _MKV_TRACK_TYPE, _MKV_CODEC_ID = 0xAE, 0x83, 0x86
_MKV_TRACK_KINDS = {1: "video", 2: "audio", 3: "complex", 0x10: "logo", 0x11: "subtitle", 0x12: "buttons"}


def probe_av(data: Buffer, name: str, content_type: ContentType) -> tuple[Modality, dict[str, object]]:
    """Return the modality the streams imply and the metadata fields; raise for unusable files."""
    _check_complete(data, content_type)
    try:
        container = av.open(as_stream(data), mode="r")
    except av.error.FFmpegError as exc:
        explained = _explain_matroska(data) if content_type.format in _MATROSKA else None
        if explained is not None:
            raise explained from exc
        raise
    with container:
        video = next((s for s in container.streams.video if not s.disposition & Disposition.attached_pic), None)
        audio = next(iter(container.streams.audio), None)
        stream: Stream | None = video or audio
        if stream is None:
            explained = _explain_matroska(data) if content_type.format in _MATROSKA else None
            kinds = ", ".join(s.type for s in container.streams) or "nothing"
            raise explained or MediaRejected(
                QuarantineReason.UNDECODABLE, f"no audio or video stream: the container holds {kinds}"
            )
        fields = _common_fields(container, stream, content_type)
        if video is not None:
            fields |= {
                "width": video.codec_context.width,
                "height": video.codec_context.height,
                "fps": _float(video.average_rate or video.guessed_rate),
                "frame_count": video.frames or _count_packets(data, video.index),
                "has_audio": audio is not None,
            }
        else:
            assert audio is not None
            fields |= {
                "sample_rate": audio.codec_context.sample_rate,
                "channels": audio.codec_context.channels,
            }
        _decode_first_frame(container, stream)
    return ("video" if video is not None else "audio"), fields


def _common_fields(container: InputContainer, stream: Stream, content_type: ContentType) -> dict[str, object]:
    demuxers = container.format.name.split(",")
    duration: float | None = None
    if stream.duration and stream.time_base:
        duration = float(stream.duration * stream.time_base)
    elif container.duration:
        duration = container.duration / av.time_base
    codec = stream.codec_context.codec
    return {
        "container": content_type.format if content_type.format in demuxers else demuxers[0],
        "codec": codec.canonical_name or codec.name,
        "duration_s": duration,
    }


def _decode_first_frame(container: InputContainer, stream: Stream) -> None:
    """Prove the stream decodes: headers alone are easy to fake or to keep from a cut file."""
    for _frame in container.decode(stream):
        return
    raise MediaRejected(
        QuarantineReason.UNDECODABLE,
        f"the {stream.type} stream ({stream.codec_context.name}) opened but not a single frame decoded",
    )


def _count_packets(data: Buffer, index: int) -> int:
    """Frame count when the container does not store one (AVI without index, Matroska, WebM)."""
    with av.open(as_stream(data), mode="r") as container:
        return sum(1 for p in container.demux(container.streams[index]) if p.size)


def _float(value: Fraction | int | None) -> float | None:
    return float(value) if value else None


def _check_complete(data: Buffer, content_type: ContentType) -> None:
    """Reject containers whose own size fields say bytes are missing (a cut upload or download)."""
    size = len(data)
    if content_type.format in _BMFF:
        offset, seen = 0, set()
        while offset + 8 <= size:
            (box_size, box_type) = struct.unpack(">I4s", data[offset : offset + 8])
            if box_size == 1 and offset + 16 <= size:
                box_size = struct.unpack(">Q", data[offset + 8 : offset + 16])[0]
            elif box_size == 0:
                box_size = size - offset  # "extends to end of file"
            if box_size < 8:
                raise MediaRejected(QuarantineReason.CORRUPT, f"ISO-BMFF box at offset {offset:,} has size {box_size}")
            kind = box_type.decode("latin-1")
            if offset + box_size > size:
                raise MediaRejected(
                    QuarantineReason.TRUNCATED,
                    f"the '{kind}' box at offset {offset:,} declares {box_size:,} bytes but only "
                    f"{size - offset:,} are present ({size:,}-byte file"
                    + (", no 'moov' header box before the cut)" if "moov" not in seen else ")"),
                )
            seen.add(kind)
            offset += box_size
        if "moov" not in seen:
            raise MediaRejected(QuarantineReason.CORRUPT, "no 'moov' (movie header) box in the MP4/MOV file")
    elif content_type.format in _RIFF and size >= 8:
        declared = struct.unpack("<I", data[4:8])[0]
        # 0 and 0xFFFFFFFF are written by streaming encoders that never patch the size: not evidence.
        if declared not in (0, 0xFFFFFFFF) and declared + 8 > size:
            raise MediaRejected(
                QuarantineReason.TRUNCATED,
                f"the RIFF header declares {declared + 8:,} bytes but the file has {size:,}",
            )
    elif content_type.format in _MATROSKA:
        for element, body, length in _ebml(data, 0, size):
            if element == _MKV_SEGMENT and length is not None and body + length > size:
                raise MediaRejected(
                    QuarantineReason.TRUNCATED,
                    f"the Matroska segment declares {length:,} bytes but only {size - body:,} are present",
                )


def _explain_matroska(data: Buffer) -> MediaRejected | None:
    """Say what a Matroska file holds when FFmpeg will not open it (or finds no audio/video)."""
    for element, body, length in _ebml(data, 0, len(data)):
        if element != _MKV_SEGMENT:
            continue
        end = len(data) if length is None else min(len(data), body + length)
        tracks: list[str] = []
        clusters = 0
        for child, child_body, child_len in _ebml(data, body, end):
            if child == _MKV_CLUSTER:
                clusters += 1
            elif child == _MKV_TRACKS and child_len is not None:
                tracks += [
                    _describe_track(data, b, n)
                    for e, b, n in _ebml(data, child_body, child_body + child_len)
                    if e == _MKV_TRACK_ENTRY and n is not None
                ]
        has_media = any(t.startswith(("video", "audio")) for t in tracks)
        if has_media and clusters:
            return None  # the structure looks complete: let FFmpeg's own error stand
        held = ", ".join(tracks) if tracks else "no tracks"
        return MediaRejected(
            QuarantineReason.UNDECODABLE,
            f"no audio or video to decode: the Matroska segment holds {held} and {clusters} clusters "
            "(FFmpeg stops at end of file looking for the first cluster)",
        )
    return MediaRejected(QuarantineReason.CORRUPT, "EBML header without a Matroska segment")


def _describe_track(data: Buffer, body: int, length: int) -> str:
    kind, codec = "unknown", "?"
    for element, start, size in _ebml(data, body, body + length):
        if size is None:
            break
        if element == _MKV_TRACK_TYPE:
            kind = _MKV_TRACK_KINDS.get(int.from_bytes(data[start : start + size]), "unknown")
        elif element == _MKV_CODEC_ID:
            codec = data[start : start + size].decode("ascii", "replace")
    return f"1 {kind} track ({codec})"


def _ebml(data: Buffer, start: int, end: int) -> Iterator[tuple[int, int, int | None]]:
    """Yield (element id, body offset, body size or None if unknown) for elements in data[start:end]."""
    offset = start
    while offset < end:
        element, id_len = _vint(data, offset, keep_marker=True)
        length, size_len = _vint(data, offset + id_len, keep_marker=False)
        if element is None or id_len == 0 or size_len == 0:
            return
        body = offset + id_len + size_len
        yield element, body, length
        if length is None:
            return  # unknown size: only the first such element can be walked
        offset = body + length


def _vint(data: Buffer, offset: int, *, keep_marker: bool) -> tuple[int | None, int]:
    """EBML variable-length integer at ``offset``: (value, byte length); (None, 0) when unreadable."""
    if offset >= len(data) or data[offset] == 0:
        return None, 0
    first = data[offset]
    width = 8 - first.bit_length() + 1
    if offset + width > len(data):
        return None, 0
    value = int.from_bytes(data[offset : offset + width])
    if keep_marker:
        return value, width
    value &= (1 << (7 * width)) - 1
    return (None if value == (1 << (7 * width)) - 1 else value), width
