"""Interop: a snapshot's tables are plain Delta + Parquet, readable by DuckDB and Polars without our code,
and they agree with our reader row for row (at the snapshot's pinned version, not the latest)."""

from __future__ import annotations

import duckdb
import polars as pl
import pyarrow.dataset as ds

from mm_platform.catalog import open_lake
from tests.factories import partition_writes


def _rows(table) -> list[tuple]:  # type: ignore[no-untyped-def]
    return sorted(tuple(str(v) for v in row.values()) for row in table.to_pylist())


def test_duckdb_and_polars_read_what_we_read(lake_env: tuple[str, dict[str, str]]) -> None:
    uri, env = lake_env
    lake = open_lake(uri, env)
    lake.publish("b1", partition_writes("b1", 30))
    lake.publish("b2", partition_writes("b2", 20))
    lake.publish("b1", partition_writes("b1", 10, seed=5))
    snap = lake.snapshot(seq=2)  # an older snapshot: other tools must honour the pinned version too
    ours = snap.table("media", columns=["media_id", "partition", "etag"])

    # Polars reads the Delta table itself, at the pinned version, with its own Delta reader.
    storage = dict(lake.location.storage_options) or None
    by_polars = pl.read_delta(lake.location.uri("media"), version=snap.version_of("media"), storage_options=storage)
    assert _rows(by_polars.select(["media_id", "partition", "etag"]).to_arrow()) == _rows(ours)

    # DuckDB queries the snapshot's files (its delta extension cannot be downloaded here).
    dataset = snap.dataset("media")
    assert isinstance(dataset, ds.Dataset)
    con = duckdb.connect()
    con.register("media", dataset)
    by_duckdb = con.execute("select media_id, partition, etag from media").to_arrow_table()
    assert _rows(by_duckdb) == _rows(ours)
    counts = dict(con.execute("select partition, count(*) from media group by 1").fetchall())
    assert counts == {"b1": 30, "b2": 20}
