"""Export a snapshot to a folder of Parquet files pinned by a manifest, and verify it against its sources later.

The lake stores media by reference, so an export (a training set, an audit trail) is only as reproducible
as the objects it points at. The manifest therefore records every object version the snapshot refers to,
and :func:`verify_export` checks, by reading the bytes again, that the sources still hold them.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from mm_platform.annotations.schema import ANNOTATIONS
from mm_platform.errors import ConfigError, MMPlatformError, SourceChangedError
from mm_platform.lake import Lake, Snapshot
from mm_platform.lake.audit_log import log_events
from mm_platform.log import get_logger, kv
from mm_platform.snapshots._manifest import MANIFEST_NAME, ExportedTable, ExportManifest, PinnedAnnotationFile
from mm_platform.snapshots._pinned import PinnedObject, fetch_pinned, pinned_objects
from mm_platform.sources import ObjectInfo, S3Settings, Source, source_from_uri

__all__ = ["ExportManifest", "ObjectProblem", "VerifyReport", "export_snapshot", "verify_export"]

log = get_logger("mm_platform.snapshots.export")
TABLES_DIR = "tables"
_HASH_CHUNK = 1024 * 1024


def export_snapshot(lake: Lake, seq: int | None, target_dir: Path | str) -> ExportManifest:
    """Write snapshot ``seq`` (``None``: the latest) to ``target_dir``: ``tables/<name>.parquet`` per data
    table, then ``manifest.json``. The folder must be new or empty; the manifest is written last."""
    folder = Path(target_dir).expanduser().resolve()
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ConfigError(f"{folder} exists and is not an empty folder", hint="export into a new or empty folder")
    snapshot = lake.snapshot(seq=seq)
    (folder / TABLES_DIR).mkdir(parents=True, exist_ok=True)
    tables: dict[str, ExportedTable] = {}
    names = [name for name in snapshot.catalog if name in snapshot.table_versions]  # the tables it pins
    for name in names:
        rel = f"{TABLES_DIR}/{name}.parquet"
        dataset = snapshot.dataset(name)
        rows = 0
        # Batch by batch, fragment by fragment: memory stays flat whatever the table's size.
        with pq.ParquetWriter(folder / rel, dataset.schema, compression="zstd") as writer:
            for fragment in dataset.get_fragments():
                for batch in fragment.to_batches(schema=dataset.schema):
                    writer.write_batch(batch)
                    rows += batch.num_rows
        tables[name] = ExportedTable(
            file=rel,
            rows=rows,
            bytes=(folder / rel).stat().st_size,
            sha256=_file_sha256(folder / rel),
            delta_version=snapshot.version_of(name),
        )
    manifest = ExportManifest(
        lake=lake.location.root,
        seq=snapshot.seq,
        kind=snapshot.kind,
        partition=snapshot.partition,
        published_at=None if snapshot.published_at is None else snapshot.published_at.isoformat(),
        table_versions={name: snapshot.version_of(name) for name in names},
        tables=tables,
        objects=pinned_objects(snapshot),
        exported_at=datetime.now(UTC).isoformat(),
        annotation_files=_annotation_files(snapshot) if ANNOTATIONS.name in names else [],
        audit=log_events(lake, up_to_seq=snapshot.seq),
        branch=lake.branch_name,
    )
    manifest.write(folder)
    log.info("exported %s", kv(seq=snapshot.seq, folder=folder, objects=len(manifest.objects)))
    return manifest


@dataclass(frozen=True)
class ObjectProblem:
    """A pinned object the source no longer holds as it was."""

    key: str
    uri: str
    status: str
    """``missing`` (gone, or its pinned version is) or ``changed`` (other bytes under the key)."""
    detail: str


@dataclass(frozen=True)
class VerifyReport:
    """The outcome of :func:`verify_export`."""

    export_dir: str
    seq: int
    objects_checked: int
    problems: list[ObjectProblem] = field(default_factory=list)
    """Objects that are missing or changed, sorted by URI."""
    file_problems: list[str] = field(default_factory=list)
    """Exported Parquet files that are missing or do not hash as the manifest says."""
    newer: list[ObjectProblem] = field(default_factory=list)
    """Objects pinned by VersionId whose key now has a newer version (status ``newer``): not a problem — the
    export still reads its pinned version — but the source has moved on."""

    @property
    def passed(self) -> bool:
        return not self.problems and not self.file_problems

    @property
    def changed_keys(self) -> list[str]:
        return [p.key for p in self.problems if p.status == "changed"]

    @property
    def missing_keys(self) -> list[str]:
        return [p.key for p in self.problems if p.status == "missing"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "export_dir": self.export_dir,
            "seq": self.seq,
            "passed": self.passed,
            "objects_checked": self.objects_checked,
            "objects_ok": self.objects_checked - len(self.problems),
            "changed": self.changed_keys,
            "missing": self.missing_keys,
            "problems": [p.__dict__ for p in self.problems],
            "file_problems": self.file_problems,
            "newer": [p.__dict__ for p in self.newer],
        }


def verify_export(export_dir: Path | str, env: Mapping[str, str] | None = None, *, workers: int = 4) -> VerifyReport:
    """Check that every object the export pins is still in its source with the same bytes.

    An object pinned by VersionId is read by that VersionId: it passes while that version exists, even if a
    newer one was written since. Otherwise the key is looked up in a fresh listing and its current bytes are
    read (hashed while streaming) and compared with the pinned SHA-256; a differing ETag alone, with equal
    bytes (a local file touched, an identical re-upload), is not a change. S3 settings come from ``env``
    (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID`` …). The exported Parquet files are re-hashed too.
    """
    folder = Path(export_dir).expanduser().resolve()
    manifest = ExportManifest.read(folder)
    file_problems = _check_files(folder, manifest)
    settings = S3Settings.from_env(env or {})
    by_source: dict[str, list[PinnedObject]] = defaultdict(list)
    for obj in manifest.objects:
        by_source[obj.source].append(obj)
    problems: list[ObjectProblem] = []
    newer: list[ObjectProblem] = []
    for root, objects in by_source.items():
        found = _verify_source(root, objects, settings, workers)
        problems += [p for p in found if p.status != "newer"]
        newer += [p for p in found if p.status == "newer"]
    problems += [p for p in (_verify_annotation_file(f, settings) for f in manifest.annotation_files) if p]
    problems.sort(key=lambda p: p.uri)
    newer.sort(key=lambda p: p.uri)
    checked = len(manifest.objects) + len(manifest.annotation_files)
    report = VerifyReport(str(folder), manifest.seq, checked, problems, file_problems, newer)
    log.info("verified %s", kv(folder=folder, seq=manifest.seq, objects=len(manifest.objects), problems=len(problems)))
    return report


def _verify_source(root: str, objects: list[PinnedObject], settings: S3Settings, workers: int) -> list[ObjectProblem]:
    try:
        source = source_from_uri(root, s3_settings=settings)
        # Listed always: unpinned objects are read at their current version, pinned ones are compared with it.
        listing = {info.key: info for info in source.list_objects()}
    except MMPlatformError as exc:
        if exc.retryable:
            raise  # a throttled or unreachable store says nothing about the objects: let the caller retry
        return [ObjectProblem(o.key, o.uri, "missing", f"source {root} unavailable: {exc.message}") for o in objects]
    with source, ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        outcomes = pool.map(lambda obj: _verify_object(source, obj, listing), objects)
        found = [problem for problem in outcomes if problem is not None]
    return found + [n for n in (_newer_version(obj, listing) for obj in objects) if n is not None]


def _newer_version(obj: PinnedObject, listing: Mapping[str, ObjectInfo]) -> ObjectProblem | None:
    """A note when the key's current version is not the pinned one (a versioned bucket kept both)."""
    current = listing.get(obj.key)
    if obj.version_id is None or current is None or current.version_id in (None, obj.version_id):
        return None
    detail = f"pinned version {obj.version_id} still verifies; the key's current version is {current.version_id}"
    return ObjectProblem(obj.key, obj.uri, "newer", detail)


