"""The search index of one model in one snapshot: exact for small tables, HNSW for large ones, cached on disk.

Cache layout under the lake: ``_indexes/<model slug>/v<embeddings table version>/`` holding ``index.faiss``
(graph + vectors), ``keys.parquet`` (per position: media id, fingerprint, live) and ``manifest.json``,
written last: a folder without it is ignored, so a writer that died half-way leaves nothing usable behind.
Keyed by the *embeddings table version*, not the publish seq: snapshots that share the version share it.

Across snapshots the index is reused incrementally: the nearest cached version is loaded, positions whose
fingerprint (media id, model revision, content hash) is gone from the snapshot are marked dead (every search
then filters them out with the same bitmap as a user filter; HNSW cannot delete), and new fingerprints are
read and added to the graph. When dead rows would pass ``max_dead_fraction`` of the index, it is rebuilt.
Older versions beyond ``keep_versions`` are deleted. The lake's own vacuum never touches ``_indexes``.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from numpy.typing import NDArray

from mm_platform.lake import LakeLocation, Snapshot
from mm_platform.log import get_logger, kv
from mm_platform.search.ann import Allowed, HnswIndex, HnswParams
from mm_platform.search.exact import ExactIndex
from mm_platform.search.filter_frame import FilterFrame, MatchedMedia
from mm_platform.search.memo import BoundedMemo
from mm_platform.search.vectors import read_keys, read_vectors
from mm_platform.tables import EMBEDDINGS

__all__ = ["INDEX_DIR", "IndexConfig", "ModelIndex", "clear_index_memo", "open_index"]

log = get_logger("mm_platform.search.index")
INDEX_DIR = "_indexes"
_FORMAT = 1


@dataclass(frozen=True)
class IndexConfig:
    """When to use an ANN index and how to keep it."""

    ann_min_rows: int = 50_000
    """Below this many vectors search is exact (a scan costs a few ms; no index to build or store)."""
    hnsw: HnswParams = field(default_factory=HnswParams)
    """Graph parameters of the ANN index."""
    cache: bool = True
    """Keep ANN indexes under ``<lake>/_indexes`` and reuse them across processes and snapshots."""
    max_dead_fraction: float = 0.2
    """Rebuild instead of updating when this share of a reused index's rows would be dead."""
    keep_versions: int = 3
    """Cached versions kept per model (older ones are deleted after a new one is written)."""


@dataclass
class ModelIndex:
    """Searchable vectors of one model at one embeddings version; positions map to ``media_ids``."""

    model_id: str
    version: int
    keys: pa.Table
    """Per position: media_id, fingerprint."""
    live: NDArray[np.bool_]
    """Positions still in the snapshot (dead ones stay in an HNSW graph until a rebuild)."""
    backend: ExactIndex | HnswIndex
    origin: str
    """How it was obtained: exact, built, cached, incremental (for logs and tests)."""
    _allowed: BoundedMemo[int, tuple[object, Allowed]] = field(
        default_factory=lambda: BoundedMemo(8), init=False, repr=False, compare=False
    )
    _frame_positions: BoundedMemo[int, tuple[FilterFrame, NDArray[np.int64]]] = field(
        default_factory=lambda: BoundedMemo(2), init=False, repr=False, compare=False
    )

    @property
    def kind(self) -> str:
        return "exact" if isinstance(self.backend, ExactIndex) else "hnsw"

    @property
    def size(self) -> int:
        return int(self.live.sum())

    @cached_property
    def media_ids(self) -> pa.Array:
        return self.keys.column("media_id").combine_chunks()

    def allowed(self, matched: MatchedMedia | pa.Array | None = None) -> Allowed | None:
        """The positions a search may return: live ones, and only the ``matched`` media when given.

        A filter answered by a ``FilterFrame`` comes as a mask over the frame's rows: the index maps it to
        its positions with one ``take`` (the frame row of each position is computed once per frame). Plain
        ids cost a hash probe per position. The last few answers are kept by the identity of ``matched``:
        search remembers a filter's answer per snapshot and passes the same object again."""
        if matched is None:
            return None if self.live.all() else Allowed(self.live)
        kept = self._allowed.get(id(matched))
        if kept is not None and kept[0] is matched:
            return kept[1]
        if isinstance(matched, MatchedMedia) and matched.frame is not None and matched.mask is not None:
            rows = self._rows_in(matched.frame)
            mask = np.where(rows >= 0, matched.mask[np.maximum(rows, 0)], False)
        else:
            ids = matched.ids if isinstance(matched, MatchedMedia) else matched
            mask = _mask(pc.is_in(self.media_ids, value_set=ids))
        allowed = Allowed(mask & self.live)
        self._allowed.put(id(matched), (matched, allowed))  # the object is held, so its id stays its own
        return allowed

    def _rows_in(self, frame: FilterFrame) -> NDArray[np.int64]:
        """Per position, the frame row of its media (-1 where the media is not in the frame)."""
        kept = self._frame_positions.get(id(frame))
        if kept is not None and kept[0] is frame:
            return kept[1]
        rows = pc.index_in(self.media_ids, value_set=frame.media_ids).fill_null(-1)
        found = np.asarray(rows.to_numpy(zero_copy_only=False), dtype=np.int64)
        self._frame_positions.put(id(frame), (frame, found))
        return found

    def search(self, query: NDArray[np.float32], k: int, allowed: Allowed | None = None) -> list[tuple[str, float]]:
        """(media_id, score) of the top ``k``, best first."""
        if allowed is not None and allowed.count == 0:
            return []
        scores, positions = self.backend.search(np.asarray(query, dtype=np.float32)[None], k, allowed)
        ids = self.media_ids
        return [(str(ids[int(p)].as_py()), float(s)) for s, p in zip(scores[0], positions[0], strict=True) if p >= 0]


