"""Row-wise equality of two aligned Arrow arrays, nested types included, without a Python loop per row.

Used by the snapshot diff and by a merge to decide whether a row that kept its key changed. Comparing the values
themselves (rather than a hash of them) cannot report a false "unchanged", and it tells which columns
changed, which is what a user asks next.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

__all__ = ["same_values"]

BoolArray = NDArray[np.bool_]


def _to_numpy(values: pa.Array | pa.ChunkedArray) -> BoolArray:
    return np.asarray(values.to_numpy(zero_copy_only=False), dtype=bool)


def _as_array(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def _comparable(values: pa.Array) -> pa.Array:
    """The same values in a type the comparisons below understand (no dictionary, map or extension)."""
    if isinstance(values, pa.ExtensionArray):
        values = values.storage
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    if pa.types.is_map(values.type):
        # Maps have no flatten/length kernels; as list<struct<key, value>> they do, entry order kept.
        map_type = values.type
        values = values.cast(pa.list_(pa.struct([map_type.key_field, map_type.item_field])))
    return values


def _is_list(data_type: pa.DataType) -> bool:
    return bool(
        pa.types.is_list(data_type) or pa.types.is_large_list(data_type) or pa.types.is_fixed_size_list(data_type)
    )


def same_values(left: pa.Array | pa.ChunkedArray, right: pa.Array | pa.ChunkedArray) -> BoolArray:
    """Per row: whether ``left[i]`` equals ``right[i]``. Two nulls are equal; so are two NaNs.

    Arrays of different types are compared after casting ``right`` to ``left``'s type; when that cast is
    impossible, only rows where both are null count as equal.
    """
    a, b = _comparable(_as_array(left)), _comparable(_as_array(right))
    if len(a) != len(b):
        raise ValueError(f"cannot compare arrays of {len(a)} and {len(b)} rows")
    if a.type != b.type:
        try:
            b = _comparable(b.cast(a.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            return ~(_to_numpy(a.is_valid()) | _to_numpy(b.is_valid()))
    valid_a, valid_b = _to_numpy(a.is_valid()), _to_numpy(b.is_valid())
    both = valid_a & valid_b
    equal = np.zeros(len(a), dtype=bool)
    rows = np.flatnonzero(both)
    if len(rows):
        # Compare only rows where both sides hold a value: nested children of null slots are undefined.
        if len(rows) == len(a):
            equal = _same_valid(a, b)
        else:
            indices = pa.array(rows, pa.int64())
            equal[rows] = _same_valid(a.take(indices), b.take(indices))
    return (~valid_a & ~valid_b) | (both & equal)


def _same_valid(a: pa.Array, b: pa.Array) -> BoolArray:
    """Equality of two same-typed arrays with no nulls at the top level."""
    data_type = a.type
    if pa.types.is_null(data_type):
        return np.ones(len(a), dtype=bool)
    if pa.types.is_struct(data_type):
        result = np.ones(len(a), dtype=bool)
        for child_a, child_b in zip(a.flatten(), b.flatten(), strict=True):
            result &= same_values(child_a, child_b)
        return result
    if _is_list(data_type):
        return _same_lists(a, b)
    if pa.types.is_floating(data_type):
        nan_both = _to_numpy(pc.and_(pc.is_nan(a), pc.is_nan(b)))
        return _to_numpy(pc.equal(a, b).fill_null(False)) | nan_both
    try:
        return _to_numpy(pc.equal(a, b).fill_null(False))
    except pa.ArrowNotImplementedError:
        # A type without an equality kernel (e.g. a union): rare enough for Python's comparison.
        return np.array([x == y for x, y in zip(a.to_pylist(), b.to_pylist(), strict=True)], dtype=bool)


def _same_lists(a: pa.Array, b: pa.Array) -> BoolArray:
    """Lists are equal when their lengths are, and their flattened elements pairwise are."""
    lengths_a = np.asarray(pc.list_value_length(a).fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
    lengths_b = np.asarray(pc.list_value_length(b).fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
    result = lengths_a == lengths_b
    rows = np.flatnonzero(result & (lengths_a > 0))
    if not len(rows):
        return result
    indices = pa.array(rows, pa.int64())
    # Equal lengths on the selected rows, so the flattened children line up element for element.
    flat_a, flat_b = pc.list_flatten(a.take(indices)), pc.list_flatten(b.take(indices))
    element_same = same_values(flat_a, flat_b)
    owner = np.repeat(rows, lengths_a[rows])
    result[np.unique(owner[~element_same])] = False
    return result
