"""Where a lake lives: a local folder or ``s3://bucket/prefix``, and the few file operations the lake needs.

Delta tables are read and committed by delta-rs (with ``storage_options``); Parquet files we stage and the
small JSON manifests we keep go through a pyarrow file system pointed at the same place.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from mm_platform.errors import ConfigError, StorageError

# The environment variables delta-rs and boto3 both understand; read only at the CLI boundary.
S3_ENV_KEYS = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_ALLOW_HTTP")


@dataclass(frozen=True)
class LakeLocation:
    """The root of a lake and how to reach it."""

    root: str
    """An absolute local path, or ``s3://bucket/prefix``."""
    storage_options: Mapping[str, str] = field(default_factory=dict)
    """delta-rs storage options (for S3: endpoint, credentials, region, ``AWS_ALLOW_HTTP``)."""

    @classmethod
    def from_uri(cls, uri: str, env: Mapping[str, str] | None = None) -> LakeLocation:
        """Build a location from a URI; S3 settings come from ``env`` (the caller's environment)."""
        if uri.startswith("s3://"):
            env = env or {}
            options = {key: env[key] for key in S3_ENV_KEYS if env.get(key)}
            if "AWS_REGION" not in options and env.get("AWS_DEFAULT_REGION"):
                options["AWS_REGION"] = env["AWS_DEFAULT_REGION"]
            if options.get("AWS_ENDPOINT_URL", "").startswith("http://"):
                options.setdefault("AWS_ALLOW_HTTP", "true")
            return cls(root=uri.rstrip("/"), storage_options=options)
        if "://" in uri and not uri.startswith("file://"):
            raise ConfigError(f"unsupported lake URI {uri!r}", hint="use a local path or s3://bucket/prefix")
        path = Path(uri.removeprefix("file://")).expanduser().resolve()
        return cls(root=str(path))

    @property
    def is_s3(self) -> bool:
        return self.root.startswith("s3://")

    def uri(self, *parts: str) -> str:
        """A URI (for delta-rs) under the root."""
        return "/".join([self.root, *parts])

    def fs_path(self, *parts: str) -> str:
        """A path under the root for :attr:`fs` (S3 paths drop the scheme)."""
        return self.uri(*parts).removeprefix("s3://")

    @cached_property
    def fs(self) -> pafs.FileSystem:
        if not self.is_s3:
            return pafs.LocalFileSystem()
        opts = self.storage_options
        endpoint = opts.get("AWS_ENDPOINT_URL")
        scheme = "https"
        if endpoint and endpoint.startswith("http://"):
            scheme = "http"
        if endpoint:
            endpoint = endpoint.split("://", 1)[-1]
        return pafs.S3FileSystem(
            access_key=opts.get("AWS_ACCESS_KEY_ID"),
            secret_key=opts.get("AWS_SECRET_ACCESS_KEY"),
            region=opts.get("AWS_REGION", "us-east-1"),
            endpoint_override=endpoint,
            scheme=scheme,
        )

    # --- small JSON documents (stage manifests) -------------------------------------------------------

    def write_json(self, rel_path: str, document: Mapping[str, Any]) -> None:
        """Write a JSON document so that a reader sees all of it or nothing."""
        self.write_bytes(rel_path, json.dumps(document, sort_keys=True, default=str).encode())

    def write_bytes(self, rel_path: str, payload: bytes, *, durable: bool = True) -> None:
        """Write a small file so that a reader sees all of it or nothing.

        ``durable=False`` skips the fsync, for files that are only a cache of what Delta already holds.
        """
        target = self.fs_path(rel_path)
        try:
            if self.is_s3:
                # A single PUT is atomic on S3.
                with self.fs.open_output_stream(target) as out:
                    out.write(payload)
                return
            os.makedirs(os.path.dirname(target), exist_ok=True)
            tmp = f"{target}.{uuid.uuid4().hex}.tmp"
            with open(tmp, "wb") as out:
                out.write(payload)
                out.flush()
                if durable:
                    os.fsync(out.fileno())
            os.replace(tmp, target)
        except OSError as exc:
            raise storage_write_error(self.uri(rel_path), exc) from exc

    def write_bytes_deferred(self, rel_path: str, payload: bytes) -> tuple[str, str] | None:
        """:meth:`write_bytes`, made durable and visible later, many files at once, by :meth:`publish_deferred`
        (one journal commit for all of them instead of one per file). Returns the ``(temporary, final)`` paths
        to publish; ``None`` on S3, where the single PUT was already both."""
        if self.is_s3:
            self.write_bytes(rel_path, payload)
            return None
        target = self.fs_path(rel_path)
        tmp = f"{target}.{uuid.uuid4().hex}.tmp"
        try:
            try:
                out = open(tmp, "wb")  # noqa: SIM115 - closed below
            except FileNotFoundError:
                os.makedirs(os.path.dirname(target), exist_ok=True)
                out = open(tmp, "wb")  # noqa: SIM115
            with out:
                out.write(payload)
        except OSError as exc:
            raise storage_write_error(self.uri(rel_path), exc) from exc
        return tmp, target

    @staticmethod
    def publish_deferred(files: list[tuple[str, str]]) -> None:
        """Make files from :meth:`write_bytes_deferred` durable, then visible under their names (each whole or
        not at all), then the renames durable."""
        try:
            for tmp, _ in files:
                fd = os.open(tmp, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            for tmp, target in files:
                os.replace(tmp, target)
            for folder in {os.path.dirname(target) for _, target in files}:
                fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        except OSError as exc:
            raise storage_write_error(files[0][1] if files else "?", exc) from exc

    def read_json(self, rel_path: str) -> dict[str, Any] | None:
        """Read a JSON document, or None when it does not exist."""
        payload = self.read_bytes(rel_path)
        return None if payload is None else dict(json.loads(payload))

    def read_bytes(self, rel_path: str) -> bytes | None:
        """Read a small file whole, or None when it does not exist."""
        try:
            with self.fs.open_input_stream(self.fs_path(rel_path)) as src:
                return bytes(src.read())
        except FileNotFoundError:
            return None
        except OSError as exc:
            if "does not exist" in str(exc) or "NoSuchKey" in str(exc) or "Path does not exist" in str(exc):
                return None
            raise StorageError(f"could not read {self.uri(rel_path)}: {exc}") from exc

    def exists(self, rel_path: str) -> bool:
        return bool(self.fs.get_file_info(self.fs_path(rel_path)).type != pafs.FileType.NotFound)

    def list_files(self, rel_dir: str) -> list[pafs.FileInfo]:
        selector = pafs.FileSelector(self.fs_path(rel_dir), recursive=True, allow_not_found=True)
        return [info for info in self.fs.get_file_info(selector) if info.type == pafs.FileType.File]

    def files_under(self, rel_dir: str) -> Iterator[tuple[str, pafs.FileInfo]]:
        """(path relative to ``rel_dir``, info) of every file under it, at any depth."""
        prefix = self.fs_path(rel_dir).rstrip("/") + "/"
        for info in self.list_files(rel_dir):
            yield info.path[len(prefix) :] if info.path.startswith(prefix) else info.base_name, info

    def delete_file(self, rel_path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.delete_file(self.fs_path(rel_path))


_STORAGE_FAILURES = (
    (errno.ENOSPC, "no space is left on the device", "free space where the lake lives"),
    (errno.EDQUOT, "the disk quota is exceeded", "free space or raise the quota"),
    (errno.EROFS, "the file system is read-only", "make the lake's storage writable, or point --lake elsewhere"),
    (errno.EACCES, "permission is denied", "check the permissions of the lake's folder"),
)


def storage_write_error(where: str, exc: BaseException) -> StorageError:
    """A write that failed, as one clear error: which file, what the storage said, what to do.

    The errno may sit on the exception or on what caused it (pyarrow raises a ``RuntimeError`` on close
    after the ``OSError`` of the failed write).
    """
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    for failure in chain:
        code = getattr(failure, "errno", None) or _errno_in(str(failure))
        for known, what, hint in _STORAGE_FAILURES:
            if code == known:
                return StorageError(f"could not write {where}: {what}", hint=f"{hint}; nothing was published")
    return StorageError(f"could not write {where}: {exc}", hint="check the lake's storage; nothing was published")


def _errno_in(message: str) -> int | None:
    """pyarrow reports the errno in its message only: ``[errno 28] No space left on device``."""
    match = re.search(r"\[errno (\d+)\]", message, re.IGNORECASE)
    return int(match.group(1)) if match else None
