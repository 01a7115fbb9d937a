"""Erasure: every row derived from an object leaves every table in one publish, then its bytes
leave the lake's history.

``erase`` stages the removal of every row whose ``media_id`` is erased from every data table (the media row
too — unlike a deletion at the source, which keeps a ``deleted`` tombstone) plus one audit row per media in
``erasures`` (what, when, why; a hash of the URI, never the URI or the content), and publishes it atomically.
From that snapshot on no reader sees the object; older snapshots still hold it until ``vacuum_erased``
(``mm_platform.erasure.vacuum``, built on the lake's generic ``mm_platform.lake.expunge``):

1. expire every snapshot older than the last erasure (a ``vacuumed`` event, so reading one raises
   ``SnapshotExpiredError``);
2. delete every Parquet file on disk — tombstoned, orphaned by a dead stage, any age — that holds a row of an
   erased media, unless a retained snapshot or an in-flight publish references it (then it is reported);
3. Delta vacuum (retention 0, the retained versions kept; tombstones only, so a publish staging right now
   keeps its files) for the rest of the expired snapshots' files;
4. purge the Delta logs: commit JSONs and checkpoints keep per-file min/max statistics, which name media ids,
   URIs and content hashes. Each table gets a checkpoint at the oldest retained version and loses every log
   file before it (the protocol's metadata cleanup, without waiting ``logRetentionDuration``);
5. delete stage manifests (``_stages``, their stats name the rows), drop the object from batch manifests
   (``_batches``) and drop search-index cache versions (``_indexes``) that hold its vectors;
6. verify: grep every remaining file under the lake root (bytes, and every string of every Parquet file) for
   the erased media ids, URIs and content hashes. ``erasures`` keeps the media id by design (the audit says
   *what* was erased); it never holds the URI or the content hash.

Limits: copies outside the lake's live files are out of reach — S3 object versions (a versioned bucket keeps
deleted objects: add a lifecycle rule), backups, Dagster's event storage (materialization previews), and
samples of failing rows in ``_publish_log`` check results (the verification names such files). An object
still at its source is ingested again by the next discovery unless discovery skips erased media ids.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

from mm_platform.erasure.table import ERASE_VERSION, ERASURES
from mm_platform.errors import ConfigError, MMPlatformError, StaleStageError
from mm_platform.lake import AuditCheck, Lake, LakeLocation, RowFilter, Snapshot
from mm_platform.lake.operations import Erase
from mm_platform.lake.publish_log import LogState
from mm_platform.log import get_logger, kv
from mm_platform.tables import MEDIA, QUARANTINE

__all__ = ["ERASURES", "ErasedRowsPresentError", "ErasureResult", "erase", "erasure_publishes"]

log = get_logger("mm_platform.erasure")

ERASE_KIND = Erase.kind
_IDENTITY_TABLES = (MEDIA.name, QUARANTINE.name)  # tables whose rows name the source URI


class ErasedRowsPresentError(MMPlatformError):
    """Rows of erased media are in the latest snapshot again (a rollback past the erasure, or a new ingest)."""


@dataclass(frozen=True)
class ErasureResult:
    """What one erasure published."""

    erasure_id: str
    seq: int
    """The publish that removed the rows (its log entry's partition is ``erasure:<erasure_id>``)."""
    media_ids: tuple[str, ...]
    rows_removed: dict[str, int]
    """Rows removed per table, counted in the snapshot the erasure was based on."""
    tables_skipped: tuple[str, ...] = ()
    """Data tables without a ``media_id`` column: nothing in them can be tied to an object."""
    shared_content: int = 0
    """Media not erased whose bytes equal an erased object's: their rows keep that content hash."""


# --- erase ---------------------------------------------------------------------------------------------


def erase(
    lake: Lake,
    targets: Sequence[str],
    reason: str,
    requested_by: str = "",
    *,
    run_id: str = "",
    checks: Sequence[AuditCheck] = (),
) -> ErasureResult:
    """Remove every row of the objects ``targets`` (URIs or media ids) from every table, in one publish."""
    if not targets:
        raise ConfigError("nothing to erase", hint="name the objects by URI or media id")
    if not reason.strip():
        raise ConfigError("an erasure needs a reason", hint="e.g. --reason 'GDPR art. 17 request 2026-041'")
    ensure_audit_table(lake.location)
    snapshot = lake.snapshot()
    uris = _resolve(snapshot, targets)
    ids = tuple(sorted(uris))
    erasure_id = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
    partition = f"erasure:{erasure_id}"
    id_set = pa.array(ids, pa.string())
    rows_removed: dict[str, int] = {}
    skipped: list[str] = []
    for name in lake.catalog:
        if name == ERASURES.name:
            continue
        if "media_id" not in snapshot.schema(name).names:
            skipped.append(name)
            continue
        rows_removed[name] = snapshot.table(
            name, columns=["media_id"], filter=pc.field("media_id").isin(id_set)
        ).num_rows
    now = datetime.now(UTC)
    audit = pa.Table.from_pylist(
        [
            {
                "erasure_id": erasure_id,
                "media_id": media_id,
                "uri_sha256": hashlib.sha256(uris[media_id].encode("utf-8")).hexdigest(),
                "reason": reason,
                "requested_by": requested_by,
                "erased_at": now,
                "publish_seq": None,
                "source_content_sha256": None,  # the content hash would identify the bytes: left out
                "producer": ERASE_KIND,
                "producer_version": ERASE_VERSION,
                "run_id": run_id or erasure_id,
                "partition": partition,
            }
            for media_id in ids
        ],
        schema=ERASURES.schema,
    )
    for attempt in range(1, 4):
        # Staged against the tables of the lake it publishes on: on a branch, its own files (rows that exist
        # only on the branch are erased too).
        writer = lake.stage_writer(
            partition, operation=Erase(), run_id=run_id or erasure_id, code_version=f"erase={ERASE_VERSION}",
            stage_id=f"erase-{erasure_id}-{attempt}", message=f"erasure {erasure_id}: {len(ids)} media",
        )  # fmt: skip
        for name in rows_removed:
            writer.write(name, lake.catalog[name].schema.empty_table(), replace=(RowFilter("media_id", ids),))
        writer.write(ERASURES.name, audit)
        stage = writer.finish()
        try:
            results = lake.audit(lake.staged(stage), checks)
            published = lake.publish_stage(stage, results)
        except StaleStageError:
            continue  # a publish touched the same files meanwhile: stage against the new versions
        log.info("erased %s", kv(erasure=erasure_id, media=len(ids), seq=published.seq))
        return ErasureResult(
            erasure_id=erasure_id,
            seq=published.seq,
            media_ids=ids,
            rows_removed=rows_removed,
            tables_skipped=tuple(skipped),
            shared_content=_shared_content(snapshot, ids),
        )
    raise StaleStageError(f"erasure {erasure_id}: other publishes kept changing the same files", hint="run it again")


def ensure_audit_table(location: LakeLocation) -> None:
    """Lakes created before erasures existed lack the audit table (``Lake.ensure_tables`` makes it for new ones)."""
    options = dict(location.storage_options)
    DeltaTable.create(location.uri(ERASURES.name), schema=ERASURES.schema, mode="ignore", storage_options=options)


def _resolve(snapshot: Snapshot, targets: Sequence[str]) -> dict[str, str]:
    """media id -> URI for each target (a URI or a media id) found in the snapshot; unknown ones raise."""
    wanted = pa.array(sorted(set(targets)), pa.string())
    uris: dict[str, str] = {}
    matched: set[str] = set()
    for name in _IDENTITY_TABLES:
        where = pc.field("media_id").isin(wanted) | pc.field("uri").isin(wanted)
        for row in snapshot.table(name, columns=["media_id", "uri"], filter=where).to_pylist():
            uris[row["media_id"]] = row["uri"]
            matched.update((row["media_id"], row["uri"]))
    unknown = [t for t in dict.fromkeys(targets) if t not in matched]
    if unknown:
        erased = snapshot.table(ERASURES.name, columns=["media_id", "uri_sha256"]).to_pylist()
        done = {r["media_id"] for r in erased} | {r["uri_sha256"] for r in erased}
        before = [t for t in unknown if t in done or hashlib.sha256(t.encode("utf-8")).hexdigest() in done]
        raise ConfigError(
            f"{len(unknown)} target(s) not in snapshot {snapshot.seq}: {', '.join(unknown)}"
            + (f" ({len(before)} of them erased already)" if before else ""),
            hint="name objects by their URI exactly as `media.uri` holds it, or by media id",
        )
    return uris


def _shared_content(snapshot: Snapshot, ids: Sequence[str]) -> int:
    media = snapshot.table(MEDIA.name, columns=["media_id", "content_sha256"])
    erased = pc.is_in(media["media_id"], value_set=pa.array(ids, pa.string()))
    hashes = pc.drop_null(media.filter(erased)["content_sha256"])
    others = media.filter(pc.invert(erased))
    return int(pc.sum(pc.is_in(others["content_sha256"], value_set=hashes)).as_py() or 0)


def erasure_publishes(state: LogState) -> dict[str, int]:
    """erasure id -> the seq of the publish that applied it (the audit row's ``publish_seq``)."""
    return {
        e.partition.removeprefix("erasure:"): e.publish_seq
        for e in state.published()
        if e.kind == ERASE_KIND and e.partition and e.publish_seq is not None
    }
