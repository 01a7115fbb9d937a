"""Row factories for lake tests and benchmarks: plausible media/metadata/embedding rows for a partition, and a
large media table of minimal rows (the branch tests and benchmark)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa

from mm_platform.catalog import CATALOG
from mm_platform.lake import RowFilter, TableWrite


def _h(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def partition_rows(
    partition: str, n: int, *, dim: int = 8, run_id: str = "run-test", seed: int = 0
) -> dict[str, pa.Table]:
    """n media objects of one partition, with metadata and one embedding each."""
    now = datetime(2026, 1, 1, tzinfo=UTC)
    ids = [_h(f"s3://bucket/{partition}/{i}.jpg")[:32] for i in range(n)]
    shas = [_h(f"content-{partition}-{i}") for i in range(n)]
    lineage = {
        "partition": [partition] * n,
        "run_id": [run_id] * n,
        "producer_version": ["1"] * n,
        "source_content_sha256": shas,
    }
    media = pa.table(
        {
            "media_id": ids,
            "uri": [f"s3://bucket/{partition}/{i}.jpg" for i in range(n)],
            "source": ["s3://bucket"] * n,
            "key": [f"{partition}/{i}.jpg" for i in range(n)],
            "etag": [s[:32] for s in shas],
            "size_bytes": pa.array(range(1000, 1000 + n), pa.int64()),
            "content_sha256": shas,
            "mime_type": ["image/jpeg"] * n,
            "modality": ["image"] * n,
            "status": ["active"] * n,
            "registered_at": pa.array([now] * n, pa.timestamp("us", tz="UTC")),
            "producer": ["register"] * n,
            **lineage,
        }
    )
    metadata = pa.table(
        {
            "media_id": ids,
            "content_sha256": shas,
            "modality": ["image"] * n,
            "width": pa.array([640 + (i % 7) for i in range(n)], pa.int64()),
            "height": pa.array([480] * n, pa.int64()),
            "producer": ["probe"] * n,
            **lineage,
        }
    )
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    embeddings = pa.table(
        {
            "subject_id": ids,
            "subject_kind": ["media"] * n,
            "media_id": ids,
            "model_id": ["test-model"] * n,
            "model_revision": ["r1"] * n,
            "dim": pa.array([dim] * n, pa.int32()),
            "normalized": [True] * n,
            "vector": pa.array(list(vectors), pa.list_(pa.float32())),
            "producer": ["test-model"] * n,
            **lineage,
        }
    )
    return {"media": media, "metadata": metadata, "embeddings": embeddings}


def partition_writes(partition: str, n: int, **kwargs: object) -> dict[str, TableWrite]:
    """The writes that (re)publish a partition: its rows replace whatever the partition had before."""
    rows = partition_rows(partition, n, **kwargs)  # type: ignore[arg-type]
    return {name: TableWrite(table, replace=(RowFilter("partition", (partition,)),)) for name, table in rows.items()}


def large_media_rows(n: int) -> pa.Table:
    """``n`` minimal media rows of one partition ``big`` (1M build in seconds): the branch tests and benchmark."""
    now = pa.array([0] * n, pa.int64()).cast(pa.timestamp("us", tz="UTC"))
    return pa.table(
        {
            "media_id": pa.array([f"{i:032x}" for i in range(n)]),
            "uri": pa.array([f"s3://big/{i}.jpg" for i in range(n)]),
            "source": pa.array(["s3://big"] * n),
            "key": pa.array([f"{i}.jpg" for i in range(n)]),
            "size_bytes": pa.array(range(n), pa.int64()),
            "status": pa.array(["active"] * n),
            "registered_at": now,
            "producer": pa.array(["register"] * n),
            "producer_version": pa.array(["1"] * n),
            "run_id": pa.array(["big"] * n),
            "partition": pa.array(["big"] * n),
        }
    )


def data_files(root: Path) -> set[Path]:
    """The data files in a local lake's table folders (not logs, not the lake's own records)."""
    return {p for name in CATALOG for p in (root / name).glob("*.parquet")}
