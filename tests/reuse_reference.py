"""The reuse index read one row at a time, as it was built before it went columnar: the reference the columnar
``ReuseIndex`` must agree with (``tests/test_pipeline.py``) and the baseline it is timed against
(``benchmarks/reuse_index.py``)."""

from __future__ import annotations

import pyarrow.compute as pc

from mm_platform.ingest.analyze import ANALYZE_VERSION
from mm_platform.ingest.reuse import ModelRef
from mm_platform.lake import Snapshot
from mm_platform.quality.row_gate import VALIDATION_STAGE
from mm_platform.roles import ROLE_OF_MODALITY


def reuse_row_by_row(snap: Snapshot, models: dict[str, ModelRef]) -> tuple[set[str], set[str]]:
    """What the published rows say, read one row at a time (how the index was built before it went columnar)."""
    version = pc.field("producer_version") == ANALYZE_VERSION
    metadata = snap.table("metadata", columns=["content_sha256", "modality", "text_chunks"], filter=version)
    media_vectors = snap.table(
        "embeddings",
        columns=["source_content_sha256", "model_id", "model_revision"],
        filter=pc.field("subject_kind") == "media",
    ).to_pylist()
    embedded = {(r["source_content_sha256"], r["model_id"], r["model_revision"]) for r in media_vectors}
    complete = set()
    for row in metadata.to_pylist():
        role = ROLE_OF_MODALITY.get(row["modality"])
        needs_vector = role == "image" or (role == "text" and (row["text_chunks"] or 0) > 0)
        model = models.get(role or "")
        if not needs_vector or (model and (row["content_sha256"], model.model_id, model.revision) in embedded):
            complete.add(row["content_sha256"])
    quarantined = {
        r["content_sha256"]
        for r in snap.table("quarantine", columns=["content_sha256", "producer_version", "stage"]).to_pylist()
        if r["content_sha256"]
        and r["producer_version"] == ANALYZE_VERSION
        and r["stage"] not in ("register", VALIDATION_STAGE)
    }
    return complete, quarantined
