"""Checks across tables and on vectors: what a per-table suite cannot see (the audit step of the publish).

Each check reads the stage's new rows (``AuditContext.staged``) and, where a reference may point at rows
already published, the base snapshot. Everything is vectorised with pyarrow and numpy: 100k embeddings
cost a few hundred milliseconds, and never a Python loop per row.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mm_platform.lake.audit import AuditCheck, AuditContext, CheckResult

__all__ = [
    "UNIT_NORM_TOLERANCE",
    "VectorVerdicts",
    "embedding_model_check",
    "embedding_vectors",
    "embeddings_reference_media",
    "media_has_metadata_or_quarantine",
    "vector_row_stats",
]

UNIT_NORM_TOLERANCE = 1e-3
SAMPLE_ROWS = 10
_VECTOR_SLICE = 4096  # rows per numpy pass over the vectors: bounds the temporary float64 copies
_EMBEDDING_KEYS = ("subject_id", "model_id", "media_id")


def _staged(context: AuditContext, name: str, columns: Sequence[str] | None = None) -> pa.Table:
    """The stage's new rows of a table (empty with the table's schema when the table is not staged)."""
    table = context.staged[name] if name in context.staged else context.base.catalog[name].schema.empty_table()
    return table.select(list(columns)) if columns is not None else table


def _sample(table: pa.Table, mask: np.ndarray, keys: Sequence[str], **extra: np.ndarray) -> list[dict[str, Any]]:
    """Up to ``SAMPLE_ROWS`` failing rows as key columns (plus per-row extras such as the observed value)."""
    where = np.flatnonzero(mask)[:SAMPLE_ROWS]
    rows = table.select(list(keys)).take(pa.array(where, type=pa.int64())).to_pylist()
    for row, index in zip(rows, where, strict=True):
        row.update({name: _scalar(values[index]) for name, values in extra.items()})
    return rows


def _scalar(value: Any) -> Any:
    """A numpy scalar as a plain Python value (failing rows go into the publish log as JSON)."""
    return value.item() if isinstance(value, np.generic) else value


def _in(values: pa.Array | pa.ChunkedArray, allowed: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Per value of ``values``: is it in ``allowed``? (null → False)."""
    if isinstance(allowed, pa.ChunkedArray):
        allowed = allowed.combine_chunks()
    return np.asarray(pc.is_in(values, value_set=allowed).fill_null(False), dtype=bool)


# --- (a) every media row is accounted for ------------------------------------------------------------------


