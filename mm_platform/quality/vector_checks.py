"""Checks on the staged vectors: finite, of the declared length, of unit norm where promised, and only from
the configured models. One numpy pass over the vectors, slice by slice: 100k embeddings cost a few hundred
milliseconds, never a Python loop per row."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mm_platform.lake.audit import AuditCheck, AuditContext, CheckResult
from mm_platform.quality.check_rows import EMBEDDING_KEYS, sample_rows, staged_rows
from mm_platform.tables import EMBEDDINGS

__all__ = ["UNIT_NORM_TOLERANCE", "VectorVerdicts", "embedding_model_check", "embedding_vectors", "vector_row_stats"]

UNIT_NORM_TOLERANCE = 1e-3
_VECTOR_SLICE = 4096  # rows per numpy pass over the vectors: bounds the temporary float64 copies


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
    embeddings = staged_rows(context, EMBEDDINGS.name, [*EMBEDDING_KEYS, "dim", "normalized", "vector"])
    total = embeddings.num_rows
    if total == 0:
        return [CheckResult(name=n, table=EMBEDDINGS.name, passed=True, detail="no staged embeddings") for n in names]
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
    keys = list(EMBEDDING_KEYS)

    def result(name: str, bad: np.ndarray, ok: str, failed: str, **extra: np.ndarray) -> CheckResult:
        if not bad.any():
            return CheckResult(name=name, table=EMBEDDINGS.name, passed=True, detail=ok)
        return CheckResult(
            name=name,
            table=EMBEDDINGS.name,
            passed=False,
            detail=f"{int(bad.sum())} of {total} embeddings {failed}",
            failing_rows=sample_rows(embeddings, bad, keys, **extra),
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
        embeddings = staged_rows(context, EMBEDDINGS.name, [*EMBEDDING_KEYS, "dim"])
        total = embeddings.num_rows
        position = pc.index_in(embeddings.column("model_id"), value_set=model_ids)
        unknown = np.asarray(position.is_null(), dtype=bool)
        want = model_dims[np.asarray(position.fill_null(0), dtype=np.int64)] if len(model_dims) else np.zeros(total)
        dims = np.asarray(embeddings.column("dim").fill_null(-1), dtype=np.int64)
        wrong_dim = ~unknown & (dims != want)
        if not (unknown | wrong_dim).any():
            return CheckResult(
                name=name,
                table=EMBEDDINGS.name,
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
            table=EMBEDDINGS.name,
            passed=False,
            detail="; ".join(parts) + f" (configured: {allowed})",
            failing_rows=sample_rows(
                embeddings,
                unknown | wrong_dim,
                list(EMBEDDING_KEYS),
                dim=dims,
                expected_dim=np.where(
                    unknown, np.array(None, dtype=object), want
                ),  # None: the model is not configured at all
            ),
        )

    return embedding_models
