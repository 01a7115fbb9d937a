"""Media probing, derived data and quarantine reasons, against the real files in shared/media.

Covers: content sniffing (never by extension); every file under images/, video/, audio/, documents/
probes with the right modality; every file under malformed/ is rejected with the reason in
``MALFORMED``; EXIF / GPS / orientation compared with Pillow's raw ``getexif()`` / ``get_ifd()``; video
and audio fields compared with PyAV read here (and WAV headers read as raw bytes); thumbnails (size,
upright, odd modes); keyframes; the encrypted PDF; text chunking; decompression-bomb limits; the
per-file time limit, worker recovery and crash handling of ``probe_with_limit`` / ``ProbePool``.
"""

from __future__ import annotations

import io
import os
import pickle
import signal
import struct
import time
import warnings
import zlib
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import ExifTags, Image, ImageFile, ImageOps
from pypdf import PdfReader

from mm_platform.errors import ConfigError
from mm_platform.media import (
    MAX_IMAGE_PIXELS,
    QUEUED_PER_WORKER,
    ContentType,
    MediaRejected,
    Probed,
    ProbePool,
    QuarantineReason,
    chunk_text,
    classify_exception,
    extract_keyframes,
    make_thumbnail,
    probe,
    probe_with_limit,
    sniff,
)

FOLDER_MODALITY = {"images": "image", "video": "video", "audio": "audio", "documents": "document"}

# Every file in malformed/ -> (reason, a phrase the detail must contain so it names what is wrong).
MALFORMED: dict[str, tuple[QuarantineReason, str]] = {
    "empty.jpg": (QuarantineReason.EMPTY, "zero bytes"),
    "bikes_first4k.mp4": (QuarantineReason.TRUNCATED, "'mdat' box at offset 40 declares 506,101 bytes"),
    "mutagen_truncated-64bit.mp4": (QuarantineReason.TRUNCATED, "'mdat' box at offset 1,442"),
    "pymediainfo_sample.mkv": (QuarantineReason.UNDECODABLE, "1 subtitle track (S_TEXT/UTF8) and 0 clusters"),
    "pillow_broken.png": (QuarantineReason.CORRUPT, "broken PNG file"),
    "pillow_broken_data_stream.png": (QuarantineReason.CORRUPT, "unrecognized data stream"),
    "pillow_crash-465703f71a0f0094873a3e0e82c9f798161171b8.sgi": (QuarantineReason.CORRUPT, "buffer overrun"),
    "pillow_crash-4fb027452e6988530aa5dabee76eecacb3b79f8a.j2k": (QuarantineReason.CORRUPT, "broken data stream"),
    "pillow_decompression_bomb.gif": (QuarantineReason.DECOMPRESSION_BOMB, "4,364,696,535 pixels"),
    "pillow_png_decompression_dos.png": (QuarantineReason.DECOMPRESSION_BOMB, "MAX_TEXT_CHUNK"),
    "pillow_truncated_image.png": (QuarantineReason.TRUNCATED, "PNG 640x480 image is truncated"),
    "pillow_truncated_jpeg.jpg": (QuarantineReason.TRUNCATED, "JPEG 100x100 image is truncated"),
    "text_named.jpg": (QuarantineReason.TEXT_UNDER_MEDIA_EXTENSION, "claims image"),
}

SNIFFED = {
    "images/fruits_really_a_jpeg.png": "image/jpeg",
    "images/pygame_yellow.tga": "image/x-tga",
    "images/pygame_purple.xpm": "image/x-xpixmap",
    "images/pygame_crimson.pnm": "image/x-portable-anymap",
    "images/pygame_grey.pgm": "image/x-portable-anymap",
    "images/pygame_turquoise.tif": "image/tiff",
    "images/pygame_fist.webp": "image/webp",
    "images/pygame_bomb.gif": "image/gif",
    "malformed/pillow_crash-465703f71a0f0094873a3e0e82c9f798161171b8.sgi": "image/sgi",
    "malformed/pillow_crash-4fb027452e6988530aa5dabee76eecacb3b79f8a.j2k": "image/jp2",
    "video/bikes.mp4": "video/mp4",
    "video/tree.avi": "video/x-msvideo",
    "malformed/pymediainfo_sample.mkv": "video/x-matroska",
    "audio/freedesktop_bell.oga": "audio/ogg",
    "audio/pygame_house_lo.opus": "audio/ogg",
    "audio/pygame_house_lo.mp3": "audio/mpeg",
    "audio/pygame_house_lo.flac": "audio/flac",
    "audio/alsa_Noise.wav": "audio/wav",
    "documents/crazyones.pdf": "application/pdf",
    "malformed/text_named.jpg": "text/plain",
    "malformed/empty.jpg": "application/octet-stream",
}


