"""Gates per row: a failed expectation about one object's row quarantines that object, not its batch.

The per-table suites (:data:`~mm_platform.quality.expectations.SUITES`) declare each rule once. The rules
about a single row — a range, a value set, a pattern, not-null — and the vector checks (finite, declared
length, unit norm) are evaluated here, vectorised with pyarrow, on the rows a batch is about to stage. An
object any of whose rows fails becomes a ``quarantine`` row (stage ``validation``, reason ``invalid``, the
check, column and value in its detail) and its other rows are not staged, so the rest of the batch
publishes. What is systemic stays a blocking audit check: uniqueness and schema (the suites run in full on
the stage), cross-table invariants, and :func:`validation_share_check` — more than a set share of a
batch's objects failing means a broken producer (a model emitting NaN for everything), not odd files.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mm_platform.lake.audit import AuditCheck, AuditContext, CheckResult
from mm_platform.quality.expectations import SUITES, Rule
from mm_platform.quality.vector_checks import UNIT_NORM_TOLERANCE, VectorVerdicts
from mm_platform.tables import EMBEDDINGS, MEDIA, QUARANTINE

__all__ = [
    "DEFAULT_MAX_INVALID_SHARE",
    "VALIDATION_STAGE",
    "RowFailure",
    "failures_by_object",
    "row_failures",
    "validation_share_check",
]

VALIDATION_STAGE = "validation"
DEFAULT_MAX_INVALID_SHARE = 0.2
"""More than this share of a batch's objects failing row rules blocks the batch (at least two objects)."""
_SHOWN_OBJECTS = 10


@dataclass(frozen=True)
class RowFailure:
    """The first rule one object's row failed."""

    media_id: str
    check: str
    """The check the rule belongs to (``gx_metadata``, ``embedding_vectors_finite`` …)."""
    column: str
    value: Any
    rule: str

    def detail(self) -> str:
        return f"{self.check}: {self.rule} failed: {self.column} = {_shown(self.value)}"


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _rule_mask(rule: Rule, rows: pa.Table) -> np.ndarray | None:
    """Per row: does it break ``rule``? ``None`` for rules about the whole batch (uniqueness, types)."""
    name, kwargs = rule.expectation, rule.kwargs
    column = kwargs.get("column")
    if column is None or column not in rows.column_names:
        return None  # compound rules and missing columns are the batch-level suite's to judge
    values = rows.column(column)
    valid = np.asarray(pc.is_valid(values), dtype=bool)  # GX: nulls pass every rule but not-null
    if name == "ExpectColumnValuesToNotBeNull":
        bad = ~valid
    elif name == "ExpectColumnValuesToBeInSet":
        allowed = pa.array(kwargs["value_set"], type=values.type)
        bad = valid & ~np.asarray(pc.is_in(values, value_set=allowed).fill_null(False), dtype=bool)
    elif name == "ExpectColumnValuesToBeBetween":
        bad = np.zeros(rows.num_rows, dtype=bool)
        if kwargs.get("min_value") is not None:
            bad |= np.asarray(pc.less(values, kwargs["min_value"]).fill_null(False), dtype=bool)
        if kwargs.get("max_value") is not None:
            bad |= np.asarray(pc.greater(values, kwargs["max_value"]).fill_null(False), dtype=bool)
    elif name == "ExpectColumnValuesToMatchRegex":
        matched = pc.match_substring_regex(values, kwargs["regex"]).fill_null(True)
        bad = valid & ~np.asarray(matched, dtype=bool)
    else:
        return None
    if rule.when is not None:
        when_column, when_values = rule.when
        if when_column not in rows.column_names:
            return None
        applies = pc.is_in(rows.column(when_column), value_set=pa.array(when_values)).fill_null(False)
        bad &= np.asarray(applies, dtype=bool)
    return bad


