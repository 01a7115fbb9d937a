"""``ContentSet`` answers membership exactly as a Python set of the same strings would, for digests as
``hexdigest`` writes them and for anything else a column may hold (the fast path and the careful one)."""

from __future__ import annotations

import hashlib

import pyarrow as pa
import pytest

from mm_platform.ingest.content_set import ContentSet

DIGESTS = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(5000)]
STRANGERS = [hashlib.sha256(f"other-{i}".encode()).hexdigest() for i in range(2000)]
ODD = [
    "00" * 32,  # a digest of zero bytes: fixed-width byte strings would lose its trailing zeros
    "ab" * 31 + "00",
    "ab" * 31 + "01",
    "AB" * 32,  # upper case: not as hexdigest writes it, so only the same string matches
    "not a digest",
    "g" * 64,
    "",
    "é" * 64,
    " " + "a" * 63,  # bytes.fromhex would skip the space
]


@pytest.mark.parametrize(
    "values",
    [
        pytest.param(DIGESTS, id="digests"),
        pytest.param(DIGESTS + ODD + [None], id="digests-and-odd-values"),
        pytest.param([*("ab" * 4 + d[8:] for d in DIGESTS[:50]), *DIGESTS[50:60]], id="shared-prefixes"),
        pytest.param(["1" * 64, "2" * 64], id="digits-only"),
        pytest.param([], id="empty"),
    ],
)
def test_membership_is_a_python_sets(values: list[str | None]) -> None:
    chunked = pa.chunked_array([pa.array(values[:7], pa.string()), pa.array(values[7:], pa.string())])
    content = ContentSet(chunked)
    expected = {v for v in values if v is not None}
    probes = [*values, *STRANGERS, *ODD, "ab" * 32, "ab" * 31 + "02", "a" * 63, "G" * 64, None, 5, b"x" * 64]
    assert [p for p in probes if (p in content) != (p in expected)] == []
    assert len(content) == len(values) - values.count(None)


def test_a_sliced_column_is_read_from_its_offset() -> None:
    column = pa.array(DIGESTS, pa.string()).slice(100, 50)
    content = ContentSet(column)
    assert all(d in content for d in DIGESTS[100:150]) and not any(d in content for d in DIGESTS[:100])
