"""Great Expectations suites per table, run on a stage's new rows before anything is published.

Suites are declared as plain data (:class:`Rule`, :class:`TableSuite`), so reading or listing them needs
no Great Expectations import; the library (≈6 s to import) is loaded on the first validation and its
ephemeral context — which writes no files — is built once per process.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, get_args

import pyarrow as pa

from mm_platform.lake.audit import CheckResult
from mm_platform.log import get_logger, kv
from mm_platform.media.quarantine import QuarantineReason
from mm_platform.media.sniff import Modality
from mm_platform.tables import DERIVED, EMBEDDINGS, MEDIA, METADATA, QUARANTINE

__all__ = ["SUITES", "Rule", "TableSuite", "validate_table", "warm_up"]

log = get_logger("mm_platform.quality.expectations")

SAMPLE_ROWS = 10
MEDIA_STATUSES = ("active", "quarantined", "deleted")
MODALITIES: tuple[str, ...] = get_args(Modality)
DERIVED_KINDS = ("thumbnail", "keyframe", "text_chunk", "label")
QUARANTINE_REASONS: tuple[str, ...] = tuple(r.value for r in QuarantineReason)  # "unreadable" included
SHA256 = r"^[0-9a-f]{64}$"
MAX_THUMBNAIL_SIDE = 256


@dataclass(frozen=True)
class Rule:
    """One expectation, declared without importing Great Expectations."""

    expectation: str
    """Class name in ``great_expectations.expectations``, e.g. ``ExpectColumnValuesToBeUnique``."""
    kwargs: Mapping[str, Any]
    """Keyword arguments of that class (``column``, ``value_set``, ``min_value`` …)."""
    when: tuple[str, tuple[str, ...]] | None = None
    """Only rows whose column (first) holds one of the values (second); becomes a GX row condition."""

    @property
    def columns(self) -> tuple[str, ...]:
        own = tuple(self.kwargs.get("column_list", ())) or (self.kwargs["column"],)
        return own + ((self.when[0],) if self.when else ())

    def describe(self) -> str:
        cols = ",".join(self.kwargs.get("column_list", ())) or self.kwargs["column"]
        where = f" where {self.when[0]} in {list(self.when[1])}" if self.when else ""
        return f"{self.expectation}({cols}){where}"


@dataclass(frozen=True)
class TableSuite:
    """The expectations one table's staged rows must meet."""

    table: str
    keys: tuple[str, ...]
    """Columns that name a failing row in ``failing_rows``."""
    rules: tuple[Rule, ...] = field(default_factory=tuple)

    @property
    def columns(self) -> list[str]:
        """Every column the suite reads: only these are converted to pandas (never vectors or bytes)."""
        return list(dict.fromkeys([*self.keys, *(c for rule in self.rules for c in rule.columns)]))


def _rule(expectation: str, when: tuple[str, tuple[str, ...]] | None = None, **kwargs: Any) -> Rule:
    return Rule(f"Expect{expectation}", kwargs, when)


def _not_null(column: str) -> Rule:
    return _rule("ColumnValuesToNotBeNull", column=column)


def _unique(column: str) -> Rule:
    return _rule("ColumnValuesToBeUnique", column=column)


def _in_set(column: str, values: Sequence[str]) -> Rule:
    return _rule("ColumnValuesToBeInSet", column=column, value_set=list(values))


def _between(column: str, low: float | None, high: float | None = None, **when: tuple[str, ...]) -> Rule:
    condition = next(iter(when.items())) if when else None
    return _rule("ColumnValuesToBeBetween", condition, column=column, min_value=low, max_value=high)


def _matches(column: str, regex: str) -> Rule:
    return _rule("ColumnValuesToMatchRegex", column=column, regex=regex)


SUITES: dict[str, TableSuite] = {
    suite.table: suite
    for suite in (
        TableSuite(
            MEDIA.name,
            ("media_id", "uri"),
            (
                _not_null("media_id"),
                _unique("media_id"),
                _not_null("uri"),
                _between("size_bytes", 0),
                _in_set("status", MEDIA_STATUSES),
                _in_set("modality", MODALITIES),
                _matches("content_sha256", SHA256),  # nulls (nothing was read) are not checked
            ),
        ),
        TableSuite(
            METADATA.name,
            ("media_id",),
            (
                _not_null("media_id"),
                _unique("media_id"),
                _matches("content_sha256", SHA256),
                # No upper bound: a 120000x8 panorama is a valid image. The real bound is the decoder's pixel
                # budget (mm_platform.media.budget.MAX_IMAGE_PIXELS), enforced before any pixel is decoded.
                _between("width", 1),
                _between("height", 1),
                _between("duration_s", 0),
                _between("page_count", 0),
            ),
        ),
        TableSuite(
            DERIVED.name,
            ("derived_id", "media_id", "kind"),
            (
                _not_null("derived_id"),
                _unique("derived_id"),
                _not_null("media_id"),
                _in_set("kind", DERIVED_KINDS),
                _between("width", 1, MAX_THUMBNAIL_SIDE, kind=("thumbnail", "keyframe")),
                _between("height", 1, MAX_THUMBNAIL_SIDE, kind=("thumbnail", "keyframe")),
                _between("score", 0, 1, kind=("label",)),
            ),
        ),
        TableSuite(
            EMBEDDINGS.name,
            ("subject_id", "model_id"),
            (
                _rule("CompoundColumnsToBeUnique", column_list=["subject_id", "model_id"]),
                _not_null("media_id"),
                _in_set("subject_kind", ("media", "derived")),
                _between("dim", 1),
                _rule("ColumnValuesToBeOfType", column="normalized", type_="bool"),
            ),
        ),
        TableSuite(
            QUARANTINE.name,
            ("media_id", "reason"),
            (
                _not_null("media_id"),
                _unique("media_id"),
                _in_set("reason", QUARANTINE_REASONS),
                _not_null("stage"),
                _not_null("detail"),
                _matches("detail", r"\S"),  # not empty, not only whitespace
            ),
        ),
    )
}