def _vector_masks(rows: pa.Table) -> Iterable[tuple[str, str, np.ndarray, np.ndarray]]:
    """(check, rule, bad rows, observed value) for the vector checks of staged embeddings."""
    if rows.num_rows == 0 or "vector" not in rows.column_names:
        return
    v = VectorVerdicts.of(rows)
    yield "embedding_vectors_finite", "finite values", v.non_finite, np.where(v.non_finite, "NaN or infinite", "")
    yield "embedding_vector_dims", "len(vector) == dim", v.wrong_length & ~v.non_finite, v.lengths
    yield "embedding_vectors_unit_norm", f"unit norm (tolerance {UNIT_NORM_TOLERANCE})", v.not_unit, v.norms


def row_failures(table: str, rows: pa.Table) -> dict[str, RowFailure]:
    """The objects (by ``media_id``) with a row of ``table`` that breaks a row rule: their first failure."""
    if rows.num_rows == 0 or "media_id" not in rows.column_names:
        return {}
    found: dict[str, RowFailure] = {}
    media_ids = rows.column("media_id").to_pylist()

    def note(check: str, rule: str, column: str, bad: np.ndarray, observed: Any) -> None:
        for index in np.flatnonzero(bad):
            media_id = media_ids[index]
            if media_id is not None and media_id not in found:
                value = observed[index] if observed is not None else rows.column(column)[int(index)].as_py()
                found[media_id] = RowFailure(media_id, check, column, _python_scalar(value), rule)

    suite = SUITES.get(table)
    for rule in suite.rules if suite is not None else ():
        bad = _rule_mask(rule, rows)
        if bad is not None and bad.any():
            note(f"gx_{table}", rule.describe(), str(rule.kwargs["column"]), bad, None)
    if table == EMBEDDINGS.name:
        for check, wanted, bad, observed in _vector_masks(rows):
            if bad.any():
                note(check, wanted, "vector", bad, observed)
    return found


def _python_scalar(value: Any) -> Any:
    """A numpy scalar as the Python value it holds (failure details are shown and stored as JSON)."""
    return value.item() if isinstance(value, np.generic) else value


def validation_share_check(max_share: float = DEFAULT_MAX_INVALID_SHARE) -> AuditCheck:
    """Block the batch when more than ``max_share`` of its objects (and at least two) failed row rules.

    One odd object never holds back the others; most of a batch failing the same way is systemic (a
    broken model, a wrong extractor), and publishing it as "quarantined" would hide the breakage.
    """

    def validation_share(context: AuditContext) -> CheckResult:
        name = "validation_share"
        if MEDIA.name not in context.staged or QUARANTINE.name not in context.staged:
            return CheckResult(name=name, table=QUARANTINE.name, passed=True, detail="nothing staged")
        objects = context.staged[MEDIA.name].num_rows
        quarantine = context.staged[QUARANTINE.name]
        invalid = quarantine.filter(pc.equal(quarantine.column("stage"), VALIDATION_STAGE).fill_null(False))
        count = invalid.num_rows
        share = count / objects if objects else 0.0
        if count < 2 or share <= max_share:
            return CheckResult(
                name=name,
                table=QUARANTINE.name,
                passed=True,
                detail=f"{count} of {objects} objects failed a row rule (limit: more than {max_share:.0%})",
            )
        shown = invalid.select(["uri", "detail"]).slice(0, _SHOWN_OBJECTS).to_pylist()
        return CheckResult(
            name=name,
            table=QUARANTINE.name,
            passed=False,
            detail=(
                f"{count} of {objects} objects ({share:.0%}, limit {max_share:.0%}) failed row rules, which points "
                "at a broken producer rather than odd files: "
                + "; ".join(f"{row['uri']}: {row['detail']}" for row in shown)
                + (" …" if count > len(shown) else "")
            ),
            failing_rows=tuple({"uri": row["uri"], "detail": row["detail"]} for row in shown),
        )

    return validation_share


def failures_by_object(tables: Mapping[str, pa.Table]) -> dict[str, RowFailure]:
    """Row failures across several tables' rows, one (the first found) per object."""
    found: dict[str, RowFailure] = {}
    for table, rows in tables.items():
        for media_id, failure in row_failures(table, rows).items():
            found.setdefault(media_id, failure)
    return found