def _files(root: Path, folder: str) -> list[Path]:
    return sorted(p for p in (root / folder).iterdir() if p.is_file())


def _raw_exif(path: Path) -> tuple[Image.Exif, dict[int, object]]:
    with warnings.catch_warnings(), Image.open(path) as im:
        warnings.simplefilter("ignore", UserWarning)  # Pillow's "Corrupt EXIF data" chatter
        exif = im.getexif()
        return exif, dict(exif.get_ifd(ExifTags.IFD.GPSInfo))


def _decode_jpeg(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "JPEG"
        im.load()
        return im.copy()


def _mean_diff(a: Image.Image, b: Image.Image) -> float:
    b = b.convert("RGB").resize(a.size)
    return float(np.abs(np.asarray(a, dtype=np.int16) - np.asarray(b, dtype=np.int16)).mean())


# --- probe functions injected into worker processes (module level so they pickle by reference) ---


def slow_probe(data: bytes, name: str) -> Probed:
    time.sleep(30)
    return probe(data, name)


def slow_if_named_slow(data: bytes, name: str) -> Probed:
    if name.startswith("slow"):
        time.sleep(30)
    return probe(data, name)


def crashing_probe(data: bytes, name: str) -> Probed:
    os.kill(os.getpid(), signal.SIGSEGV)  # what a native decoder bug looks like from outside
    raise AssertionError("unreachable")


def worker_pid_unless_odd(data: bytes, name: str) -> Probed:
    """Hangs on "slow*", crashes on "crash*"; otherwise says which worker process probed the file."""
    if name.startswith("slow"):
        time.sleep(30)
    if name.startswith("crash"):
        crashing_probe(data, name)
    return Probed(ContentType("application/octet-stream", "document", "unknown"), {"pid": os.getpid()})


# --- sniffing ---


@pytest.mark.parametrize(("relpath", "mime"), SNIFFED.items())
def test_sniff_by_content(shared_media: Path, relpath: str, mime: str) -> None:
    assert sniff((shared_media / relpath).read_bytes(), relpath).mime_type == mime


def test_sniff_ignores_the_name() -> None:
    png_header = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
    assert sniff(png_header, "photo.jpg").format == "png"
    assert sniff("naïve café\nsecond line\n".encode(), "x.bin").modality == "text"
    assert sniff(bytes(range(256)) * 4, "x.txt").modality == "unknown"
    with pytest.raises(MediaRejected) as info:
        probe(bytes(range(256)) * 4, "blob.bin")
    assert info.value.reason is QuarantineReason.UNSUPPORTED


# --- probing good files ---


@pytest.mark.parametrize("folder", FOLDER_MODALITY)
def test_every_good_file_probes(shared_media: Path, folder: str) -> None:
    failures = []
    for path in _files(shared_media, folder):
        try:
            result = probe(path.read_bytes(), path.name)
        except MediaRejected as exc:
            failures.append(f"{path.name}: {exc}")
            continue
        if result.modality != FOLDER_MODALITY[folder]:
            failures.append(f"{path.name}: modality {result.modality}")
    assert not failures, "\n".join(failures)


def test_image_fields_and_exif_match_pillow(shared_media: Path) -> None:
    with_gps = 0
    for path in _files(shared_media, "images"):
        fields = probe(path.read_bytes(), path.name).fields
        with Image.open(path) as im:
            assert (fields["width"], fields["height"], fields["mode"]) == (im.width, im.height, im.mode)
        exif, gps = _raw_exif(path)
        orientation = exif.get(0x0112)
        assert fields["orientation"] == (orientation if orientation in range(1, 9) else None), path.name
        assert fields["camera_make"] == (str(exif[0x010F]).strip("\x00 ") if 0x010F in exif else None)
        assert fields["camera_model"] == (str(exif[0x0110]).strip("\x00 ") if 0x0110 in exif else None)
        exif_tags = fields["exif"]
        assert isinstance(exif_tags, dict) and all(isinstance(v, str) for v in exif_tags.values())
        lat_raw, lat_ref = gps.get(2), gps.get(1)
        if isinstance(lat_raw, tuple) and lat_ref in ("N", "S"):
            d, m, s = (float(x) for x in lat_raw)
            lat = (d + m / 60 + s / 3600) * (-1 if lat_ref == "S" else 1)
            d, m, s = (float(x) for x in gps[4])  # type: ignore[attr-defined]
            lon = (d + m / 60 + s / 3600) * (-1 if gps[3] == "W" else 1)
            assert fields["gps_lat"] == pytest.approx(lat) and fields["gps_lon"] == pytest.approx(lon)
            with_gps += 1
        else:
            assert fields["gps_lat"] is None and fields["gps_lon"] is None, path.name
    assert with_gps >= 3  # ela_original, kivy_faust_github, leuvenA


def test_odd_exif_is_read_not_rejected(shared_media: Path) -> None:
    gps = probe((shared_media / "images/pillow_exif_gps.jpg").read_bytes()).fields
    _, raw_gps = _raw_exif(shared_media / "images/pillow_exif_gps.jpg")
    assert (gps["camera_make"], gps["camera_model"]) == ("Make", "XXX-XXX")
    assert gps["captured_at"] == "2099-09-29T10:10:10"
    assert raw_gps[2] == 4294967295.0 and 1 not in raw_gps  # junk latitude, no hemisphere: no position
    assert gps["gps_lat"] is None
    assert probe((shared_media / "images/pillow_multiple_exif.jpg").read_bytes()).fields["exif"] == {
        "ImageDescription": "firstsecond"
    }
    magick = probe((shared_media / "images/pillow_exif_imagemagick_orientation.png").read_bytes()).fields
    assert magick["orientation"] == 3


def _tagged_jpeg(source: Path) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "TestMake"
    exif[0x8825] = {1: "S", 2: (33.0, 51.0, 54.0), 3: "W", 4: (70.0, 30.0, 0.0)}
    exif[0x8769] = {0x9003: "2021:05:04 03:02:01", 0x9011: "+02:00"}
    out = io.BytesIO()
    with Image.open(source) as im:
        im.save(out, "JPEG", exif=exif.tobytes(), quality=92)
    return out.getvalue()


def test_written_exif_round_trips(shared_media: Path) -> None:
    fields = probe(_tagged_jpeg(shared_media / "images/china.jpg"), "tagged.jpg").fields
    assert fields["orientation"] == 6 and fields["camera_make"] == "TestMake"
    assert fields["gps_lat"] == pytest.approx(-(33 + 51 / 60 + 54 / 3600))
    assert fields["gps_lon"] == pytest.approx(-70.5)
    assert fields["captured_at"] == "2021-05-04T03:02:01+02:00"


def test_video_fields_match_pyav(shared_media: Path) -> None:
    for path in _files(shared_media, "video"):
        fields = probe(path.read_bytes(), path.name).fields
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            assert fields["container"] in container.format.name.split(",")
            assert fields["codec"] == stream.codec_context.codec.canonical_name
            assert (fields["width"], fields["height"]) == (stream.codec_context.width, stream.codec_context.height)
            assert fields["fps"] == pytest.approx(float(stream.average_rate or 0))
            assert fields["has_audio"] is bool(container.streams.audio)
            assert stream.duration is not None and stream.time_base is not None
            assert fields["duration_s"] == pytest.approx(float(stream.duration * stream.time_base), rel=1e-6)
            assert fields["frame_count"] == stream.frames
        frames, seconds, fps = fields["frame_count"], fields["duration_s"], fields["fps"]
        assert isinstance(frames, int) and isinstance(seconds, float) and isinstance(fps, float)
        assert abs(frames - seconds * fps) <= 2  # the clock agrees with the header's frame count


def test_audio_fields_match_pyav_and_wav_headers(shared_media: Path) -> None:
    for path in _files(shared_media, "audio"):
        data = path.read_bytes()
        fields = probe(data, path.name).fields
        with av.open(str(path)) as container:
            stream = container.streams.audio[0]
            assert fields["codec"] == stream.codec_context.codec.canonical_name
            assert fields["sample_rate"] == stream.codec_context.sample_rate
            assert fields["channels"] == stream.codec_context.channels
            assert fields["container"] in container.format.name.split(",")
        assert isinstance(fields["duration_s"], float) and fields["duration_s"] > 0.1
        if data[8:12] == b"WAVE":
            fmt = data.index(b"fmt ") + 8
            channels, rate = struct.unpack("<HI", data[fmt + 2 : fmt + 8])
            assert (fields["channels"], fields["sample_rate"]) == (channels, rate)


def test_documents(shared_media: Path) -> None:
    encrypted = probe((shared_media / "documents/encrypted-file.pdf").read_bytes()).fields
    assert encrypted["encrypted"] is True and encrypted["text"] is None
    meta = probe((shared_media / "documents/metadata.pdf").read_bytes()).fields
    assert (meta["title"], meta["author"]) == ("The Title", "Martin Thoma")
    for path in _files(shared_media, "documents"):
        if path.name == "encrypted-file.pdf":
            continue
        fields = probe(path.read_bytes(), path.name).fields
        assert fields["encrypted"] is False and isinstance(fields["text"], str)
        assert fields["page_count"] == len(PdfReader(path).pages)
    hello = probe((shared_media / "documents/hello-world.pdf").read_bytes()).fields["text"]
    assert isinstance(hello, str) and "Hello World" in hello


def test_text_files_and_text_under_media_extension(shared_media: Path) -> None:
    data = (shared_media / "malformed/text_named.jpg").read_bytes()
    assert probe(data, "notes.txt").fields == {"text": data.decode(), "encoding": "utf-8", "text_truncated": False}
    for name in ("clip.mp4", "song.oga", "photo.JPG"):
        with pytest.raises(MediaRejected) as info:
            probe(data, name)
        assert info.value.reason is QuarantineReason.TEXT_UNDER_MEDIA_EXTENSION


# --- malformed files ---


def test_malformed_table_covers_the_folder(shared_media: Path) -> None:
    assert {p.name for p in _files(shared_media, "malformed")} == set(MALFORMED)


@pytest.mark.parametrize(("name", "expected"), MALFORMED.items())
def test_malformed_is_rejected(shared_media: Path, name: str, expected: tuple[QuarantineReason, str]) -> None:
    reason, phrase = expected
    with pytest.raises(MediaRejected) as info:
        probe((shared_media / "malformed" / name).read_bytes(), name)
    assert info.value.reason is reason, info.value.detail
    assert phrase in info.value.detail
    assert info.value.name == name and name in str(info.value)


def test_pixel_limit_is_an_error_below_pillows_own(shared_media: Path) -> None:
    # A PNG header claiming 10000x10000 (1.1x the limit): Pillow alone would only warn here.
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", 10_000, 10_000, 8, 0, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")
    with pytest.raises(MediaRejected) as info:
        probe(png, "huge.png")
    assert info.value.reason is QuarantineReason.DECOMPRESSION_BOMB
    assert f"{MAX_IMAGE_PIXELS:,}" in info.value.detail and "100,000,000" in info.value.detail
    assert Image.MAX_IMAGE_PIXELS == MAX_IMAGE_PIXELS and ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_lenient_pillow_is_refused_not_quarantined(shared_media: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(ConfigError):
        probe((shared_media / "malformed/pillow_truncated_jpeg.jpg").read_bytes(), "t.jpg")


def test_reasons_are_explained_and_pickle() -> None:
    assert all(reason.explanation for reason in QuarantineReason)
    rejected = MediaRejected("truncated", "mdat cut", name="a.mp4")
    clone = pickle.loads(pickle.dumps(rejected))
    assert (clone.reason, clone.detail, clone.name) == (QuarantineReason.TRUNCATED, "mdat cut", "a.mp4")
    assert classify_exception(OSError("image file is truncated"), None)[0] is QuarantineReason.TRUNCATED
    assert classify_exception(av.error.EOFError(541478725, "End of file"), None)[0] is QuarantineReason.TRUNCATED
    assert MediaRejected("timeout", "slow").retryable and not rejected.retryable


# --- derived data ---


def test_thumbnails(shared_media: Path) -> None:
    for path in _files(shared_media, "images"):
        thumb = make_thumbnail(path.read_bytes())
        decoded = _decode_jpeg(thumb.jpeg)
        assert decoded.mode == "RGB" and decoded.size == (thumb.width, thumb.height)
        with warnings.catch_warnings(), Image.open(path) as im:
            warnings.simplefilter("ignore", UserWarning)
            w, h = ImageOps.exif_transpose(im).size
        assert max(thumb.width, thumb.height) == min(256, max(w, h)), path.name
        assert thumb.width / thumb.height == pytest.approx(w / h, rel=0.03), path.name


def test_thumbnail_is_upright(shared_media: Path) -> None:
    path = shared_media / "images/pillow_exif_imagemagick_orientation.png"  # orientation 3: rotate 180
    thumb = _decode_jpeg(make_thumbnail(path.read_bytes()).jpeg)
    with Image.open(path) as original:
        assert _mean_diff(thumb, original.rotate(180)) < 0.5 * _mean_diff(thumb, original)
    tagged = _tagged_jpeg(shared_media / "images/china.jpg")  # orientation 6 on a 640x427 photo
    portrait = make_thumbnail(tagged)
    assert (portrait.width, portrait.height) == (171, 256)
    with Image.open(shared_media / "images/china.jpg") as original:
        right = _mean_diff(_decode_jpeg(portrait.jpeg), original.transpose(Image.Transpose.ROTATE_270))
        wrong = _mean_diff(_decode_jpeg(portrait.jpeg), original.transpose(Image.Transpose.ROTATE_90))
    assert right < 12 < wrong


def test_thumbnail_modes(shared_media: Path) -> None:
    alien = _decode_jpeg(make_thumbnail((shared_media / "images/pygame_alien1.png").read_bytes()).jpeg)
    assert alien.getpixel((0, 0)) == pytest.approx((255, 255, 255), abs=6)  # transparent corner -> white
    deep = Image.fromarray(np.full((40, 300), 65535 // 2, dtype=np.uint16))
    out = io.BytesIO()
    deep.save(out, "PNG")
    gray = _decode_jpeg(make_thumbnail(out.getvalue()).jpeg)
    assert gray.size == (256, 34) and abs(int(np.asarray(gray).mean()) - 127) <= 3
    gif = make_thumbnail((shared_media / "images/pygame_animated_sample.gif").read_bytes())
    assert (gif.width, gif.height) == (256, 256)


def test_keyframes(shared_media: Path) -> None:
    for path in _files(shared_media, "video"):
        frames = extract_keyframes(path.read_bytes(), max_frames=8)
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            keys = {p.pts for p in container.demux(stream) if p.is_keyframe and p.size}
        assert len(frames) == min(8, len(keys)) and frames, path.name
        assert [f.ordinal for f in frames] == list(range(len(frames)))
        assert [f.timestamp_s for f in frames] == sorted({f.timestamp_s for f in frames})
        for frame in frames:
            decoded = _decode_jpeg(frame.jpeg)
            assert decoded.size == (frame.width, frame.height) == frame.rgb.size
            assert max(frame.width, frame.height) <= 256 and frame.rgb.mode == "RGB"
    spread = extract_keyframes((shared_media / "video/bikes.mp4").read_bytes(), max_frames=3)
    assert [f.timestamp_s for f in spread] == [0.0, pytest.approx(5.48), pytest.approx(9.68)]


def test_chunk_text_reassembles(shared_media: Path) -> None:
    paragraphs = "\n\n".join(f"Paragraph {i}. " + "Some words here. " * (i % 7 * 9 + 3) for i in range(40))
    ocr = probe((shared_media / "documents/Seige_of_Vicksburg_Sample_OCR.pdf").read_bytes()).fields["text"]
    assert isinstance(ocr, str)
    for text in (paragraphs, ocr, "x" * 2500, ""):
        chunks = chunk_text(text, max_chars=1000, overlap=100)
        rebuilt, end = "", 0
        for chunk in chunks:
            assert chunk.text == text[chunk.start : chunk.end] and len(chunk.text) <= 1000
            assert end - 100 <= chunk.start <= end
            rebuilt += chunk.text[end - chunk.start :]
            end = chunk.end
        assert rebuilt == text
    boundaries = chunk_text(paragraphs)[:-1]
    assert all(c.text.endswith(("\n\n", ". ", ".")) for c in boundaries)


# --- time limit and worker pool ---


def test_timeout_fires_and_worker_recovers(shared_media: Path) -> None:
    started = time.monotonic()
    with pytest.raises(MediaRejected) as info:
        probe_with_limit(b"anything", "stuck.bin", timeout_s=1.0, probe_fn=slow_probe)
    assert info.value.reason is QuarantineReason.TIMEOUT and info.value.retryable
    assert time.monotonic() - started < 10
    png = (shared_media / "images/pygame_alien1.png").read_bytes()
    assert probe_with_limit(png, "alien.png", timeout_s=20).modality == "image"


def test_pool_keeps_order_and_survives_hangs_and_crashes(shared_media: Path) -> None:
    paths = [p for folder in ("images", "malformed", "audio") for p in _files(shared_media, folder)][::3]
    items = [(p.name, p.read_bytes()) for p in paths]
    items.insert(2, ("slow-one.bin", b"x"))
    with ProbePool(workers=2, timeout_s=3.0, probe_fn=slow_if_named_slow, max_in_flight=3) as pool:
        outcomes = list(pool.map(items))
        assert [name for name, _ in outcomes] == [name for name, _ in items]
        for (name, data), (_, outcome) in zip(items, outcomes, strict=True):
            if name.startswith("slow"):
                assert isinstance(outcome, MediaRejected) and outcome.reason is QuarantineReason.TIMEOUT
                continue
            try:
                expected: Probed | MediaRejected = probe(data, name)
            except MediaRejected as exc:
                expected = exc
            assert type(outcome) is type(expected), name
            if isinstance(outcome, MediaRejected) and isinstance(expected, MediaRejected):
                assert outcome.reason is expected.reason
    with ProbePool(workers=1, timeout_s=20, probe_fn=crashing_probe) as crashing, pytest.raises(MediaRejected) as info:
        crashing.probe(b"x", "segv.bin")
    assert info.value.reason is QuarantineReason.UNREADABLE and "SIGSEGV" in info.value.detail


def test_files_queued_behind_a_hang_or_a_crash_go_to_the_next_worker_unharmed() -> None:
    """A worker holds the next file while it probes the current one (``QUEUED_PER_WORKER``): when it is
    killed for overrunning, or dies, only the file it was on is quarantined; the ones waiting in it are
    probed by its replacement, in input order."""
    assert QUEUED_PER_WORKER >= 2
    names = ["slow-1.bin", "a.bin", "b.bin", "crash-1.bin", "c.bin", "d.bin", "e.bin"]
    with ProbePool(workers=1, timeout_s=2.0, probe_fn=worker_pid_unless_odd, max_in_flight=4) as pool:
        outcomes = list(pool.map([(name, b"x") for name in names]))
    assert [name for name, _ in outcomes] == names
    reasons = {name: o.reason for name, o in outcomes if isinstance(o, MediaRejected)}
    assert reasons == {"slow-1.bin": QuarantineReason.TIMEOUT, "crash-1.bin": QuarantineReason.UNREADABLE}
    pids = [o.fields["pid"] for _, o in outcomes if not isinstance(o, MediaRejected)]
    # a waited in the worker that hung and c in the one that crashed: each went on in the replacement
    assert pids[0] == pids[1] != pids[2] == pids[3] == pids[4], pids


def test_two_workers_started_ahead_are_each_given_a_file_before_either_gets_a_second() -> None:
    with ProbePool(workers=2, timeout_s=20, probe_fn=worker_pid_unless_odd) as pool:
        pool.start()  # as a batch does before it opens its stage
        started = pool.worker_pids()
        first_two = [o for _, o in pool.map([("a.bin", b"x"), ("b.bin", b"x")])]
    assert sorted(o.fields["pid"] for o in first_two if not isinstance(o, MediaRejected)) == sorted(started)
    assert len(set(started)) == 2
