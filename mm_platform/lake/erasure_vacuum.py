"""Erasure, second half: make erased objects unreadable through the lake's history (``mmp vacuum-erased``).

What ``erase`` published hides the object from every snapshot from then on; this expires the older
snapshots and deletes or purges every file that could still name it, then verifies (the steps are listed
in ``mm_platform.lake.erasure``'s docstring).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from deltalake import DeltaTable
from deltalake.exceptions import DeltaError, TableNotFoundError

from mm_platform.errors import MMPlatformError
from mm_platform.ids import media_id_for
from mm_platform.lake.erasure import (
    ERASE_KIND,
    ERASURES,
    ErasedRowsPresentError,
    ensure_audit_table,
)
from mm_platform.lake.files import delta_dataset, table_file_paths
from mm_platform.lake.maintenance import purge_log
from mm_platform.lake.publish_log import VACUUMED, LogEntry, LogState
from mm_platform.lake.schemas import DATA_TABLES
from mm_platform.lake.snapshot import Snapshot, select_snapshot
from mm_platform.lake.stage import STAGES_DIR, load_stage
from mm_platform.lake.storage import LakeLocation
from mm_platform.lake.table_state import prune_states
from mm_platform.log import get_logger, kv

if TYPE_CHECKING:
    from mm_platform.lake.lake import Lake

__all__ = ["ErasureVacuumPlan", "ErasureVacuumReport", "plan_vacuum_erased", "vacuum_erased"]

log = get_logger("mm_platform.lake.erasure")

BATCHES_DIR = "_batches"  # mm_platform.ingest.batches.BATCHES_DIR (the lake does not import ingest)
INDEX_DIR = "_indexes"  # mm_platform.search.index_store.INDEX_DIR: a cache of vectors and media ids
_TOKEN_COLUMNS = ("uri", "content_sha256", "source_content_sha256")


def _refuse_branches_with_erased(location: LakeLocation, erase_seqs: Sequence[int]) -> None:
    """A branch forked before an erasure still reads the erased rows (and main's files holding them)."""
    from mm_platform.lake.branch_store import list_branches

    last = max(erase_seqs, default=0)
    holding = [r.name for r in list_branches(location) if r.parent == "main" and r.fork_seq < last]
    if holding:
        raise MMPlatformError(
            f"branch(es) {', '.join(holding)} were created before erasure publish {last} and still hold the "
            "erased objects",
            hint="delete them (`mmp branch delete NAME`), then run vacuum-erased again",
        )


@dataclass(frozen=True)
class ErasureVacuumReport:
    """What ``vacuum_erased`` removed, and anything still holding an erased object."""

    erased_media: int
    expired_below_seq: int
    """Snapshots below this seq can no longer be read."""
    data_files_deleted: dict[str, int] = field(default_factory=dict)
    """Per table: files that held erased rows, deleted whatever their age."""
    vacuumed_files: dict[str, int] = field(default_factory=dict)
    """Per table: other files of expired snapshots, deleted by Delta vacuum."""
    log_files_deleted: dict[str, int] = field(default_factory=dict)
    """Per table: Delta log files (commits, checkpoints) before the oldest retained version."""
    manifests_deleted: int = 0
    manifests_rewritten: int = 0
    index_files_deleted: int = 0
    pending: list[str] = field(default_factory=list)
    """Files with erased rows that a retained snapshot or an in-flight publish still uses (not deleted)."""
    leftovers: list[str] = field(default_factory=list)
    """``path: what`` for every remaining file that still names an erased media id, URI or content hash."""

    @property
    def complete(self) -> bool:
        return not self.pending and not self.leftovers

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "complete": self.complete}


# --- vacuum ----------------------------------------------------------------------------------------------


@dataclass
class _Tokens:
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


