"""What an erased media id means outside the lake's tables: batch manifests (``_batches/``) that list the
object and search-index caches (``_indexes/``) that hold its vectors.

The lake knows neither folder; the erasure hands these steps to ``vacuum_erased`` after the lake's own
purge (``mm_platform.lake.expunge``).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mm_platform.erasure.verify import Tokens, mentions
from mm_platform.ids import media_id_for
from mm_platform.lake import LakeLocation
from mm_platform.lake.expunge import json_documents, matching_rows

BATCHES_DIR = "_batches"  # mm_platform.ingest.batches.BATCHES_DIR
INDEX_DIR = "_indexes"  # mm_platform.search.index_store.INDEX_DIR: a cache of vectors and media ids


def scrub_batch_manifests(location: LakeLocation, tokens: Tokens) -> tuple[int, int]:
    """Drop erased objects from batch manifests, JSON and Parquet (the rest stays re-runnable); delete those
    left naming one.

    Returns (deleted, rewritten). Files that are not JSON documents (a write in progress) are left alone;
    the verification reports them.
    """
    named = [t for _, t in tokens.named()]
    deleted = rewritten = 0
    for rel, _ in list(location.files_under(BATCHES_DIR)):
        if rel.endswith(".parquet"):
            outcome = _scrub_listed_manifest(location, f"{BATCHES_DIR}/{rel}", tokens)
            deleted, rewritten = deleted + (outcome == "deleted"), rewritten + (outcome == "rewritten")
    for path, doc in json_documents(location, BATCHES_DIR):
        if not mentions(doc, named):
            continue
        doc = {
            **doc,
            "objects": [o for o in doc.get("objects", []) if media_id_for(str(o.get("uri"))) not in tokens.media_ids],
            "deleted": [d for d in doc.get("deleted", []) if d.get("media_id") not in tokens.media_ids],
        }
        if (doc["objects"] or doc["deleted"]) and not mentions(doc, named):
            location.write_json(path, doc)
            rewritten += 1
            continue
        location.delete_file(path)
        deleted += 1
    return deleted, rewritten


def _scrub_listed_manifest(location: LakeLocation, path: str, tokens: Tokens) -> str | None:
    """A listed batch's Parquet manifest without the erased objects' rows (its header metadata kept); deleted
    when none is left. ``None``: it names no erased object (or is not readable Parquet: a write in progress)."""
    payload = location.read_bytes(path)
    try:
        table = pq.read_table(pa.BufferReader(payload or b""))
    except (pa.ArrowInvalid, OSError):
        return None
    kept = pa.array([media_id_for(uri) not in tokens.media_ids for uri in table.column("uri").to_pylist()])
    if pc.all(kept).as_py() is not False:
        return None
    rest = table.filter(kept)
    if not rest.num_rows:
        location.delete_file(path)
        return "deleted"
    sink = pa.BufferOutputStream()
    pq.write_table(rest, sink, compression="zstd")
    location.write_bytes(path, sink.getvalue().to_pybytes())
    return "rewritten"


def drop_index_caches(location: LakeLocation, erased: set[str]) -> int:
    """Search-index cache versions whose keys name an erased media hold its vectors: delete them whole."""
    values = pa.array(sorted(erased), pa.string())
    folders: set[str] = set()
    files = list(location.files_under(INDEX_DIR))
    for rel, info in files:
        if rel.endswith(".parquet") and matching_rows(location, info.path, "media_id", values) is not None:
            folders.add(rel.rsplit("/", 1)[0] if "/" in rel else "")
    doomed = [rel for rel, _ in files if (rel.rsplit("/", 1)[0] if "/" in rel else "") in folders]
    for rel in doomed:
        location.delete_file(f"{INDEX_DIR}/{rel}")
    return len(doomed)
