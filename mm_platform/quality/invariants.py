"""Invariants of a published snapshot that must hold whatever was published, rolled back or re-embedded."""

from __future__ import annotations

from collections import Counter

import pyarrow.compute as pc

from mm_platform.lake import CheckResult, Snapshot
from mm_platform.roles import ROLE_MODALITIES
from mm_platform.tables import EMBEDDINGS, MEDIA, METADATA


def embeddable_media(snapshot: Snapshot, role: str) -> dict[str, str]:
    """Active media that a model of ``role`` must cover: media_id → content hash."""
    media = snapshot.table(
        MEDIA.name,
        columns=["media_id", "content_sha256", "modality", "status"],
        filter=(pc.field("status") == "active") & pc.field("modality").isin(list(ROLE_MODALITIES[role])),
    )
    ids = dict(zip(media.column("media_id").to_pylist(), media.column("content_sha256").to_pylist(), strict=True))
    if role == "text":  # a document without text (encrypted, scanned) has nothing to embed
        with_text = snapshot.table(METADATA.name, columns=["media_id"], filter=pc.field("text_chunks") > 0)
        keep = set(with_text.column("media_id").to_pylist())
        ids = {m: sha for m, sha in ids.items() if m in keep}
    return ids


def model_coverage(snapshot: Snapshot, role: str, model_id: str) -> CheckResult:
    """Every embeddable active media item has exactly one media-level vector of the model, for its bytes."""
    expected = embeddable_media(snapshot, role)
    vectors = snapshot.table(
        EMBEDDINGS.name,
        columns=["media_id", "source_content_sha256"],
        filter=(pc.field("subject_kind") == "media") & (pc.field("model_id") == model_id),
    )
    counts = Counter(vectors.column("media_id").to_pylist())
    hashes = dict(
        zip(vectors.column("media_id").to_pylist(), vectors.column("source_content_sha256").to_pylist(), strict=True)
    )
    missing = [m for m in expected if counts[m] == 0]
    duplicated = [m for m in expected if counts[m] > 1]
    wrong_bytes = [m for m in expected if counts[m] == 1 and hashes[m] != expected[m]]
    bad = missing + duplicated + wrong_bytes
    return CheckResult(
        name="active_model_coverage",
        table=EMBEDDINGS.name,
        passed=not bad,
        detail=f"model {model_id} ({role}): {len(expected)} media; {len(missing)} without a vector, "
        f"{len(duplicated)} with several, {len(wrong_bytes)} for other bytes",
        failing_rows=[{"media_id": m} for m in bad[:10]],
    )