_MEMO: BoundedMemo[tuple[object, ...], ModelIndex] = BoundedMemo(4, lru=True)


def clear_index_memo() -> None:
    """Forget the indexes held in this process (tests; or to free memory)."""
    _MEMO.clear()


def open_index(snapshot: Snapshot, model_id: str, config: IndexConfig | None = None) -> ModelIndex:
    """The index of ``model_id``'s media vectors in ``snapshot`` (held in memory for reuse by this process)."""
    config = config or IndexConfig()
    version = snapshot.version_of(EMBEDDINGS.name)
    memo_key = (snapshot.location.root, model_id, snapshot.table_token(EMBEDDINGS.name), config)
    remembered = _MEMO.get(memo_key)
    if remembered is not None:
        return remembered
    keys = read_keys(snapshot, model_id)
    if keys.num_rows < config.ann_min_rows:
        keys, vectors = read_vectors(snapshot, model_id)
        index = ModelIndex(model_id, version, keys, np.ones(keys.num_rows, bool), ExactIndex(vectors), "exact")
    else:
        index = _open_hnsw(snapshot, model_id, keys, config)
    _MEMO.put(memo_key, index)
    return index


def _open_hnsw(snapshot: Snapshot, model_id: str, keys: pa.Table, config: IndexConfig) -> ModelIndex:
    version = snapshot.version_of(EMBEDDINGS.name)
    # The on-disk cache is keyed by main's Delta versions; a branch's index lives in this process only.
    store = IndexStore(snapshot.location, model_id) if config.cache and snapshot.branch is None else None
    if store is not None:
        cached = store.load(version, config.hnsw)
        if cached is not None:
            return cached
        base = store.load_nearest(version, config.hnsw)
        index = _update(base, snapshot, keys, config) if base is not None else None
    else:
        index = None
    if index is None:
        all_keys, vectors = read_vectors(snapshot, model_id)
        backend = HnswIndex.build(vectors, config.hnsw)
        index = ModelIndex(model_id, version, all_keys, np.ones(all_keys.num_rows, bool), backend, "built")
    log.info("search index %s", kv(model=model_id, version=version, origin=index.origin, rows=index.size))
    if store is not None:
        store.save(index)
        store.prune(config.keep_versions, keep=version)
    return index


def _update(base: ModelIndex, snapshot: Snapshot, keys: pa.Table, config: IndexConfig) -> ModelIndex | None:
    """``base`` brought to the snapshot's vectors (new ones added, stale ones dead), or None to rebuild."""
    assert isinstance(base.backend, HnswIndex)
    fingerprints = keys.column("fingerprint").combine_chunks()
    old = base.keys.column("fingerprint").combine_chunks()
    still = _mask(pc.is_in(old, value_set=fingerprints)) & base.live
    new = keys.filter(pc.invert(pc.is_in(fingerprints, value_set=old.filter(pa.array(still)))))
    dead = len(still) - int(still.sum())
    if dead / max(len(still) + new.num_rows, 1) > config.max_dead_fraction:
        return None
    added_keys = new.slice(0, 0)
    if new.num_rows:
        added_keys, vectors = read_vectors(snapshot, base.model_id, new.column("media_id").combine_chunks())
        base.backend.add(vectors)
    live = np.concatenate([still, np.ones(added_keys.num_rows, bool)])
    all_keys = pa.concat_tables([base.keys.select(["media_id", "fingerprint"]), added_keys])
    version = snapshot.version_of(EMBEDDINGS.name)
    return ModelIndex(base.model_id, version, all_keys, live, base.backend, "incremental")


