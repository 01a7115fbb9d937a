"""Checks across tables: what a per-table suite cannot see (the audit step of the publish). The checks on
vectors and models are in ``vector_checks``.

Each check reads the stage's new rows (``AuditContext.staged``) and, where a reference may point at rows
already published, the base snapshot. Everything is vectorised with pyarrow and numpy: 100k embeddings
cost a few hundred milliseconds, and never a Python loop per row.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mm_platform.lake.audit import AuditContext, CheckResult
from mm_platform.quality.check_rows import EMBEDDING_KEYS, is_in, sample_rows, staged_rows
from mm_platform.tables import DERIVED, EMBEDDINGS, MEDIA, METADATA, QUARANTINE

__all__ = ["embeddings_reference_media", "media_has_metadata_or_quarantine"]


# --- (a) every media row is accounted for ------------------------------------------------------------------


def media_has_metadata_or_quarantine(context: AuditContext) -> CheckResult:
    """Every staged active media row has a staged metadata row; every quarantined one a quarantine row."""
    name = "media_has_metadata_or_quarantine"
    media = staged_rows(context, MEDIA.name, ["media_id", "uri", "status"])
    metadata_ids = staged_rows(context, METADATA.name, ["media_id"]).column("media_id")
    quarantine_ids = staged_rows(context, QUARANTINE.name, ["media_id"]).column("media_id")
    status = media.column("status")
    active = np.asarray(pc.equal(status, "active").fill_null(False), dtype=bool)
    quarantined = np.asarray(pc.equal(status, "quarantined").fill_null(False), dtype=bool)
    ids = media.column("media_id")
    no_metadata = active & ~is_in(ids, metadata_ids.combine_chunks())
    no_quarantine = quarantined & ~is_in(ids, quarantine_ids.combine_chunks())
    bad = no_metadata | no_quarantine
    if not bad.any():
        return CheckResult(
            name=name,
            table=MEDIA.name,
            passed=True,
            detail=f"{int(active.sum())} active media have metadata, {int(quarantined.sum())} quarantined "
            "have a quarantine row",
        )
    expected = np.where(no_metadata, METADATA.name, QUARANTINE.name)
    parts = []
    if no_metadata.any():
        parts.append(f"{int(no_metadata.sum())} of {int(active.sum())} active media rows have no metadata row")
    if no_quarantine.any():
        parts.append(
            f"{int(no_quarantine.sum())} of {int(quarantined.sum())} quarantined media rows have no quarantine row"
        )
    return CheckResult(
        name=name,
        table=MEDIA.name,
        passed=False,
        detail="; ".join(parts),
        failing_rows=sample_rows(media, bad, ["media_id", "uri", "status"], missing=expected),
    )


# --- (b) every embedding points at existing media (and derived) rows with the same bytes -------------------


def _published_lookup(context: AuditContext, table: str, key: str, wanted: pa.Array, columns: list[str]) -> pa.Table:
    """The base snapshot's rows of ``table`` whose ``key`` is in ``wanted`` (nothing read when empty)."""
    if len(wanted) == 0 or (context.base.seq == 0 and context.base.branch is None):  # a branch's 0 is its fork
        return context.base.catalog[table].schema.empty_table().select(columns)
    return context.base.table(table, columns=columns, filter=pc.field(key).isin(wanted))


def embeddings_reference_media(context: AuditContext) -> CheckResult:
    """Each staged embedding's media row exists (staged, or published in the base snapshot), is not deleted,
    holds the bytes the vector was computed from, and a ``derived`` subject exists as a derived row."""
    name = "embeddings_reference_media"
    embeddings = staged_rows(
        context, EMBEDDINGS.name, ["subject_id", "subject_kind", "media_id", "model_id", "source_content_sha256"]
    )
    total = embeddings.num_rows
    if total == 0:
        return CheckResult(name=name, table=EMBEDDINGS.name, passed=True, detail="no staged embeddings")
    media_ids = embeddings.column("media_id").combine_chunks()
    staged_media = staged_rows(context, MEDIA.name, ["media_id", "content_sha256", "status"])
    missing = pc.unique(pc.filter(media_ids, pa.array(~is_in(media_ids, staged_media.column("media_id")))))
    published = _published_lookup(context, MEDIA.name, "media_id", missing, ["media_id", "content_sha256", "status"])
    media = pa.concat_tables([staged_media, published.cast(staged_media.schema)])  # staged rows come first
    live = media.filter(pc.not_equal(media.column("status"), "deleted").fill_null(True))
    position = pc.index_in(media_ids, value_set=live.column("media_id").combine_chunks())
    no_media = np.asarray(position.is_null(), dtype=bool)
    media_sha = (
        pc.take(live.column("content_sha256"), position.fill_null(0)) if live.num_rows else pa.nulls(total, pa.string())
    )
    own_sha = embeddings.column("source_content_sha256").combine_chunks()
    same = np.asarray(pc.equal(own_sha, media_sha).fill_null(False), dtype=bool)
    wrong_bytes = ~no_media & ~same

    derived_subject = np.asarray(pc.equal(embeddings.column("subject_kind"), "derived").fill_null(False), dtype=bool)
    subjects = embeddings.column("subject_id").combine_chunks()
    staged_derived = staged_rows(context, DERIVED.name, ["derived_id"]).column("derived_id").combine_chunks()
    found = is_in(subjects, staged_derived)
    unresolved = pc.unique(pc.filter(subjects, pa.array(derived_subject & ~found)))
    published_derived = _published_lookup(context, DERIVED.name, "derived_id", unresolved, ["derived_id"])
    found |= is_in(subjects, published_derived.column("derived_id").combine_chunks())
    no_derived = derived_subject & ~found

    bad = no_media | wrong_bytes | no_derived
    if not bad.any():
        return CheckResult(
            name=name, table=EMBEDDINGS.name, passed=True, detail=f"{total} embeddings reference their media"
        )
    parts = []
    if no_media.any():
        parts.append(
            f"{int(no_media.sum())} of {total} embeddings point at a media_id that exists nowhere "
            "(neither staged nor published, or only as deleted)"
        )
    if wrong_bytes.any():
        parts.append(
            f"{int(wrong_bytes.sum())} of {total} embeddings were computed from other bytes "
            "(source_content_sha256 != media.content_sha256)"
        )
    if no_derived.any():
        parts.append(f"{int(no_derived.sum())} of {total} derived-subject embeddings point at a missing derived row")
    problem = np.where(no_media, "no media row", np.where(wrong_bytes, "content hash differs", "no derived row"))
    return CheckResult(
        name=name,
        table=EMBEDDINGS.name,
        passed=False,
        detail="; ".join(parts),
        failing_rows=sample_rows(embeddings, bad, [*EMBEDDING_KEYS, "source_content_sha256"], problem=problem),
    )
