"""Erasure, last step: search every file under the lake root for what still names an erased object.

Bytes, every string of every Parquet file (however nested; pages are compressed) and every string of every
JSON document. ``erasures`` keeps the media id by design (the audit says *what* was erased).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from mm_platform.erasure.table import ERASURES
from mm_platform.lake import LakeLocation


@dataclass
class Tokens:
    """What identifies the erased objects; URIs and hashes are collected from the rows about to be deleted."""

    media_ids: set[str]
    uris: set[str] = field(default_factory=set)
    hashes: set[str] = field(default_factory=set)

    def collect(self, rows: pa.Table) -> None:
        for name in rows.column_names:
            values = {v for v in rows[name].to_pylist() if v}
            if name == "uri":
                self.uris |= values
            elif name.endswith("sha256"):
                self.hashes |= values

    def named(self, skip_ids: bool = False) -> list[tuple[str, str]]:
        """(kind, token) pairs; the kind is what a report may say, the token never leaves this process."""
        pairs = [("uri", u) for u in self.uris] + [("content_sha256", h) for h in self.hashes]
        return pairs if skip_ids else [("media_id", m) for m in self.media_ids] + pairs


def scan(location: LakeLocation, tokens: Tokens) -> list[str]:
    """``path: kinds`` for every file under the lake root that still names an erased object."""
    root = location.fs_path().rstrip("/") + "/"
    selector = pafs.FileSelector(root, recursive=True, allow_not_found=True)
    found: list[str] = []
    for info in location.fs.get_file_info(selector):
        if info.type != pafs.FileType.File:
            continue
        rel = info.path[len(root) :] if info.path.startswith(root) else info.path
        # The audit table names *what* was erased by media id (never the URI or content) by design.
        pairs = tokens.named(skip_ids=rel.startswith(f"{ERASURES.name}/"))
        with location.fs.open_input_stream(info.path) as src:
            data = src.read()
        kinds = {kind for kind, token in pairs if token.encode("utf-8") in data}
        if rel.endswith(".parquet"):
            with contextlib.suppress(pa.ArrowInvalid):  # a truncated file: its bytes were searched above
                kinds |= _parquet_mentions(pq.read_table(pa.BufferReader(data)), pairs)
        else:
            with contextlib.suppress(ValueError):
                kinds |= {kind for kind, token in pairs if mentions(json.loads(data), [token])}
        if kinds:
            found.append(f"{rel}: {', '.join(sorted(kinds))}")
    return found


def _parquet_mentions(table: pa.Table, pairs: Sequence[tuple[str, str]]) -> set[str]:
    """Kinds of token found in any string or binary value, however deeply nested (Parquet pages are compressed)."""
    kinds: set[str] = set()
    for column in table.columns:
        for chunk in column.chunks:
            for leaf in _string_leaves(chunk):
                for kind, token in pairs:
                    if kind not in kinds and pc.any(pc.match_substring(leaf, token)).as_py():
                        kinds.add(kind)
    return kinds


_STRING_TYPES = (pa.types.is_string, pa.types.is_large_string, pa.types.is_binary, pa.types.is_large_binary)


def _string_leaves(array: pa.Array) -> Iterator[pa.Array]:
    kind = array.type
    if pa.types.is_dictionary(kind):
        yield from _string_leaves(array.dictionary)
    elif pa.types.is_struct(kind):
        for index in range(kind.num_fields):
            yield from _string_leaves(array.field(index))
    elif pa.types.is_map(kind):
        yield from _string_leaves(array.keys)
        yield from _string_leaves(array.items)
    elif pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
        yield from _string_leaves(array.flatten())
    elif any(check(kind) for check in _STRING_TYPES):
        yield array


def mentions(doc: Any, tokens: Sequence[str]) -> bool:
    """Whether any string inside a JSON document (keys, values, nested JSON text) contains a token."""
    if isinstance(doc, str):
        return any(token in doc for token in tokens)
    if isinstance(doc, dict):
        return any(mentions(k, tokens) or mentions(v, tokens) for k, v in doc.items())
    if isinstance(doc, list):
        return any(mentions(v, tokens) for v in doc)
    return False
