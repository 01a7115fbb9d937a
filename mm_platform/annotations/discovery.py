"""What an annotation-file sensor tick decides, as a pure function of (listing, cursor, attached versions).

Every CSV / TSV / Parquet / JSON Lines file under the configured prefix is an annotation set, named by its
path below the prefix without the extension (``teams/pets.csv`` → ``teams.pets``). A file version that is
neither requested already (the cursor) nor attached already (the lake's ``annotation_sets``) becomes a run
request for its set; the run reads the file and publishes the set's next revision.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from mm_platform.annotations.read import FORMATS
from mm_platform.sources import ObjectInfo, parse_s3_uri

__all__ = ["AnnotationCursor", "AnnotationRequest", "decide_annotation_files", "file_version", "set_name_for"]


@dataclass(frozen=True)
class AnnotationRequest:
    """Attach this file version as the next revision of this set."""

    set_name: str
    file: str
    version: str

    @property
    def run_key(self) -> str:
        return f"{self.set_name}@{self.version}"


@dataclass(frozen=True)
class AnnotationCursor:
    """File versions requested so far (uri → version)."""

    requested: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"requested": self.requested}, sort_keys=True)

    @classmethod
    def from_json(cls, raw: str | None) -> AnnotationCursor:
        return cls(dict(json.loads(raw).get("requested", {}))) if raw else cls()


def file_version(info: ObjectInfo) -> str:
    """The version an attached revision records for this listing entry (see ``FileVersion.version``)."""
    return info.version_id or info.etag or ""


def set_name_for(info: ObjectInfo) -> str | None:
    """The set a listed file feeds, or None when it is not an annotation file."""
    path = PurePosixPath(info.key)
    if path.suffix.lower() not in FORMATS or path.name.startswith("."):
        return None
    key = info.key
    if info.source.startswith("s3://"):
        prefix = parse_s3_uri(info.source)[1]
        key = key[len(prefix) :] if key.startswith(prefix) else key
    stem = str(PurePosixPath(key.strip("/")).with_suffix(""))
    name = re.sub(r"[^A-Za-z0-9_.\-]+", "-", stem.replace("/", ".")).strip(".-")
    return name[:100] or None


def decide_annotation_files(
    listing: Iterable[ObjectInfo], cursor: AnnotationCursor, attached: frozenset[tuple[str, str]] = frozenset()
) -> tuple[list[AnnotationRequest], AnnotationCursor]:
    """Run requests for new file versions (one per set: its newest file), and the next cursor."""
    newest: dict[str, ObjectInfo] = {}
    listed: dict[str, str] = {}
    for info in listing:
        name = set_name_for(info)
        if name is None:
            continue
        listed[info.uri] = file_version(info)
        if name not in newest or info.last_modified > newest[name].last_modified:
            newest[name] = info
    requests = [
        AnnotationRequest(name, info.uri, file_version(info))
        for name, info in sorted(newest.items())
        if cursor.requested.get(info.uri) != file_version(info) and (info.uri, file_version(info)) not in attached
    ]
    requested = {uri: version for uri, version in cursor.requested.items() if uri in listed}
    requested.update({r.file: r.version for r in requests})
    return requests, AnnotationCursor(requested)
