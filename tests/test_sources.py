"""Media sources: local-folder and S3 listings, single-pass hashed reads, retries, and the listing diff.

Covers: ids; the local listing of the shared media (count = os.walk, hashes = hashlib) and its edge cases
(hidden entries, symlinks, unreadable files, large files read in place and checked, files changed after
listing); spooling to disk; S3 listing with real paging and versioned buckets on a real moto_server; new /
overwritten / deleted objects found by ``diff_listing``; 503, SlowDown, AccessDenied and dropped connections
injected by a proxy on 127.0.0.1, with attempt counts asserted; retries running out; a missing bucket;
``source_from_uri`` and settings from env.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from mm_platform.errors import ConfigError, SourceChangedError, SourceError, TransientSourceError
from mm_platform.ids import derived_id_for, media_id_for
from mm_platform.sources import (
    LocalFolderSource,
    ObjectInfo,
    RetryPolicy,
    S3Settings,
    S3Source,
    diff_listing,
    source_from_uri,
)
from mm_platform.sources.base import spool_chunks
from tests.fault_proxy import FaultProxy, fault_proxy
from tests.services import S3Endpoint

FAST_RETRY = RetryPolicy(max_attempts=4, base_delay_s=0.01, max_delay_s=0.05)

MakeS3Source = Callable[..., S3Source]


# ---------------------------------------------------------------- fixtures and helpers


@pytest.fixture
def bucket_name(request: pytest.FixtureRequest) -> str:
    """A bucket name unique to this test (S3 names: lowercase, 3–63 chars)."""
    stem = request.node.name.removeprefix("test_").replace("_", "-").lower()[:40].strip("-")
    return f"{stem}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def make_s3_source(s3_endpoint: S3Endpoint) -> Iterator[MakeS3Source]:
    """Builds S3 sources against the endpoint (or a proxy in front of it) and closes them after the test."""
    made: list[S3Source] = []

    def make(bucket: str, prefix: str = "", *, endpoint_url: str | None = None, **kwargs: Any) -> S3Source:
        settings = S3Settings(
            endpoint_url=endpoint_url or s3_endpoint.url,
            access_key_id=s3_endpoint.access_key,
            secret_access_key=s3_endpoint.secret_key,
            region=s3_endpoint.region,
            read_timeout_s=5,
        )
        kwargs.setdefault("retry_policy", FAST_RETRY)
        source = S3Source(bucket, prefix, settings=settings, **kwargs)
        made.append(source)
        return source

    yield make
    for source in made:
        source.close()


@pytest.fixture
def proxy(s3_endpoint: S3Endpoint) -> Iterator[FaultProxy]:
    """A fault-injecting proxy in front of the moto endpoint; stopped (threads joined) after the test."""
    threads_before = set(threading.enumerate())
    with fault_proxy(s3_endpoint.url) as running:
        yield running
    leftover = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
    assert not leftover, f"proxy threads still running: {leftover}"


def put_objects(client: Any, bucket: str, objects: dict[str, bytes]) -> None:
    for key, body in objects.items():
        client.put_object(Bucket=bucket, Key=key, Body=body)


def published_media(rows: Iterable[tuple[ObjectInfo, str]], extra: Iterable[dict[str, Any]] = ()) -> pa.Table:
    """A published media table as the lake would hold it, from (listed object, status) pairs."""
    records = [
        {
            "media_id": obj.media_id,
            "uri": obj.uri,
            "etag": obj.etag,
            "version_id": obj.version_id,
            "content_sha256": None,
            "status": status,
        }
        for obj, status in rows
    ]
    records.extend(extra)
    schema = pa.schema(
        [(name, pa.string()) for name in ("media_id", "uri", "etag", "version_id", "content_sha256", "status")]
    )
    return pa.Table.from_pylist(records, schema=schema)


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- ids


def test_ids_are_stable_short_hashes() -> None:
    uri = "s3://bucket/photos/cat.jpg"
    assert media_id_for(uri) == sha256_of(uri.encode())[:32]
    assert media_id_for("file:///a/b") != media_id_for("file:///a/c")
    base = derived_id_for("m1", "keyframe", 3, "keyframes", "1")
    assert len(base) == 32 and int(base, 16) >= 0
    variants = {
        derived_id_for("m1", "keyframe", 4, "keyframes", "1"),
        derived_id_for("m1", "keyframe", 3, "keyframes", "2"),
        derived_id_for("m1", "thumbnail", 3, "keyframes", "1"),
        derived_id_for("m2", "keyframe", 3, "keyframes", "1"),
    }
    assert base not in variants and len(variants) == 4
    assert derived_id_for("m1", "keyframe", 3, "keyframes", "1") == base


# ---------------------------------------------------------------- local folder


def test_local_listing_matches_os_walk_and_hashes(shared_media: Path) -> None:
    expected: set[str] = set()
    for folder, dirs, files in os.walk(shared_media):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        relative = Path(folder).relative_to(shared_media)
        expected.update((relative / name).as_posix() for name in files if not name.startswith("."))
    source = LocalFolderSource(shared_media)
    listing = list(source.list_objects())

    keys = [obj.key for obj in listing]
    assert keys == sorted(keys) and set(keys) == expected and len(keys) == len(expected)
    assert listing == list(source.list_objects()), "two listings of the same folder must be identical"
    for obj in listing:
        path = shared_media / obj.key
        assert obj.uri == path.resolve().as_uri() and obj.source == source.uri
        assert obj.last_modified.tzinfo == UTC and obj.version_id is None
        assert obj.etag == f"{path.stat().st_size}-{path.stat().st_mtime_ns}"
        with source.fetch(obj) as fetched:
            data = path.read_bytes()
            assert fetched.sha256 == sha256_of(data) and fetched.size_bytes == len(data) == obj.size_bytes
            assert fetched.read_bytes() == data


def test_local_edge_cases(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    (root / ".hidden-dir").mkdir()
    (root / ".hidden-dir" / "x.jpg").write_bytes(b"x")
    (root / ".hidden.jpg").write_bytes(b"h")
    (root / "a" / "x.jpg").write_bytes(b"ax")
    (root / "a.txt").write_bytes(b"a")
    (root / "b.jpg").write_bytes(b"b")
    outside = tmp_path / "secret.txt"
    outside.write_bytes(b"secret")
    (root / "link-out.jpg").symlink_to(outside)
    (root / "link-in.jpg").symlink_to(root / "b.jpg")
    (root / "broken.jpg").symlink_to(root / "nowhere.jpg")
    (root / "linked-dir").symlink_to(tmp_path, target_is_directory=True)

    source = LocalFolderSource(root)
    listing = {obj.key: obj for obj in source.list_objects()}
    # Sorted as strings ("a.txt" < "a/x.jpg"); hidden entries and the symlinked folder are left out.
    assert list(listing) == ["a.txt", "a/x.jpg", "b.jpg", "broken.jpg", "link-in.jpg", "link-out.jpg"]

    assert source.fetch(listing["link-in.jpg"]).read_bytes() == b"b"
    with pytest.raises(SourceError, match="outside the source folder") as refused:
        source.fetch(listing["link-out.jpg"])
    assert "link-out.jpg" in str(refused.value)
    with pytest.raises(SourceError, match="broken.jpg"):
        source.fetch(listing["broken.jpg"])
    # Unreadable (here: turned into a folder) → SourceError naming the file; gone → list again.
    (root / "a.txt").unlink()
    (root / "a.txt").mkdir()
    with pytest.raises(SourceError, match="cannot read .*a.txt") as unreadable:
        source.fetch(listing["a.txt"])
    assert not isinstance(unreadable.value, SourceChangedError)
    (root / "a" / "x.jpg").unlink()
    with pytest.raises(SourceChangedError, match="deleted after it was listed"):
        source.fetch(listing["a/x.jpg"])

    # A file changed after listing no longer matches its listing entry.
    (root / "b.jpg").write_bytes(b"bigger now")
    with pytest.raises(SourceChangedError, match="listing said 1"):
        source.fetch(listing["b.jpg"])


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read files without read permission")
def test_local_unreadable_file_is_listed_and_fetch_names_it(tmp_path: Path) -> None:
    (tmp_path / "ok.jpg").write_bytes(b"ok")
    locked = tmp_path / "locked.jpg"
    locked.write_bytes(b"no")
    locked.chmod(0)
    try:
        source = LocalFolderSource(tmp_path)
        listing = {obj.key: obj for obj in source.list_objects()}
        assert set(listing) == {"locked.jpg", "ok.jpg"}
        with pytest.raises(SourceError, match="locked.jpg"):
            source.fetch(listing["locked.jpg"])
    finally:
        locked.chmod(0o644)


def test_large_objects_spool_to_disk(tmp_path: Path) -> None:
    """The spool S3 fetches use: past ``spool_max_bytes`` the bytes go to a temp file, deleted on close."""
    data = os.urandom(300_000)
    info = ObjectInfo("s3://b/big.bin", "s3://b", "big.bin", len(data), "etag", None, datetime.now(UTC))
    chunks = (data[i : i + 50_000] for i in range(0, len(data), 50_000))
    fetched = spool_chunks(info, chunks, spool_max_bytes=64 * 1024)
    assert fetched.spooled_to_disk and not fetched.read_in_place and fetched.sha256 == sha256_of(data)
    with fetched.open() as first, fetched.open() as second:  # independent readers
        assert first.read(10) == data[:10] and second.read() == data
    assert fetched.read_bytes() == data
    spool_path = fetched._path
    assert spool_path is not None and spool_path.exists()
    fetched.close()
    assert not spool_path.exists()
    small = ObjectInfo("s3://b/small.bin", "s3://b", "small.bin", 4, "etag", None, datetime.now(UTC))
    with spool_chunks(small, [b"ti", b"ny"], spool_max_bytes=64 * 1024) as fetched_small:
        assert not fetched_small.spooled_to_disk and fetched_small.read_bytes() == b"tiny"


def test_large_local_files_are_read_in_place_and_checked(tmp_path: Path) -> None:
    """Local files over ``spool_max_bytes`` are not copied: reads re-open them and refuse a changed file."""
    data = os.urandom(300_000)
    (tmp_path / "big.bin").write_bytes(data)
    (tmp_path / "small.bin").write_bytes(b"tiny")
    source = LocalFolderSource(tmp_path, spool_max_bytes=64 * 1024)
    big, small = list(source.list_objects())
    spool_dir = Path(tempfile.gettempdir())
    spooled_before = set(spool_dir.glob("mmp-fetch-*"))
    fetched = source.fetch(big)
    assert fetched.read_in_place and not fetched.spooled_to_disk and fetched._path is None
    assert set(spool_dir.glob("mmp-fetch-*")) == spooled_before, "no temp copy may be written"
    assert fetched.sha256 == sha256_of(data) and fetched.size_bytes == len(data)
    with fetched.open() as first, fetched.open() as second:  # independent readers
        assert first.read(10) == data[:10] and second.read() == data
    assert fetched.read_bytes() == data

    # Same size, new bytes, mtime moved on: the hash no longer describes the file.
    (tmp_path / "big.bin").write_bytes(os.urandom(len(data)))
    os.utime(tmp_path / "big.bin", ns=(0, (tmp_path / "big.bin").stat().st_mtime_ns + 1))
    with pytest.raises(SourceChangedError, match="big.bin.*changed after it was fetched"):
        fetched.open()
    with pytest.raises(SourceChangedError):
        fetched.read_bytes()
    # Replaced atomically (new inode) with the old mtime restored: still caught.
    refetched = source.fetch(big)  # the listed size still matches
    replacement = tmp_path / "replacement.tmp"
    replacement.write_bytes(os.urandom(len(data)))
    stat = (tmp_path / "big.bin").stat()
    os.utime(replacement, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    replacement.replace(tmp_path / "big.bin")
    with pytest.raises(SourceChangedError):
        refetched.open()
    (tmp_path / "big.bin").unlink()
    with pytest.raises(SourceChangedError, match="deleted"):
        refetched.read_bytes()
    fetched.close()
    with pytest.raises(ValueError, match="closed"):
        fetched.open()

    with source.fetch(small) as fetched_small:
        assert not fetched_small.read_in_place and not fetched_small.spooled_to_disk
        assert fetched_small.read_bytes() == b"tiny"


def test_source_from_uri_and_settings(tmp_path: Path) -> None:
    s3 = source_from_uri("s3://media-bucket/photos/2024", s3_endpoint_url="http://127.0.0.1:9")
    assert isinstance(s3, S3Source)
    assert (s3.bucket, s3.prefix, s3.uri) == ("media-bucket", "photos/2024", "s3://media-bucket/photos/2024")
    assert s3.settings.endpoint_url == "http://127.0.0.1:9"
    for given in (str(tmp_path), tmp_path.as_uri()):
        local = source_from_uri(given)
        assert isinstance(local, LocalFolderSource) and local.root == tmp_path.resolve()
    with pytest.raises(ConfigError):
        source_from_uri("gs://bucket/x")
    with pytest.raises(ConfigError, match="does not exist"):
        source_from_uri(str(tmp_path / "missing"))
    settings = S3Settings.from_env(
        {
            "AWS_ENDPOINT_URL": "http://h:1",
            "AWS_ACCESS_KEY_ID": "k",
            "AWS_SECRET_ACCESS_KEY": "s",
            "AWS_DEFAULT_REGION": "eu-west-1",
        }
    )
    assert settings == S3Settings(
        endpoint_url="http://h:1", access_key_id="k", secret_access_key="s", region="eu-west-1"
    )


# ---------------------------------------------------------------- S3 on moto_server


def test_s3_listing_pages_and_hashes(s3_endpoint: S3Endpoint, bucket_name: str, make_s3_source: MakeS3Source) -> None:
    s3_endpoint.create_bucket(bucket_name)
    objects = {f"media/{i:03d}.bin": f"object {i}".encode() * (i + 1) for i in range(23)}
    objects["other/skip.bin"] = b"outside the prefix"
    put_objects(s3_endpoint.client(), bucket_name, objects)

    source = make_s3_source(bucket_name, "media/", page_size=5)
    listing = list(source.list_objects())
    assert [obj.key for obj in listing] == sorted(k for k in objects if k.startswith("media/"))
    assert source.attempts.snapshot() == {"GetBucketVersioning": 1, "ListObjectsV2": 5}  # 23 keys / 5 a page
    for obj in listing:
        assert obj.uri == f"s3://{bucket_name}/{obj.key}" and obj.source == f"s3://{bucket_name}/media/"
        assert obj.etag == hashlib.md5(objects[obj.key]).hexdigest() and obj.version_id is None
        assert obj.last_modified.tzinfo == UTC
        with source.fetch(obj) as fetched:
            assert fetched.sha256 == sha256_of(objects[obj.key])
    assert source.attempts["GetObject"] == len(listing)


def test_s3_versioned_listing_pins_versions(
    s3_endpoint: S3Endpoint, bucket_name: str, make_s3_source: MakeS3Source
) -> None:
    s3_endpoint.create_bucket(bucket_name, versioned=True)
    client = s3_endpoint.client()
    for body in (b"v1", b"v2"):
        latest = client.put_object(Bucket=bucket_name, Key="cat.jpg", Body=body)["VersionId"]
    client.put_object(Bucket=bucket_name, Key="dog.jpg", Body=b"woof")
    client.delete_object(Bucket=bucket_name, Key="dog.jpg")  # its latest version is now a delete marker

    source = make_s3_source(bucket_name, page_size=1)
    (cat,) = source.list_objects()
    assert (cat.key, cat.version_id) == ("cat.jpg", latest)
    # The listing alone gave the version: no HEAD per object.
    assert set(source.attempts.snapshot()) == {"GetBucketVersioning", "ListObjectVersions"}

    client.put_object(Bucket=bucket_name, Key="cat.jpg", Body=b"v3 is newer")
    with source.fetch(cat) as fetched:  # bytes of the listed version, not the newest
        assert fetched.read_bytes() == b"v2" and fetched.sha256 == sha256_of(b"v2")


def test_s3_unversioned_read_refuses_bytes_changed_since_listing(
    s3_endpoint: S3Endpoint, bucket_name: str, make_s3_source: MakeS3Source
) -> None:
    s3_endpoint.create_bucket(bucket_name)
    put_objects(s3_endpoint.client(), bucket_name, {"a.txt": b"one"})
    source = make_s3_source(bucket_name)
    (obj,) = source.list_objects()
    put_objects(s3_endpoint.client(), bucket_name, {"a.txt": b"two"})  # same size, other bytes
    with pytest.raises(SourceChangedError, match="list the source again"):
        source.fetch(obj)
    assert source.attempts["GetObject"] == 1


@pytest.mark.parametrize("versioned", [False, True])
def test_diff_finds_new_overwritten_and_deleted_objects(
    s3_endpoint: S3Endpoint, bucket_name: str, make_s3_source: MakeS3Source, versioned: bool
) -> None:
    s3_endpoint.create_bucket(bucket_name, versioned=versioned)
    client = s3_endpoint.client()
    put_objects(client, bucket_name, {"keep.jpg": b"k", "overwrite.jpg": b"o1", "delete.jpg": b"d"})
    source = make_s3_source(bucket_name)

    first = list(source.list_objects())
    initial = diff_listing(first, published_media([]), source=source)
    assert [o.key for o in initial.new] == ["delete.jpg", "keep.jpg", "overwrite.jpg"] and initial.has_work

    other_source_row = {
        "media_id": "f" * 32,
        "uri": f"s3://{bucket_name}x/keep.jpg",
        "etag": "e",
        "version_id": None,
        "content_sha256": None,
        "status": "active",
    }
    table = published_media([(obj, "active") for obj in first], extra=[other_source_row])
    assert not diff_listing(source.list_objects(), table, source=source).has_work

    put_objects(client, bucket_name, {"overwrite.jpg": b"o2", "new.jpg": b"n"})
    client.delete_object(Bucket=bucket_name, Key="delete.jpg")
    diff = diff_listing(source.list_objects(), table, source=source)
    assert [o.key for o in diff.new] == ["new.jpg"]
    assert [o.key for o in diff.changed] == ["overwrite.jpg"]
    assert [o.key for o in diff.unchanged] == ["keep.jpg"]
    deleted_uri = f"s3://{bucket_name}/delete.jpg"
    assert [(d.media_id, d.uri) for d in diff.deleted] == [(media_id_for(deleted_uri), deleted_uri)]

    # An empty listing still reports every deletion under its root, and only those.
    everything_gone = diff_listing([], table, source=source.uri)
    assert len(everything_gone.deleted) == 3


def test_diff_treats_deleted_rows_as_absent_and_stays_in_its_root(tmp_path: Path) -> None:
    (tmp_path / "back.jpg").write_bytes(b"b")
    source = LocalFolderSource(tmp_path)
    (back,) = source.list_objects()
    sibling = tmp_path.as_uri() + "-sibling/x.jpg"  # shares the root's string prefix, not its folder
    table = published_media(
        [(back, "deleted")],
        extra=[
            {
                "media_id": media_id_for(sibling),
                "uri": sibling,
                "etag": "e",
                "version_id": None,
                "content_sha256": None,
                "status": "active",
            },
        ],
    )
    diff = diff_listing([back], table, source=source)
    assert diff.new == [back] and not diff.changed and not diff.deleted


# ---------------------------------------------------------------- injected faults


def test_503_and_slowdown_are_retried(
    s3_endpoint: S3Endpoint, bucket_name: str, make_s3_source: MakeS3Source, proxy: FaultProxy
) -> None:
    s3_endpoint.create_bucket(bucket_name)
    objects = {f"k{i}": f"body {i}".encode() for i in range(6)}
    put_objects(s3_endpoint.client(), bucket_name, objects)
    source = make_s3_source(bucket_name, endpoint_url=proxy.url, page_size=2, versioned=False)

    list_fault = proxy.add("slowdown", method="GET", target_contains="continuation-token", times=2)
    listing = list(source.list_objects())
    assert [o.key for o in listing] == sorted(objects)
    assert list_fault.hits == 2
    assert source.attempts["ListObjectsV2"] == 3 + 2  # three pages, the second one tried three times

    get_fault = proxy.add("503", method="GET", target_contains="/k3", times=2)
    with source.fetch(listing[3]) as fetched:
        assert fetched.sha256 == sha256_of(objects["k3"])
    assert get_fault.hits == 2 and source.attempts["GetObject"] == 3


def test_connection_dropped_mid_body_restarts_the_read(
    s3_endpoint: S3Endpoint, bucket_name: str, make_s3_source: MakeS3Source, proxy: FaultProxy
) -> None:
    s3_endpoint.create_bucket(bucket_name)
    data = os.urandom(256 * 1024)
    put_objects(s3_endpoint.client(), bucket_name, {"video.mp4": data})
    source = make_s3_source(bucket_name, endpoint_url=proxy.url)
    (obj,) = source.list_objects()

    mid_body = proxy.add("drop_mid_body", method="GET", target_contains="/video.mp4", times=1)
    before_answer = proxy.add("drop", method="GET", target_contains="/video.mp4", times=1)
    with source.fetch(obj) as fetched:
        assert fetched.sha256 == sha256_of(data) and fetched.size_bytes == len(data)
    assert (mid_body.hits, before_answer.hits) == (1, 1)
    assert source.attempts["GetObject"] == 3


def test_retries_run_out_as_transient_error(
    s3_endpoint: S3Endpoint, bucket_name: str, make_s3_source: MakeS3Source, proxy: FaultProxy
) -> None:
    s3_endpoint.create_bucket(bucket_name)
    put_objects(s3_endpoint.client(), bucket_name, {"a.jpg": b"a"})
    source = make_s3_source(
        bucket_name, endpoint_url=proxy.url, retry_policy=RetryPolicy(max_attempts=3, base_delay_s=0.01)
    )
    (obj,) = source.list_objects()
    proxy.add("slowdown", target_contains="/a.jpg", times=100)
    with pytest.raises(TransientSourceError, match="after 3 attempts") as raised:
        source.fetch(obj)
    assert raised.value.retryable and "SlowDown" in str(raised.value)
    assert source.attempts["GetObject"] == 3


def test_missing_bucket_and_access_denied_are_not_retried(
    bucket_name: str, make_s3_source: MakeS3Source, proxy: FaultProxy
) -> None:
    missing = make_s3_source(bucket_name)
    with pytest.raises(SourceError, match=bucket_name) as raised:
        list(missing.list_objects())
    assert not raised.value.retryable and "check the bucket name" in str(raised.value)
    assert missing.attempts.snapshot() == {"GetBucketVersioning": 1}

    denied = make_s3_source(bucket_name, endpoint_url=proxy.url)
    proxy.add("access_denied", times=1)
    with pytest.raises(SourceError, match="denied") as raised:
        list(denied.list_objects())
    assert not raised.value.retryable and bucket_name in str(raised.value)
    assert "credentials" in str(raised.value) and denied.attempts.snapshot() == {"GetBucketVersioning": 1}