def _verify_object(source: Source, obj: PinnedObject, listing: Mapping[str, ObjectInfo]) -> ObjectProblem | None:
    if obj.version_id is not None:
        target: ObjectInfo = obj.object_info()
    else:
        current = listing.get(obj.key)
        if current is None:
            return ObjectProblem(obj.key, obj.uri, "missing", "no object under this key any more")
        target = current
    try:
        with fetch_pinned(source, target, obj.sha256):
            return None
    except SourceChangedError as exc:
        if obj.version_id is not None:
            return ObjectProblem(obj.key, obj.uri, "missing", f"version {obj.version_id}: {exc.message}")
        return ObjectProblem(obj.key, obj.uri, "changed", exc.message)
    except MMPlatformError as exc:
        if exc.retryable:
            raise
        return ObjectProblem(obj.key, obj.uri, "missing", exc.message)


def _annotation_files(snapshot: Snapshot) -> list[PinnedAnnotationFile]:
    """The annotation files the snapshot's annotation rows rest on (a carried-over row keeps its file)."""
    columns = ["source_file", "source_version", "source_sha256"]
    rows = snapshot.table(ANNOTATIONS.name, columns=columns).group_by(columns).aggregate([]).to_pylist()
    pins = [PinnedAnnotationFile(r["source_file"], r["source_version"], r["source_sha256"]) for r in rows]
    return sorted(pins, key=lambda f: (f.uri, f.version))


def _verify_annotation_file(pin: PinnedAnnotationFile, settings: S3Settings) -> ObjectProblem | None:
    """An annotation file passes while the bytes at its URI still hash as when they were attached."""
    from mm_platform.annotations.read import current_sha256

    try:
        sha256 = current_sha256(pin.uri, s3_settings=settings)
    except MMPlatformError as exc:
        if exc.retryable:
            raise
        return ObjectProblem(pin.uri, pin.uri, "missing", f"annotation file: {exc.message}")
    if sha256 != pin.sha256:
        detail = f"annotation file: sha256 {sha256[:12]}…, attached as {pin.sha256[:12]}… (version {pin.version})"
        return ObjectProblem(pin.uri, pin.uri, "changed", detail)
    return None


def _check_files(folder: Path, manifest: ExportManifest) -> list[str]:
    problems = []
    for name, table in manifest.tables.items():
        path = folder / table.file
        if not path.is_file():
            problems.append(f"{name}: {table.file} is missing")
        elif _file_sha256(path) != table.sha256:
            problems.append(f"{name}: {table.file} does not match its SHA-256 in {MANIFEST_NAME}")
    return problems


def _file_sha256(path: Path) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as src:
        while chunk := src.read(_HASH_CHUNK):
            hasher.update(chunk)
    return hasher.hexdigest()
