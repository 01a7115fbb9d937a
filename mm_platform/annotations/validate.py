"""Turn file rows into annotation values, or into row problems with a row number and a reason.

Column roles, by name (case and punctuation are normalised: ``"Customer ID"`` is ``customer_id``):

* the key column (``--key-column``, else ``uri`` / ``key`` / ``sha256`` as ``--match`` says) names the media;
* ``--id-column`` tells several annotations of one media apart (several boxes); without it, one per media;
* ``label`` (text), ``score`` (a finite number), a box as ``bbox`` (``[x, y, w, h]`` or ``{"x":…}``; JSON text
  in a CSV) or as ``bbox_x``, ``bbox_y``, ``bbox_w``, ``bbox_h`` (pixels, top-left origin), and ``value``
  (any JSON) are the typed value;
* every other column is an extra field: it becomes a column of ``annotations`` (schema evolution, no
  migration). A column the table already has keeps its type, and a value that does not fit it is rejected;
  a new column takes the narrowest type every value fits (text with leading zeros stays text).

Checked per row, in this order, the first failure being the row's reason: a key (``missing_key``), a match
(``unmatched``, ``ambiguous_key``, a malformed SHA-256 is ``wrong_type``), typed values (``wrong_type``),
something to attach (``empty_row``), the declared vocabulary (``label_not_in_vocabulary``), the box inside every
matched image (``box_outside_image``), then one row per (media, annotation key) (``duplicate_key``: the first
row that passed keeps the key). This is a loop per row on purpose: each row needs its own reason, and an
annotation file is small next to the media it describes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from mm_platform.annotations.match import MatchOutcome, MediaTarget
from mm_platform.annotations.model import MATCH_KINDS, AttachOptions, FileRow, MatchKind, RowProblem
from mm_platform.annotations.parse import AnnotationFile, normalise_column
from mm_platform.annotations.schema import ANNOTATIONS
from mm_platform.annotations.values import (
    WrongType,
    box,
    box_problem,
    convert,
    describe,
    infer_type,
    json_value,
    number,
)
from mm_platform.errors import ConfigError

__all__ = ["Accepted", "ColumnPlan", "Validated", "plan_columns", "validate_rows"]

KEY_CANDIDATES: dict[str, tuple[str, ...]] = {
    "uri": ("uri", "media_uri", "url"),
    "key": ("key", "object_key", "path", "file", "filename"),
    "sha256": ("sha256", "content_sha256"),
}
BOX_PARTS = ("bbox_x", "bbox_y", "bbox_w", "bbox_h")
VALUE_ROLES = ("label", "score", "bbox", *BOX_PARTS, "value")


@dataclass(frozen=True)
class ColumnPlan:
    """What each column of the file is used for."""

    match: MatchKind
    key: str
    id: str | None
    roles: tuple[str, ...]
    """The value columns present (``label``, ``score``, ``bbox``, ``bbox_*``, ``value``)."""
    extras: Mapping[str, pa.DataType]
    """Extra columns and the type they are stored with (the table's type, or inferred from the file)."""
    new_extras: tuple[str, ...]
    """Extra columns ``annotations`` does not have yet: schema evolution adds them."""


@dataclass(frozen=True)
class Accepted:
    """A row that passed: its annotation values and the media it attaches to."""

    row: FileRow
    targets: tuple[MediaTarget, ...]
    annotation_key: str
    match_value: str
    values: dict[str, Any]
    """``value_type``, ``label``, ``score``, ``bbox``, ``value_json`` and the extras, typed."""


@dataclass
class Validated:
    """Every row of a file, either accepted or rejected — nothing else."""

    accepted: list[Accepted] = field(default_factory=list)
    rejected: list[RowProblem] = field(default_factory=list)


def plan_columns(file: AnnotationFile, options: AttachOptions, table: pa.Schema) -> ColumnPlan:
    """Decide the key column, the match kind and the extras; a wrong option is a ConfigError naming the columns."""
    columns = list(file.columns)
    known = ", ".join(file.original_names[c] for c in columns) or "none"
    key = _resolve_column(options.key_column, columns, "--key-column", known) if options.key_column else None
    match: str | None = options.match
    if key is None:
        candidates = KEY_CANDIDATES[match] if match else [c for kind in MATCH_KINDS for c in KEY_CANDIDATES[kind]]
        key = next((c for c in candidates if c in columns), None)
        if key is None:
            wanted = " / ".join(candidates)
            raise ConfigError(
                f"{file.version.uri} has no key column ({wanted}); its columns: {known}",
                hint="name the column that identifies the media with --key-column (and what it holds with --match)",
            )
        match = match or next(kind for kind in MATCH_KINDS if key in KEY_CANDIDATES[kind])
    elif match is None:
        match = _infer_match([r.values.get(key) for r in file.rows])
    id_column = _resolve_column(options.id_column, columns, "--id-column", known) if options.id_column else None
    if id_column == key:
        raise ConfigError(
            "--id-column must differ from the key column", hint="the id tells annotations of one media apart"
        )
    roles = tuple(c for c in VALUE_ROLES if c in columns)
    present_parts = [c for c in BOX_PARTS if c in columns]
    if present_parts and len(present_parts) < len(BOX_PARTS):
        missing = ", ".join(c for c in BOX_PARTS if c not in columns)
        raise ConfigError(f"{file.version.uri}: a box needs {', '.join(BOX_PARTS)}; missing {missing}")
    if "bbox" in columns and present_parts:
        raise ConfigError(f"{file.version.uri}: give a box as bbox or as {', '.join(BOX_PARTS)}, not both")
    used = {key, id_column, *roles}
    reserved = set(ANNOTATIONS.schema.names)
    extras: dict[str, pa.DataType] = {}
    new: list[str] = []
    for column in columns:
        if column in used:
            continue
        if column in reserved:
            raise ConfigError(
                f"{file.version.uri}: column {file.original_names[column]!r} is a name annotations reserve",
                hint=f"rename it; reserved: {', '.join(sorted(reserved))}",
            )
        if column in table.names:
            extras[column] = table.field(column).type
        else:
            extras[column] = infer_type([r.values.get(column) for r in file.rows])
            new.append(column)
    assert match in MATCH_KINDS
    return ColumnPlan(match, key, id_column, roles, extras, tuple(new))  # type: ignore[arg-type]


def _resolve_column(given: str, columns: Sequence[str], option: str, known: str) -> str:
    name = given if given in columns else normalise_column(given)
    if name not in columns:
        raise ConfigError(f"{option} {given!r} is not a column of the file", hint=f"its columns: {known}")
    return name


def _infer_match(values: Sequence[Any]) -> str:
    """What a ``--key-column`` holds, when ``--match`` is not given: URIs, SHA-256s, else object keys."""
    texts = [str(v).strip() for v in values if v is not None]
    if texts and all(t.startswith(("s3://", "file:/")) for t in texts):
        return "uri"
    if texts and all(re.fullmatch(r"[0-9a-fA-F]{64}", t) for t in texts):
        return "sha256"
    return "key"


# --- per row -------------------------------------------------------------------------------------------------


Lookup = Callable[[MatchKind, str], MatchOutcome]


def validate_rows(
    file: AnnotationFile, plan: ColumnPlan, lookup: Lookup, vocabulary: Sequence[str] | None
) -> Validated:
    """Every row of ``file`` accepted or rejected (the file's malformed records are rejected as they are)."""
    result = Validated(rejected=list(file.malformed))
    allowed = None if vocabulary is None else frozenset(vocabulary)
    owners: dict[tuple[str, str], int] = {}
    for row in file.rows:
        outcome = _check_row(row, plan, lookup, allowed)
        if isinstance(outcome, RowProblem):
            result.rejected.append(outcome)
            continue
        clash = next(
            (
                owners[(t.media_id, outcome.annotation_key)]
                for t in outcome.targets
                if (t.media_id, outcome.annotation_key) in owners
            ),
            None,
        )
        if clash is not None:
            result.rejected.append(_duplicate(row, outcome, clash, plan))
            continue
        for target in outcome.targets:
            owners[(target.media_id, outcome.annotation_key)] = row.row
        result.accepted.append(outcome)
    result.rejected.sort(key=lambda p: p.row)
    return result


def _problem(row: FileRow, reason: str, detail: str, media_id: str | None = None) -> RowProblem:
    return RowProblem(row.row, reason, detail, line=row.line, media_id=media_id, raw=row.raw)


def _duplicate(row: FileRow, accepted: Accepted, first: int, plan: ColumnPlan) -> RowProblem:
    what = f"annotation id {accepted.annotation_key!r} for " if plan.id else ""
    hint = "" if plan.id else "; to attach several annotations per media, give each an id (--id-column)"
    return _problem(
        row,
        "duplicate_key",
        f"{what}{accepted.match_value!r} repeats row {first} (same media){hint}",
        accepted.targets[0].media_id,
    )


def _check_row(row: FileRow, plan: ColumnPlan, lookup: Lookup, allowed: frozenset[str] | None) -> Accepted | RowProblem:
    raw_key = row.values.get(plan.key)
    if raw_key is None or (isinstance(raw_key, str) and not raw_key.strip()):
        return _problem(row, "missing_key", f"no value in the key column {plan.key!r}")
    if not isinstance(raw_key, str):
        return _problem(row, "wrong_type", f"{plan.key} must be text, got {describe(raw_key)}")
    match_value = raw_key.strip()
    found = lookup(plan.match, match_value)
    if found.reason is not None:
        return _problem(row, found.reason, found.detail)
    media_id = found.targets[0].media_id
    try:
        annotation_key = _annotation_key(row, plan)
        values = _typed_values(row, plan)
    except WrongType as exc:
        return _problem(row, "wrong_type", str(exc), media_id)
    if values["value_type"] is None:
        return _problem(row, "empty_row", "the row holds no label, score, box, value or extra field", media_id)
    label = values.get("label")
    if allowed is not None and label is not None and label not in allowed:
        shown = ", ".join(sorted(allowed)[:20]) + (" …" if len(allowed) > 20 else "")
        return _problem(
            row, "label_not_in_vocabulary", f"label {label!r} is not in the set's vocabulary ({shown})", media_id
        )
    given_box = values.get("bbox")
    if given_box is not None:
        for target in found.targets:
            outside = box_problem(given_box, target)
            if outside:
                return _problem(row, "box_outside_image", outside, target.media_id)
    return Accepted(row, found.targets, annotation_key, match_value, values)


def _annotation_key(row: FileRow, plan: ColumnPlan) -> str:
    if plan.id is None:
        return ""
    value = row.values.get(plan.id)
    if value is None or isinstance(value, bool) or not isinstance(value, str | int):
        raise WrongType(f"{plan.id} must be text or an integer, got {describe(value)}")
    return str(value).strip()


def _typed_values(row: FileRow, plan: ColumnPlan) -> dict[str, Any]:
    get = row.values.get
    values: dict[str, Any] = {"label": None, "score": None, "bbox": None, "value_json": None}
    label = get("label")
    if label is not None:
        if not isinstance(label, str):
            raise WrongType(f"label must be text, got {describe(label)}")
        values["label"] = label.strip() or None
    if get("score") is not None:
        values["score"] = number(get("score"), "score", finite=True)
    if "bbox" in plan.roles and get("bbox") is not None:
        values["bbox"] = box(get("bbox"))
    elif "bbox_x" in plan.roles and any(get(c) is not None for c in BOX_PARTS):
        empty = [c for c in BOX_PARTS if get(c) is None]
        if empty:
            raise WrongType(f"a box needs all of {', '.join(BOX_PARTS)}; {', '.join(empty)} empty")
        values["bbox"] = box([get(c) for c in BOX_PARTS])
    if get("value") is not None:
        values["value_json"] = json_value(get("value"))
    extras = {name: convert(get(name), kind, name) for name, kind in plan.extras.items()}
    values.update(extras)
    if values["bbox"] is not None:
        values["value_type"] = "box"
    elif values["label"] is not None:
        values["value_type"] = "label"
    elif values["score"] is not None:
        values["value_type"] = "score"
    elif values["value_json"] is not None:
        values["value_type"] = "json"
    elif any(v is not None for v in extras.values()):
        values["value_type"] = "fields"
    else:
        values["value_type"] = None
    return values