@dataclass(frozen=True)
class ErasureVacuumPlan:
    """What ``vacuum_erased`` would do now, computed without changing anything."""

    erased_media: int
    expire_below_seq: int
    """Snapshots below this seq would become unreadable (history before the latest erasure)."""
    expiring: list[int] = field(default_factory=list)
    """The readable snapshots that would expire."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def plan_vacuum_erased(lake: Lake) -> ErasureVacuumPlan:
    """Which snapshots ``vacuum_erased`` would expire (every one before the latest erasure publish)."""
    state = lake.state()
    latest = select_snapshot(lake.location, state)
    erased, erase_seqs = _erased_media(lake.location, state, latest)
    horizon = max([*erase_seqs, state.vacuum_horizon()]) if erased else state.vacuum_horizon()
    readable = [e.publish_seq or 0 for e in state.published() if (e.publish_seq or 0) >= state.vacuum_horizon()]
    return ErasureVacuumPlan(len(erased), horizon, [seq for seq in readable if seq < horizon])


def vacuum_erased(lake: Lake, *, verify: bool = True) -> ErasureVacuumReport:
    """Make erased objects unreadable through history: expire, delete, purge logs and manifests, verify."""
    location = lake.location
    ensure_audit_table(location)
    lake.recover()  # an intent left open is finished first, as every publisher does
    state = lake.state()
    latest = select_snapshot(location, state)
    erased, erase_seqs = _erased_media(location, state, latest)
    if not erased:
        return ErasureVacuumReport(erased_media=0, expired_below_seq=state.vacuum_horizon())
    _refuse_resurrected(latest, erased)
    _refuse_branches_with_erased(location, erase_seqs)
    horizon = max([*erase_seqs, state.vacuum_horizon()])
    state = _expire_below(lake, state, horizon, len(erased))
    retained = [e for e in state.published() if (e.publish_seq or 0) >= horizon]
    tokens = _Tokens(media_ids=set(erased))
    data_files: dict[str, int] = {}
    vacuumed: dict[str, int] = {}
    log_files: dict[str, int] = {}
    pending: list[str] = []
    for name in DATA_TABLES:
        dt = DeltaTable(location.uri(name), storage_options=dict(location.storage_options))
        # Kept: the versions retained snapshots pin (0 where one predates the table) and the latest.
        kept = {dt.version()} | {int(e.table_versions.get(name, 0)) for e in retained}
        gone = _delete_erased_files(lake, name, kept, tokens, pending) if name != ERASURES.name else set()
        data_files[name] = len(gone)
        # Tombstoned files of the expired snapshots (never a staging publish's files: ``full=False``).
        removed = dt.vacuum(
            retention_hours=0, dry_run=False, enforce_retention_duration=False, keep_versions=sorted(kept), full=False
        )
        vacuumed[name] = len({path.removeprefix(location.uri(name) + "/") for path in removed} - gone)
        log_files[name] = purge_log(location, name, min(kept))
        prune_states(location, name, kept)
    tokens.hashes -= _hashes_in_use(latest, tokens.hashes)
    manifests_deleted, manifests_rewritten = _scrub_manifests(location, tokens)
    report = ErasureVacuumReport(
        erased_media=len(erased),
        expired_below_seq=horizon,
        data_files_deleted=data_files,
        vacuumed_files=vacuumed,
        log_files_deleted=log_files,
        manifests_deleted=manifests_deleted,
        manifests_rewritten=manifests_rewritten,
        index_files_deleted=_drop_index_caches(location, erased),
        pending=pending,
        leftovers=_scan(location, tokens) if verify else [],
    )
    log.info(
        "vacuumed erasures %s",
        kv(media=len(erased), expired_below=horizon, files=sum(data_files.values()),
           log_files=sum(log_files.values()), complete=report.complete),
    )  # fmt: skip
    return report


def _erased_media(location: LakeLocation, state: LogState, latest: Snapshot) -> tuple[set[str], list[int]]:
    """Every erased media id and the seqs of the erase publishes.

    ``erasures`` is append-only, so its latest snapshot lists every erasure — unless a rollback restored
    it to before one; then each erase publish's own version is read too.
    """
    entries = [e for e in state.published() if e.kind == ERASE_KIND and e.publish_seq is not None]
    seqs = [int(e.publish_seq) for e in entries if e.publish_seq is not None]
    if not entries:
        return set(), []
    ids = set(latest.table(ERASURES.name, columns=["media_id"])["media_id"].to_pylist())
    first = min(seqs)
    if any(e.kind == "rollback" and (e.publish_seq or 0) > first for e in state.published()):
        options = dict(location.storage_options)
        for entry in entries:
            version = entry.table_versions.get(ERASURES.name)
            try:
                dt = DeltaTable(location.uri(ERASURES.name), version=version, storage_options=options)
            except (TableNotFoundError, DeltaError):  # purged by an earlier vacuum_erased, which handled it
                continue
            ids |= set(delta_dataset(location, dt).to_table(columns=["media_id"])["media_id"].to_pylist())  # type: ignore[attr-defined]
    return ids, seqs


def _refuse_resurrected(latest: Snapshot, erased: set[str]) -> None:
    values = pa.array(sorted(erased), pa.string())
    back: dict[str, set[str]] = {}
    for name in DATA_TABLES:
        if name == ERASURES.name or "media_id" not in latest.schema(name).names:
            continue
        rows = latest.table(name, columns=["media_id"], filter=pc.field("media_id").isin(values))
        for media_id in rows["media_id"].to_pylist():
            back.setdefault(media_id, set()).add(name)
    if back:
        raise ErasedRowsPresentError(
            f"{len(back)} erased media have rows in snapshot {latest.seq} again "
            f"({', '.join(sorted(set().union(*back.values())))}); nothing was deleted",
            hint="a rollback past the erasure, or a new ingest of the object, brought them back: "
            f"run `mmp erase {' '.join(sorted(back))} --reason ...` again, then vacuum",
        )


def _expire_below(lake: Lake, state: LogState, horizon: int, media: int) -> LogState:
    if horizon <= state.vacuum_horizon():
        return state
    entry = LogEntry(
        event=VACUUMED,
        kind=ERASE_KIND,
        row_counts={"expired_below_seq": horizon},
        message=f"snapshots before the erasure of {media} media expired",
    )
    while (appended := lake.log.try_append(entry, state)) is None:
        state = lake.log.load()
    return appended


def _delete_erased_files(lake: Lake, name: str, kept: set[int], tokens: _Tokens, pending: list[str]) -> set[str]:
    """Delete every data file of ``name`` holding an erased row that no kept version or open publish uses.

    Any age: a tombstone of an expired snapshot, or an orphan of a stage that was never published (or went
    stale when the erasure removed the files it replaced). Returns the deleted paths (table-relative).
    """
    location = lake.location
    erased = pa.array(sorted(tokens.media_ids), pa.string())
    in_use: set[str] | None = None
    deleted: set[str] = set()
    for rel, info in location.files_under(name):
        if rel.startswith("_delta_log/") or not rel.endswith(".parquet"):
            continue
        rows = _erased_rows(location, info.path, erased)
        if rows is None:
            continue
        if in_use is None:  # only a file with erased rows needs to know what is in use
            in_use = _files_in_use(lake, name, kept)
        if rel in in_use:
            pending.append(f"{name}/{rel}")
            continue
        tokens.collect(rows)
        location.delete_file(f"{name}/{rel}")
        deleted.add(rel)
    return deleted


def _files_in_use(lake: Lake, name: str, kept: set[int]) -> set[str]:
    """Files of ``name`` that a kept version references or the publish in flight (if any) is adding."""
    options = dict(lake.location.storage_options)
    used: set[str] = set()
    for version in kept:
        used |= set(table_file_paths(DeltaTable(lake.location.uri(name), version=version, storage_options=options)))
    intent = lake.state().open_intent()
    stage = load_stage(lake.location, intent.stage_id) if intent and intent.stage_id else None
    if stage is not None and name in stage.tables:
        used |= {a.path for a in stage.tables[name].adds}
    return used


def _erased_rows(location: LakeLocation, path: str, erased: pa.Array) -> pa.Table | None:
    """The identifying columns of the file's rows of erased media, or None (footer statistics prune first)."""
    with location.fs.open_input_file(path) as source:
        parquet = pq.ParquetFile(source)
        names = parquet.schema_arrow.names
        if "media_id" not in names:
            return None
        wanted = sorted(erased.to_pylist())
        meta = parquet.metadata
        maybe = False
        for group in range(meta.num_row_groups):
            row_group = meta.row_group(group)
            column = next(
                (
                    row_group.column(i)
                    for i in range(row_group.num_columns)
                    if row_group.column(i).path_in_schema == "media_id"
                ),
                None,
            )
            stats = None if column is None else column.statistics
            if stats is None or not stats.has_min_max or any(stats.min <= v <= stats.max for v in wanted):
                maybe = True
                break
        if not maybe:
            return None
        rows = parquet.read(columns=["media_id", *(c for c in _TOKEN_COLUMNS if c in names)])
    mask = pc.is_in(rows["media_id"], value_set=erased)
    return rows.filter(mask) if pc.any(mask).as_py() else None