# --- Great Expectations, loaded lazily ---------------------------------------------------------------------

_LOCK = threading.Lock()
_CONTEXT: Any = None
_BATCHES: dict[str, Any] = {}


def _gx() -> Any:
    """The ``great_expectations`` module, imported on first use with its usage analytics off."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations

    return great_expectations


def _batch_definition(table: str) -> Any:
    """The whole-dataframe batch definition of ``table`` in this process's ephemeral context."""
    global _CONTEXT
    with _LOCK:
        if _CONTEXT is None:
            gx = _gx()
            from great_expectations.data_context.types.base import ProgressBarsConfig

            context = gx.get_context(mode="ephemeral")
            context.variables.progress_bars = ProgressBarsConfig(globally=False)
            context.data_sources.add_pandas("mm_platform_staged")
            _CONTEXT = context
        if table not in _BATCHES:
            asset = _CONTEXT.data_sources.get("mm_platform_staged").add_dataframe_asset(name=table)
            _BATCHES[table] = asset.add_batch_definition_whole_dataframe("staged_rows")
        return _BATCHES[table]


def warm_up() -> None:
    """Import Great Expectations and build the context, the batch definitions and every suite's expectations
    now, so the first validation does not pay for them (the validation process does this as it starts)."""
    for suite in SUITES.values():
        _batch_definition(suite.table)
        for rule in suite.rules:
            _expectation(rule)


def _expectation(rule: Rule) -> Any:
    gxe = _gx().expectations
    from great_expectations.expectations.row_conditions import Column

    kwargs = dict(rule.kwargs)
    if rule.when is not None:
        kwargs["row_condition"] = Column(rule.when[0]).is_in(list(rule.when[1]))
    return getattr(gxe, rule.expectation)(**kwargs)


def validate_table(suite: TableSuite, rows: pa.Table) -> CheckResult:
    """Validate ``rows`` against ``suite``; failing expectations and sample rows go into the result."""
    name = f"gx_{suite.table}"
    if rows.num_rows == 0:
        return CheckResult(name=name, table=suite.table, passed=True, detail="no staged rows")
    present = [c for c in suite.columns if c in rows.column_names]  # a missing column fails its expectation
    frame = rows.select(present).to_pandas()
    gx_suite = _gx().ExpectationSuite(name=name, expectations=[_expectation(rule) for rule in suite.rules])
    batch = _batch_definition(suite.table).get_batch(batch_parameters={"dataframe": frame})
    keys = [k for k in suite.keys if k in present]
    result_format = {
        "result_format": "SUMMARY",
        "partial_unexpected_count": SAMPLE_ROWS,
        "unexpected_index_column_names": keys,
    }
    outcome = batch.validate(gx_suite, result_format=result_format)
    problems: list[str] = []
    samples: list[dict[str, Any]] = []
    for rule, res in zip(suite.rules, outcome.results, strict=True):
        if res.success:
            continue
        problems.append(f"{rule.describe()}: {_summary(res.result, res.exception_info, rows.num_rows)}")
        for row in res.result.get("partial_unexpected_index_list") or []:
            if len(samples) < SAMPLE_ROWS:
                samples.append({"expectation": rule.describe(), **{k: _publish_log_value(v) for k, v in row.items()}})
    detail = (
        f"{len(problems)} of {len(suite.rules)} expectations failed on {_rows(rows.num_rows)}: " + "; ".join(problems)
        if problems
        else f"all {len(suite.rules)} expectations met by {_rows(rows.num_rows)}"
    )
    log.info("gx %s", kv(table=suite.table, rows=rows.num_rows, failed=len(problems)))
    return CheckResult(name=name, table=suite.table, passed=not problems, detail=detail, failing_rows=tuple(samples))


def _rows(n: int) -> str:
    return f"{n} row" if n == 1 else f"{n} rows"


def _summary(result: Mapping[str, Any], exception: Mapping[str, Any] | None, total: int) -> str:
    if exception and exception.get("raised_exception"):
        return f"could not run ({exception.get('exception_message')})"
    if "unexpected_count" in result:
        values = [_publish_log_value(v) for v in (result.get("partial_unexpected_list") or [])[:3]]
        counted = result.get("element_count", total)
        return f"{result['unexpected_count']} of {counted} rows unexpected (e.g. {values})"
    return f"observed {result.get('observed_value')!r}"


def _publish_log_value(value: Any) -> Any:
    """A JSON-friendly Python value (the publish log stores failing rows as JSON)."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, tuple | list):
        return [_publish_log_value(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return None if str(value) in ("<NA>", "NaT") else str(value)
