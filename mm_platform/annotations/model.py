"""Values shared by reading, matching, validating and attaching annotation files."""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal, get_args

from mm_platform.errors import ConfigError, MMPlatformError

__all__ = [
    "MATCH_KINDS",
    "AttachOptions",
    "AttachResult",
    "FileRow",
    "FileVersion",
    "MatchKind",
    "NothingAttachedError",
    "RowProblem",
    "RowsRejectedError",
    "check_set_name",
]

MatchKind = Literal["uri", "key", "sha256"]
MATCH_KINDS: tuple[str, ...] = get_args(MatchKind)
_SET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}")


@dataclass(frozen=True)
class FileVersion:
    """The exact version of an annotation file that was read."""

    uri: str
    """``file:///abs/path.csv`` or ``s3://bucket/key.csv``."""
    version: str
    """S3: the VersionId (versioned bucket) or the ETag. Local: ``<size>-<mtime_ns>``, like a folder listing."""
    sha256: str
    """SHA-256 of the bytes that were parsed."""
    size_bytes: int
    format: str
    """``csv``, ``tsv``, ``parquet``, ``jsonl`` or ``json`` (an array of objects)."""


@dataclass(frozen=True)
class FileRow:
    """One record of the file, with its position and its values under normalised column names."""

    row: int
    """1-based record number (a CSV header is not a record; blank lines are not records)."""
    line: int | None
    """CSV / JSON Lines: the line the record starts on; ``None`` for Parquet and JSON arrays."""
    values: dict[str, Any]
    """Column → value; CSV values are text (``None`` for an empty cell), others keep their JSON/Arrow type."""
    raw: str
    """The record as the file holds it (JSON of a Parquet row), kept with a reject so it can be fixed."""


@dataclass(frozen=True)
class RowProblem:
    """Why one file row was kept out of the revision."""

    row: int
    reason: str
    """One of ``mm_platform.annotations.schema.REJECT_REASONS``."""
    detail: str
    """What is wrong, in a sentence that names the column and the value."""
    line: int | None = None
    media_id: str | None = None
    """The media the row matched, when it matched one (erasure removes the reject with the media)."""
    raw: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "row": self.row,
            "line": self.line,
            "reason": self.reason,
            "detail": self.detail,
            "media_id": self.media_id,
        }


@dataclass(frozen=True)
class AttachOptions:
    """How to attach one file as a revision of an annotation set."""

    set_name: str
    """The annotation set: letters, digits, ``_``, ``.``, ``-`` (at most 100)."""
    match: MatchKind | None = None
    """What the key column holds: a media URI, an object key or a content SHA-256; ``None``: the column's name
    says (``uri`` / ``key`` / ``sha256``), or for ``--key-column`` its values do."""
    key_column: str | None = None
    """The column that names the media; ``None``: the column named like ``match``."""
    id_column: str | None = None
    """A column that tells several annotations of one media apart (boxes); ``None``: one per media."""
    producer: str = "human"
    """The lineage ``producer`` of the rows: who made the labels (``human``, a vendor, a model id)."""
    vocabulary: tuple[str, ...] | None = None
    """Allowed labels; ``None`` keeps the set's declared vocabulary (if any), ``()`` drops it."""
    strict: bool = False
    """Publish nothing when any row is rejected."""

    def __post_init__(self) -> None:
        check_set_name(self.set_name)
        if self.match is not None and self.match not in MATCH_KINDS:
            raise ConfigError(f"cannot match by {self.match!r}", hint=f"--match is one of {', '.join(MATCH_KINDS)}")
        if not self.producer.strip():
            raise ConfigError("the producer must not be empty", hint="e.g. --producer human")


def check_set_name(name: str) -> None:
    if not _SET_NAME.fullmatch(name):  # fullmatch: `$` would accept a trailing newline
        raise ConfigError(
            f"invalid annotation set name {name!r}",
            hint="use letters, digits, '_', '.' and '-' (at most 100, starting with a letter or digit)",
        )


class NothingAttachedError(MMPlatformError):
    """No row of the file could be attached; nothing was published."""

    def __init__(self, message: str, *, problems: tuple[RowProblem, ...], hint: str) -> None:
        self.problems = problems
        super().__init__(message, hint=hint)


class RowsRejectedError(MMPlatformError):
    """``strict``: some rows were rejected, so nothing was published."""

    def __init__(self, message: str, *, problems: tuple[RowProblem, ...]) -> None:
        self.problems = problems
        super().__init__(message, hint="fix the rows listed (or drop --strict to attach the rest)")


@dataclass(frozen=True)
class AttachResult:
    """What attaching a file did. ``rows_attached + rows_rejected == rows_in_file``: nothing is dropped."""

    set_name: str
    revision: int
    """The set's revision after this call (the previous one when ``noop``)."""
    seq: int | None
    """The snapshot that holds the revision (``None`` until published)."""
    noop: bool
    """The same file gave the same revision again: nothing was published."""
    file: FileVersion
    match_by: str
    key_column: str
    id_column: str | None
    rows_in_file: int
    rows_attached: int
    rows_rejected: int
    annotations: int
    """The set's annotation rows in this revision (a row matched by content hash may attach to several media)."""
    added: int
    changed: int
    removed: int
    unchanged: int
    rejects: tuple[RowProblem, ...] = ()
    new_columns: tuple[str, ...] = ()
    """Extra columns this revision added to ``annotations`` (schema evolution)."""
    vocabulary: tuple[str, ...] | None = None

    def reasons(self) -> dict[str, int]:
        return dict(sorted(Counter(p.reason for p in self.rejects).items()))

    def to_dict(self) -> dict[str, Any]:
        doc = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("rejects", "file")}
        doc["file"] = dataclasses.asdict(self.file)
        doc["reasons"] = self.reasons()
        doc["rejects"] = [p.to_dict() for p in self.rejects]
        return doc
