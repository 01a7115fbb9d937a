"""The active embedding model per role (image, text) is part of a snapshot: one row each in `settings`.

Search reads it from the snapshot it searches, so every snapshot serves one model per role; switching the
active model (and switching back) is one publish, allowed only once the model covers every media item.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc

from mm_platform.errors import ConfigError
from mm_platform.lake import AuditContext, CheckResult, Lake, PublishResult, RowFilter, Snapshot, TableWrite
from mm_platform.quality.invariants import embeddable_media, model_coverage
from mm_platform.roles import ROLE_MODALITIES, ROLES, active_model_key
from mm_platform.tables import EMBEDDINGS, MEDIA, SETTINGS


def active_models(snapshot: Snapshot) -> dict[str, str | None]:
    """role → active model id. Without an explicit choice, the model that covers most media of the role."""
    settings = {r["key"]: r["value"] for r in snapshot.table(SETTINGS.name, columns=["key", "value"]).to_pylist()}
    active: dict[str, str | None] = {}
    for role in ROLES:
        chosen = settings.get(active_model_key(role))
        if chosen is None:
            media = set(embeddable_media(snapshot, role))
            vectors = snapshot.table(
                EMBEDDINGS.name, columns=["media_id", "model_id"], filter=pc.field("subject_kind") == "media"
            ).to_pylist()
            counts = Counter(v["model_id"] for v in vectors if v["media_id"] in media)
            chosen = min(counts, key=lambda m: (-counts[m], m)) if counts else None
        active[role] = chosen
    return active


def role_of_model(snapshot: Snapshot, model_id: str) -> str:
    vectors = snapshot.table(EMBEDDINGS.name, columns=["media_id"], filter=pc.field("model_id") == model_id)
    if vectors.num_rows == 0:
        raise ConfigError(
            f"no vectors of model {model_id!r} in snapshot {snapshot.seq}",
            hint="run `mmp reprocess` with that model first",
        )
    covered = pc.field("media_id").isin(vectors.column("media_id").unique())
    media = snapshot.table(MEDIA.name, columns=["media_id", "modality"], filter=covered)
    modalities = set(media.column("modality").to_pylist())
    for role, members in ROLE_MODALITIES.items():
        if modalities & set(members):
            return role
    raise ConfigError(f"model {model_id!r} embeds no image, video or document media")


def activate_model(lake: Lake, model_id: str, *, role: str | None = None, run_id: str = "") -> PublishResult:
    """Make ``model_id`` the active model of its role in one publish; refused until it covers every item."""
    snapshot = lake.snapshot()
    role = role or role_of_model(snapshot, model_id)
    coverage = model_coverage(snapshot, role, model_id)
    if not coverage.passed:
        raise ConfigError(
            f"cannot activate {model_id}: {coverage.detail}",
            hint=f"run `mmp reprocess --{role}-model ...` until every item has a vector",
        )

    def still_covered(context: AuditContext) -> CheckResult:
        return model_coverage(context.base, role, model_id)  # nothing was published in between

    row = {
        "key": active_model_key(role),
        "value": model_id,
        "updated_at": datetime.now(UTC),
        "source_content_sha256": None,
        "producer": "activate-model",
        "producer_version": "1",
        "run_id": run_id or "cli",
        "partition": f"activate:{role}",
    }
    rows = pa.Table.from_pylist([row], schema=SETTINGS.schema)
    return lake.publish(
        f"activate:{role}:{model_id}:{snapshot.seq}",
        {SETTINGS.name: TableWrite(rows, replace=(RowFilter("key", (active_model_key(role),)),))},
        checks=[still_covered],
        run_id=run_id,
    )