def media_has_metadata_or_quarantine(context: AuditContext) -> CheckResult:
    """Every staged active media row has a staged metadata row; every quarantined one a quarantine row."""
    name = "media_has_metadata_or_quarantine"
    media = _staged(context, "media", ["media_id", "uri", "status"])
    metadata_ids = _staged(context, "metadata", ["media_id"]).column("media_id")
    quarantine_ids = _staged(context, "quarantine", ["media_id"]).column("media_id")
    status = media.column("status")
    active = np.asarray(pc.equal(status, "active").fill_null(False), dtype=bool)
    quarantined = np.asarray(pc.equal(status, "quarantined").fill_null(False), dtype=bool)
    ids = media.column("media_id")
    no_metadata = active & ~_in(ids, metadata_ids.combine_chunks())
    no_quarantine = quarantined & ~_in(ids, quarantine_ids.combine_chunks())
    bad = no_metadata | no_quarantine
    if not bad.any():
        return CheckResult(
            name=name,
            table="media",
            passed=True,
            detail=f"{int(active.sum())} active media have metadata, {int(quarantined.sum())} quarantined "
            "have a quarantine row",
        )
    expected = np.where(no_metadata, "metadata", "quarantine")
    parts = []
    if no_metadata.any():
        parts.append(f"{int(no_metadata.sum())} of {int(active.sum())} active media rows have no metadata row")
    if no_quarantine.any():
        parts.append(
            f"{int(no_quarantine.sum())} of {int(quarantined.sum())} quarantined media rows have no quarantine row"
        )
    return CheckResult(
        name=name,
        table="media",
        passed=False,
        detail="; ".join(parts),
        failing_rows=_sample(media, bad, ["media_id", "uri", "status"], missing=expected),
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
    embeddings = _staged(
        context, "embeddings", ["subject_id", "subject_kind", "media_id", "model_id", "source_content_sha256"]
    )
    total = embeddings.num_rows
    if total == 0:
        return CheckResult(name=name, table="embeddings", passed=True, detail="no staged embeddings")
    media_ids = embeddings.column("media_id").combine_chunks()
    staged_media = _staged(context, "media", ["media_id", "content_sha256", "status"])
    missing = pc.unique(pc.filter(media_ids, pa.array(~_in(media_ids, staged_media.column("media_id")))))
    published = _published_lookup(context, "media", "media_id", missing, ["media_id", "content_sha256", "status"])
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
    staged_derived = _staged(context, "derived", ["derived_id"]).column("derived_id").combine_chunks()
    found = _in(subjects, staged_derived)
    unresolved = pc.unique(pc.filter(subjects, pa.array(derived_subject & ~found)))
    published_derived = _published_lookup(context, "derived", "derived_id", unresolved, ["derived_id"])
    found |= _in(subjects, published_derived.column("derived_id").combine_chunks())
    no_derived = derived_subject & ~found

    bad = no_media | wrong_bytes | no_derived
    if not bad.any():
        return CheckResult(
            name=name, table="embeddings", passed=True, detail=f"{total} embeddings reference their media"
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
        table="embeddings",
        passed=False,
        detail="; ".join(parts),
        failing_rows=_sample(embeddings, bad, [*_EMBEDDING_KEYS, "source_content_sha256"], problem=problem),
    )


# --- (c) vectors: finite, the declared length, unit norm where promised ------------------------------------


def vector_row_stats(vectors: pa.ChunkedArray) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per row, slice by slice: (length, count of non-finite values, L2 norm); nulls count as length 0."""
    for chunk in vectors.chunks:
        for start in range(0, len(chunk), _VECTOR_SLICE):
            part = chunk.slice(start, _VECTOR_SLICE)
            lengths = np.asarray(pc.list_value_length(part).fill_null(0), dtype=np.int64)
            values = np.asarray(part.flatten(), dtype=np.float64)  # flatten() honours the slice
            row = np.repeat(np.arange(len(part)), lengths)
            finite = np.isfinite(values)
            non_finite = np.bincount(row, weights=~finite, minlength=len(part))
            squares = np.where(finite, values, 0.0) ** 2
            yield lengths, non_finite, np.sqrt(np.bincount(row, weights=squares, minlength=len(part)))


@dataclass(frozen=True)
class VectorVerdicts:
    """Per embedding row: its vector's length, norm, and which vector rule it breaks (one pass over them)."""

    lengths: np.ndarray
    dims: np.ndarray
    norms: np.ndarray
    normalized: np.ndarray
    non_finite: np.ndarray
    wrong_length: np.ndarray
    not_unit: np.ndarray
    """Normalized, finite, of the right length, and still not of unit norm."""

    @classmethod
    def of(cls, embeddings: pa.Table) -> VectorVerdicts:
        stats = list(vector_row_stats(embeddings.column("vector")))
        lengths = np.concatenate([s[0] for s in stats])
        non_finite = np.concatenate([s[1] for s in stats]) > 0
        norms = np.concatenate([s[2] for s in stats])
        dims = np.asarray(embeddings.column("dim").fill_null(-1), dtype=np.int64)
        normalized = np.asarray(embeddings.column("normalized").fill_null(False), dtype=bool)
        wrong_length = lengths != dims
        not_unit = normalized & ~non_finite & ~wrong_length & (np.abs(norms - 1.0) >= UNIT_NORM_TOLERANCE)
        return cls(lengths, dims, norms, normalized, non_finite, wrong_length, not_unit)


def embedding_vectors(context: AuditContext) -> list[CheckResult]:
    """Three results from one pass over the vectors: finite, ``len(vector) == dim``, unit norm where
    ``normalized`` is true (rows that already failed one of the first two are not judged on their norm)."""
    names = ("embedding_vectors_finite", "embedding_vector_dims", "embedding_vectors_unit_norm")
    embeddings = _staged(context, "embeddings", [*_EMBEDDING_KEYS, "dim", "normalized", "vector"])
    total = embeddings.num_rows
    if total == 0:
        return [CheckResult(name=n, table="embeddings", passed=True, detail="no staged embeddings") for n in names]
    verdicts = VectorVerdicts.of(embeddings)
    lengths, dims, norms, non_finite, wrong_length = (
        verdicts.lengths,
        verdicts.dims,
        verdicts.norms,
        verdicts.non_finite,
        verdicts.wrong_length,
    )
    normalized, not_unit = verdicts.normalized, verdicts.not_unit
    deviation = np.abs(norms - 1.0)
    keys = list(_EMBEDDING_KEYS)

    def result(name: str, bad: np.ndarray, ok: str, failed: str, **extra: np.ndarray) -> CheckResult:
        if not bad.any():
            return CheckResult(name=name, table="embeddings", passed=True, detail=ok)
        return CheckResult(
            name=name,
            table="embeddings",
            passed=False,
            detail=f"{int(bad.sum())} of {total} embeddings {failed}",
            failing_rows=_sample(embeddings, bad, keys, **extra),
        )

    judged = int((normalized & ~non_finite & ~wrong_length).sum())
    worst = float(deviation[not_unit].max()) if not_unit.any() else 0.0
    return [
        result(names[0], non_finite, f"{total} vectors are finite", "have NaN or infinite values"),
        result(
            names[1],
            wrong_length,
            f"{total} vectors have their declared dim",
            "have len(vector) != dim",
            length=lengths,
            dim=dims,
        ),
        result(
            names[2],
            not_unit,
            f"{judged} normalized vectors have unit norm (tolerance {UNIT_NORM_TOLERANCE})",
            f"are not unit norm (max |‖v‖−1| = {worst:.3g})",
            norm=norms,
        ),
    ]


# --- (d) only the configured models ------------------------------------------------------------------------


def embedding_model_check(expected: Mapping[str, int]) -> AuditCheck:
    """A check that staged embeddings come only from the configured models (``model_id`` → ``dim``)."""
    allowed = dict(expected)
    model_ids = pa.array(list(allowed), type=pa.string())
    model_dims = np.asarray(list(allowed.values()), dtype=np.int64)

    def embedding_models(context: AuditContext) -> CheckResult:
        name = "embedding_models"
        embeddings = _staged(context, "embeddings", [*_EMBEDDING_KEYS, "dim"])
        total = embeddings.num_rows
        position = pc.index_in(embeddings.column("model_id"), value_set=model_ids)
        unknown = np.asarray(position.is_null(), dtype=bool)
        want = model_dims[np.asarray(position.fill_null(0), dtype=np.int64)] if len(model_dims) else np.zeros(total)
        dims = np.asarray(embeddings.column("dim").fill_null(-1), dtype=np.int64)
        wrong_dim = ~unknown & (dims != want)
        if not (unknown | wrong_dim).any():
            return CheckResult(
                name=name,
                table="embeddings",
                passed=True,
                detail=(
                    f"all {total} staged embeddings use configured models {sorted(allowed)}"
                    if total
                    else "no embeddings staged in this batch: nothing to check"
                ),
            )
        parts = []
        if unknown.any():
            others = sorted(set(pc.filter(embeddings.column("model_id"), pa.array(unknown)).to_pylist()), key=str)
            parts.append(f"{int(unknown.sum())} of {total} embeddings use unconfigured models {others}")
        if wrong_dim.any():
            parts.append(
                f"{int(wrong_dim.sum())} of {total} embeddings have a dim other than their model's configured one"
            )
        return CheckResult(
            name=name,
            table="embeddings",
            passed=False,
            detail="; ".join(parts) + f" (configured: {allowed})",
            failing_rows=_sample(
                embeddings,
                unknown | wrong_dim,
                list(_EMBEDDING_KEYS),
                dim=dims,
                expected_dim=np.where(
                    unknown, np.array(None, dtype=object), want
                ),  # None: the model is not configured at all
            ),
        )

    return embedding_models