class IndexStore:
    """The cached indexes of one model under ``<lake>/_indexes``."""

    def __init__(self, location: LakeLocation, model_id: str) -> None:
        self.location = location
        self.model_id = model_id
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", model_id).strip("-")[:60]
        self.folder = f"{INDEX_DIR}/{slug}-{hashlib.sha256(model_id.encode()).hexdigest()[:8]}"

    def versions(self) -> list[int]:
        found = set()
        for info in self.location.list_files(self.folder):
            match = re.search(r"/v(\d+)/manifest\.json$", info.path)
            if match:
                found.add(int(match.group(1)))
        return sorted(found)

    def load(self, version: int, params: HnswParams) -> ModelIndex | None:
        folder = f"{self.folder}/v{version}"
        manifest = self.location.read_json(f"{folder}/manifest.json")
        if manifest is None or manifest.get("format") != _FORMAT or manifest.get("model_id") != self.model_id:
            return None
        try:
            keys = pq.read_table(self.location.fs_path(f"{folder}/keys.parquet"), filesystem=self.location.fs)
            backend = self._read_index(f"{folder}/index.faiss", params)
        except (OSError, RuntimeError) as exc:  # pruned or half-written by another process: rebuild
            log.warning("unreadable cached index %s", kv(folder=folder, error=exc))
            return None
        if backend.size != keys.num_rows:
            return None
        live = keys.column("live").to_numpy(zero_copy_only=False).astype(bool)
        return ModelIndex(self.model_id, version, keys.select(["media_id", "fingerprint"]), live, backend, "cached")

    def load_nearest(self, version: int, params: HnswParams) -> ModelIndex | None:
        """The cached version closest to ``version`` (earlier ones first on a tie)."""
        for candidate in sorted(self.versions(), key=lambda v: (abs(v - version), v)):
            loaded = self.load(candidate, params)
            if loaded is not None:
                return loaded
        return None

    def save(self, index: ModelIndex) -> None:
        backend = index.backend
        assert isinstance(backend, HnswIndex)
        folder = f"{self.folder}/v{index.version}"
        keys = index.keys.append_column("live", pa.array(index.live))
        self._write(f"{folder}/keys.parquet", lambda path: pq.write_table(keys, path))
        self._write(f"{folder}/index.faiss", lambda path: backend.save(Path(path)))
        self.location.write_json(
            f"{folder}/manifest.json",
            {"format": _FORMAT, "model_id": self.model_id, "version": index.version, "rows": len(index.live)},
        )

    def prune(self, keep_versions: int, keep: int) -> None:
        versions = [v for v in self.versions() if v != keep]
        for version in versions[: max(len(versions) - (keep_versions - 1), 0)]:
            for name in ("manifest.json", "keys.parquet", "index.faiss"):  # manifest first: unusable at once
                self.location.delete_file(f"{self.folder}/v{version}/{name}")

    def _read_index(self, rel_path: str, params: HnswParams) -> HnswIndex:
        if self.location.is_s3:
            with self.location.fs.open_input_stream(self.location.fs_path(rel_path)) as src:
                return HnswIndex.from_bytes(src.read(), params)
        return HnswIndex.load(Path(self.location.fs_path(rel_path)), params)

    def _write(self, rel_path: str, write: Callable[[str], None]) -> None:
        """Write through a local temporary file, then move it into place (local) or upload it (S3)."""
        target = self.location.fs_path(rel_path)
        if self.location.is_s3:
            tmp = Path(tempfile.gettempdir()) / f"mmp-index-{uuid.uuid4().hex}"
            try:
                write(str(tmp))
                with tmp.open("rb") as src, self.location.fs.open_output_stream(target) as out:
                    while chunk := src.read(1 << 24):
                        out.write(chunk)
            finally:
                tmp.unlink(missing_ok=True)
            return
        os.makedirs(os.path.dirname(target), exist_ok=True)
        tmp_path = f"{target}.{uuid.uuid4().hex}.tmp"
        write(tmp_path)
        os.replace(tmp_path, target)


def _mask(values: pa.Array | pa.ChunkedArray) -> NDArray[np.bool_]:
    return np.asarray(values.to_numpy(zero_copy_only=False), dtype=bool)
