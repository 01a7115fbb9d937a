"""Ingest batches: bounded sets of object versions, the unit of work, publish and Dagster partition.

A batch's manifest is stored in the lake so a batch can be re-run exactly, even after the source has moved
on: ``_batches/<id>.parquet`` for a batch planned from a listing (the listing's columns, no Python object per
file), ``_batches/<id>.json`` for event and erasure batches. Never one batch per file: Dagster's UI degrades
past ~25k partitions.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any, Literal

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mm_platform.errors import ConfigError
from mm_platform.lake.storage import LakeLocation
from mm_platform.sources import DeletedMedia, ObjectInfo
from mm_platform.sources.listing import LISTING_SCHEMA, objects_of

BATCHES_DIR = "_batches"
_OBJECT_FIELDS = tuple(f.name for f in fields(ObjectInfo))
_object_values = attrgetter(*_OBJECT_FIELDS)
DEFAULT_MAX_OBJECTS = 1000

BatchKind = Literal["ingest", "erasure"]
INGEST_BATCH: BatchKind = "ingest"
"""New or overwritten objects: staged through the pipeline, published as a ``lake.Write``."""
ERASURE_BATCH: BatchKind = "erasure"
"""Objects deleted at the source: published as a ``lake.Erase`` (whose log kind is ``"erase"``). The batch kind
names what the batch holds and starts its id; the operation names what its publish does."""


@dataclass(frozen=True)
class BatchManifest:
    """What one batch covers: object versions to ingest, or media to erase."""

    batch_id: str
    kind: BatchKind
    source: str
    objects: tuple[ObjectInfo, ...] = ()
    deleted: tuple[DeletedMedia, ...] = ()
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    listed: pa.Table | None = field(default=None, compare=False, repr=False)
    """A batch planned from a listing: its objects in columns (:data:`LISTING_SCHEMA`) instead of ``objects``,
    saved as Parquet as they are. :func:`load_manifest` always gives ``objects``."""

    @property
    def size(self) -> int:
        """Objects to ingest plus media to erase."""
        return (self.listed.num_rows if self.listed is not None else len(self.objects)) + len(self.deleted)

    def object_keys(self) -> tuple[str, ...]:
        if self.listed is not None:
            return tuple(self.listed.column("key").to_pylist())
        return tuple(o.key for o in self.objects)

    def to_json(self, *, with_objects: bool = True) -> dict[str, Any]:
        if not with_objects:
            return {"batch_id": self.batch_id, "kind": self.kind, "source": self.source, "created_at": self.created_at}
        return {
            "batch_id": self.batch_id,
            "kind": self.kind,
            "source": self.source,
            "created_at": self.created_at,
            # Field names looked up once (not per object): a million-object plan serializes every one.
            "objects": [_object_doc(o) for o in self.objects],
            "deleted": [{"media_id": d.media_id, "uri": d.uri} for d in self.deleted],
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> BatchManifest:
        # Only the fields (a saved object may also carry its derived media_id).
        objects = tuple(
            ObjectInfo(
                **{k: o[k] for k in _OBJECT_FIELDS if k in o}
                | {"last_modified": datetime.fromisoformat(o["last_modified"])}
            )
            for o in doc["objects"]
        )
        return cls(
            batch_id=doc["batch_id"],
            kind=doc["kind"],
            source=doc["source"],
            objects=objects,
            deleted=tuple(DeletedMedia(**d) for d in doc["deleted"]),
            created_at=doc["created_at"],
        )


def _object_doc(obj: ObjectInfo) -> dict[str, Any]:
    doc = dict(zip(_OBJECT_FIELDS, _object_values(obj), strict=True))
    doc["last_modified"] = obj.last_modified.isoformat()
    return doc


def _batch_id(kind: BatchKind, keys: Sequence[str]) -> str:
    digest = hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()[:12]
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return f"{kind}-{stamp}-{digest}"


def ingest_batches(
    source: str, objects: Sequence[ObjectInfo], max_objects: int = DEFAULT_MAX_OBJECTS
) -> list[BatchManifest]:
    """Split object versions into bounded ingest batches, in key order."""
    ordered = sorted(objects, key=lambda o: o.key)
    batches = []
    for start in range(0, len(ordered), max_objects):
        chunk = tuple(ordered[start : start + max_objects])
        keys = [f"{o.uri}\0{o.etag}\0{o.version_id}" for o in chunk]
        batches.append(
            BatchManifest(batch_id=_batch_id(INGEST_BATCH, keys), kind=INGEST_BATCH, source=source, objects=chunk)
        )
    return batches


def listed_batch(source: str, listed: pa.Table) -> BatchManifest:
    """One ingest batch of listed objects (:data:`LISTING_SCHEMA`, key order), kept in columns."""
    etag, version = (pc.fill_null(listed.column(name), "") for name in ("etag", "version_id"))
    lines = pc.binary_join_element_wise(listed.column("uri"), etag, version, "\0")
    digest = hashlib.sha256("\n".join(lines.to_pylist()).encode()).hexdigest()[:12]
    batch_id = f"{INGEST_BATCH}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}-{digest}"
    return BatchManifest(batch_id=batch_id, kind=INGEST_BATCH, source=source, listed=listed)


def erasure_batch(source: str, deleted: Sequence[DeletedMedia]) -> BatchManifest:
    keys = [d.media_id for d in deleted]
    return BatchManifest(
        batch_id=_batch_id(ERASURE_BATCH, keys), kind=ERASURE_BATCH, source=source, deleted=tuple(deleted)
    )


def save_manifest(location: LakeLocation, manifest: BatchManifest) -> None:
    """A listed batch as Parquet (its header in the schema's metadata); any other as the JSON that
    :meth:`BatchManifest.to_json` describes, encoded by orjson straight from the dataclasses."""
    location.write_bytes(*_manifest_file(manifest))


def _manifest_file(manifest: BatchManifest) -> tuple[str, bytes]:
    """Where a manifest lives in the lake, and its bytes."""
    if manifest.listed is not None:
        return f"{BATCHES_DIR}/{manifest.batch_id}.parquet", _parquet_manifest(manifest)
    doc = manifest.to_json(with_objects=False) | {"objects": manifest.objects, "deleted": manifest.deleted}
    return f"{BATCHES_DIR}/{manifest.batch_id}.json", orjson.dumps(doc)


def _parquet_manifest(manifest: BatchManifest) -> bytes:
    assert manifest.listed is not None
    header = orjson.dumps(manifest.to_json(with_objects=False))
    table = manifest.listed.cast(LISTING_SCHEMA).replace_schema_metadata({MANIFEST_HEADER: header})
    # An Arrow sink, not a Python file: the encoding then runs without the GIL, beside the listing.
    sink = pa.BufferOutputStream()
    # Snappy, no dictionaries, no statistics: a tenth of zstd's time and smaller than with dictionaries (keys
    # and URIs are all distinct); a plan writes a thousand of these per 1M objects.
    pq.write_table(table, sink, compression="snappy", use_dictionary=False, write_statistics=False)
    return bytes(sink.getvalue())


MANIFEST_HEADER = b"mm_platform.batch"
"""The Parquet metadata key of a listed batch's header (batch id, kind, source, creation time)."""


def read_parquet_manifest(payload: bytes) -> tuple[dict[str, Any], pa.Table]:
    """The header and the objects' table of a listed batch's Parquet manifest."""
    table = pq.read_table(pa.BufferReader(payload))
    header = orjson.loads((table.schema.metadata or {})[MANIFEST_HEADER])
    return header, table.replace_schema_metadata(None)


class ManifestWriter:
    """Saves manifests on a background thread, so a long listing goes on while earlier batches are encoded and
    written. A local lake's files are made durable and visible together by :meth:`wait` (or leaving the
    ``with`` block), which returns once every manifest is durable and raises the first error: callers save the
    ledger, or delete SQS messages, only after it. One fsync per file as it came cost a journal commit each,
    a second per thousand batches on a virtual disk, and their kernel work competed with the listing."""

    def __init__(self, location: LakeLocation) -> None:
        self.location = location
        # Local: one thread (the encoding releases the GIL; more threads only traded it more often). S3: a PUT
        # is a round trip, so several are in flight.
        self._pool = ThreadPoolExecutor(4 if location.is_s3 else 1, thread_name_prefix="mmp-manifests")
        self._futures: list[Future[tuple[str, str] | None]] = []
        self._written: list[tuple[str, str]] = []

    def save(self, manifest: BatchManifest) -> None:
        # A bounded number wait: a writer slower than the listing must not hold a million objects.
        while len(self._futures) >= _IN_FLIGHT:
            self._keep(self._futures.pop(0).result())
        self._futures.append(self._pool.submit(self._write, manifest))

    def _write(self, manifest: BatchManifest) -> tuple[str, str] | None:
        return self.location.write_bytes_deferred(*_manifest_file(manifest))

    def _keep(self, written: tuple[str, str] | None) -> None:
        if written is not None:
            self._written.append(written)

    def wait(self) -> None:
        futures, self._futures = self._futures, []
        for future in futures:
            self._keep(future.result())
        self.location.publish_deferred(self._written)
        self._written = []

    def __enter__(self) -> ManifestWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if exc_type is None:
                self.wait()
        finally:
            self._pool.shutdown(wait=True)
            self._discard_unpublished()

    def _discard_unpublished(self) -> None:
        """After an error: delete what was written but not published, so no temporary file is left behind."""
        for future in self._futures:
            with contextlib.suppress(Exception):
                self._keep(future.result())
        for tmp, _ in self._written:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        self._futures, self._written = [], []


_IN_FLIGHT = 8
"""Manifests queued for the writers at most."""


def load_manifest(location: LakeLocation, batch_id: str) -> BatchManifest:
    doc = location.read_json(f"{BATCHES_DIR}/{batch_id}.json")
    if doc is not None:
        return BatchManifest.from_json(doc)
    payload = location.read_bytes(f"{BATCHES_DIR}/{batch_id}.parquet")
    if payload is None:
        raise ConfigError(
            f"no manifest for batch {batch_id} in {location.root}",
            hint="batches are created by the sensors or `mmp ingest`; check the lake (--lake / MM_LAKE)",
        )
    header, table = read_parquet_manifest(payload)
    objects = tuple(objects_of(table, header["source"]))
    return replace(BatchManifest.from_json(header | {"objects": [], "deleted": []}), objects=objects)