def _hashes_in_use(latest: Snapshot, hashes: set[str]) -> set[str]:
    """Content hashes that media still in the lake share (identical bytes under another URI keep theirs)."""
    if not hashes:
        return set()
    values = pa.array(sorted(hashes), pa.string())
    used: set[str] = set()
    for name in DATA_TABLES:
        names = latest.schema(name).names
        for column in ("content_sha256", "source_content_sha256"):
            if column in names:
                rows = latest.table(name, columns=[column], filter=pc.field(column).isin(values))
                used |= set(rows[column].to_pylist())
    return used


def _scrub_manifests(location: LakeLocation, tokens: _Tokens) -> tuple[int, int]:
    """Delete stage manifests naming an erased object; drop it from batch manifests (the rest stays re-runnable).

    Files that are not JSON documents (a write in progress) are left alone; the verification reports them.
    """
    named = [t for _, t in tokens.named()]
    deleted = rewritten = 0
    for folder in (STAGES_DIR, BATCHES_DIR):
        for rel, _ in location.files_under(folder):
            path = f"{folder}/{rel}"
            doc = _read_json(location, path) if rel.endswith(".json") else None
            if doc is None or not _mentions(doc, named):
                continue
            if folder == BATCHES_DIR:
                doc = {
                    **doc,
                    "objects": [
                        o for o in doc.get("objects", []) if media_id_for(str(o.get("uri"))) not in tokens.media_ids
                    ],
                    "deleted": [d for d in doc.get("deleted", []) if d.get("media_id") not in tokens.media_ids],
                }
                if (doc["objects"] or doc["deleted"]) and not _mentions(doc, named):
                    location.write_json(path, doc)
                    rewritten += 1
                    continue
            location.delete_file(path)
            deleted += 1
    return deleted, rewritten


