"""Typing one annotation value: the narrowest type of a new column, text parsed into a column's type, numbers,
boxes and JSON values checked, and a value described for a row's reason. A value that does not fit raises
``WrongType`` with the row's detail as its message."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import pyarrow as pa

from mm_platform.annotations.match import MediaTarget

__all__ = ["WrongType", "box", "box_problem", "convert", "describe", "infer_type", "json_value", "number"]

_INT = re.compile(r"^[+-]?(0|[1-9][0-9]*)$")
_TRUE, _FALSE = frozenset({"true", "yes"}), frozenset({"false", "no"})


class WrongType(ValueError):
    """A value that does not fit its column's type (the message is the row's detail)."""


def infer_type(values: Sequence[Any]) -> pa.DataType:
    """The narrowest of bool, int64, float64 and string that every (non-null) value of a new column fits."""
    present = [v for v in values if v is not None]
    if not present:
        return pa.string()
    if all(isinstance(v, str) for v in present):  # CSV text
        lowered = [v.strip().lower() for v in present]
        if all(v in _TRUE | _FALSE for v in lowered):
            return pa.bool_()
        if all(_INT.match(v) for v in lowered):
            return pa.int64()
        if all(_is_decimal(v) for v in lowered):
            return pa.float64()
        return pa.string()
    if all(isinstance(v, bool) for v in present):
        return pa.bool_()
    if all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return pa.int64()
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return pa.float64()
    return pa.string()


def _is_decimal(text: str) -> bool:
    if re.match(r"^[+-]?0[0-9]", text):  # leading zeros: an identifier, not a number
        return False
    try:
        float(text)
    except ValueError:
        return False
    return True


def number(value: Any, name: str, *, finite: bool = False) -> float:
    if isinstance(value, bool):
        raise WrongType(f"{name} must be a number, got {describe(value)}")
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise WrongType(f"{name} must be a number, got {value!r}") from None
    elif isinstance(value, int | float):
        number = float(value)
    else:
        raise WrongType(f"{name} must be a number, got {describe(value)}")
    if finite and not math.isfinite(number):
        raise WrongType(f"{name} must be a finite number, got {value!r}")
    return number


def box(value: Any) -> dict[str, float]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise WrongType(f'bbox must be [x, y, w, h] or {{"x", "y", "w", "h"}}, got {value!r}') from None
    if isinstance(value, dict):
        names = {k.lower(): v for k, v in value.items()}
        names.setdefault("w", names.get("width"))
        names.setdefault("h", names.get("height"))
        if any(names.get(k) is None for k in "xywh"):
            raise WrongType(f"bbox needs x, y, w and h, got {json.dumps(value)}")
        parts = [names[k] for k in "xywh"]
    elif isinstance(value, list) and len(value) == 4:
        parts = value
    else:
        raise WrongType(f'bbox must be [x, y, w, h] or {{"x", "y", "w", "h"}}, got {describe(value)}')
    x, y, w, h = (number(p, "a box coordinate", finite=True) for p in parts)
    if w <= 0 or h <= 0:
        raise WrongType(f"a box needs a positive width and height, got w={w:g}, h={h:g}")
    return {"x": x, "y": y, "w": w, "h": h}


def box_problem(box: Mapping[str, float], target: MediaTarget) -> str:
    where = f"box (x={box['x']:g}, y={box['y']:g}, w={box['w']:g}, h={box['h']:g})"
    if target.width is None or target.height is None:
        return f"{where} on {target.key}, which has no image size ({target.modality or 'unknown'} media)"
    outside = []
    if box["x"] < 0 or box["y"] < 0:
        outside.append("starts left of or above the image")
    if box["x"] + box["w"] > target.width:
        outside.append(f"x + w = {box['x'] + box['w']:g} > width {target.width}")
    if box["y"] + box["h"] > target.height:
        outside.append(f"y + h = {box['y'] + box['h']:g} > height {target.height}")
    if not outside:
        return ""
    return f"{where} is outside {target.key} ({target.width}×{target.height}): {'; '.join(outside)}"


def json_value(value: Any) -> str:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise WrongType(f'value must be JSON, got {value!r} (quote text: "…")') from None
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def convert(value: Any, kind: pa.DataType, name: str) -> Any:
    """``value`` as a value of ``kind`` (text parsed), or ``WrongType`` naming the column."""
    if value is None:
        return None
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        if isinstance(value, bool):
            return "true" if value else "false"
        return (
            value
            if isinstance(value, str)
            else (json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else str(value))
        )
    text = value.strip().lower() if isinstance(value, str) else None
    if pa.types.is_boolean(kind):
        if isinstance(value, bool):
            return value
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise WrongType(f"{name} holds true/false; got {describe(value)}")
    if pa.types.is_integer(kind):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if text is not None and _INT.match(text):
            return int(text)
        raise WrongType(f"{name} holds integers; got {describe(value)}")
    if pa.types.is_floating(kind):
        return number(value, name)
    if pa.types.is_timestamp(kind) and isinstance(value, str):
        try:
            return datetime.fromisoformat(value.strip())
        except ValueError:
            raise WrongType(f"{name} holds times; got {value!r}") from None
    try:
        return pa.scalar(value, type=kind).as_py()
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
        raise WrongType(f"{name} holds {kind}; got {describe(value)}") from None


def describe(value: Any) -> str:
    kind = {bool: "true/false", int: "a number", float: "a number", dict: "an object", list: "a list"}.get(
        type(value), type(value).__name__
    )
    return f"{kind} {json.dumps(value, default=str)}" if value is not None else "nothing"