def _drop_index_caches(location: LakeLocation, erased: set[str]) -> int:
    """Search-index cache versions whose keys name an erased media hold its vectors: delete them whole."""
    values = pa.array(sorted(erased), pa.string())
    folders: set[str] = set()
    files = list(location.files_under(INDEX_DIR))
    for rel, info in files:
        if rel.endswith(".parquet") and _erased_rows(location, info.path, values) is not None:
            folders.add(rel.rsplit("/", 1)[0] if "/" in rel else "")
    doomed = [rel for rel, _ in files if (rel.rsplit("/", 1)[0] if "/" in rel else "") in folders]
    for rel in doomed:
        location.delete_file(f"{INDEX_DIR}/{rel}")
    return len(doomed)


def _scan(location: LakeLocation, tokens: _Tokens) -> list[str]:
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
                kinds |= {kind for kind, token in pairs if _mentions(json.loads(data), [token])}
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


def _mentions(doc: Any, tokens: Sequence[str]) -> bool:
    """Whether any string inside a JSON document (keys, values, nested JSON text) contains a token."""
    if isinstance(doc, str):
        return any(token in doc for token in tokens)
    if isinstance(doc, dict):
        return any(_mentions(k, tokens) or _mentions(v, tokens) for k, v in doc.items())
    if isinstance(doc, list):
        return any(_mentions(v, tokens) for v in doc)
    return False


def _read_json(location: LakeLocation, rel_path: str) -> Any:
    try:
        return location.read_json(rel_path)
    except (ValueError, TypeError, MMPlatformError):
        return None
