"""The state of one batch on its way into a stage, shared by its steps (fetch/register → analyze → embed →
reuse-copy → write), and the report it ends with.

Each step reads and updates this one object, so a step is a plain function or method, not a closure over
another step's locals.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from mm_platform.ingest.embedding import Pending
from mm_platform.ingest.rows import Lineage
from mm_platform.ingest.scope import TABLES, BatchScope
from mm_platform.lake import PublishResult
from mm_platform.lake.stage import Stage
from mm_platform.sources import FetchedObject, ObjectInfo

__all__ = ["BatchReport", "BatchState", "Rows"]

Rows = dict[str, list[dict[str, object]]]
"""Rows gathered per table, waiting to be gated and written."""


@dataclass
class BatchReport:
    """What one batch did and cost."""

    partition: str
    objects: int = 0
    analyzed: int = 0
    reused: int = 0
    quarantined: int = 0
    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLES, 0))
    model_calls: dict[str, int] = field(default_factory=dict)
    items_embedded: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)
    timings_s: dict[str, float] = field(default_factory=dict)
    stage: Stage | None = None
    publish: PublishResult | None = None

    def count_quarantined(self, reason: str, count: int = 1) -> None:
        self.quarantined += count
        self.reasons[reason] = self.reasons.get(reason, 0) + count


@dataclass
class BatchState:
    """Everything one batch knows between its steps."""

    objects: Sequence[ObjectInfo]
    partition: str
    run_id: str
    scope: BatchScope
    """What the batch writes: everything, or (shadow re-embedding) only its models' rows."""
    report: BatchReport
    out: Rows = field(default_factory=lambda: defaultdict(list))
    """Rows for the next write."""
    media_rows: list[dict[str, object]] = field(default_factory=list)
    """Written last, once every verdict is known."""
    media_status: dict[str, str] = field(default_factory=dict)
    """media id → final status, where a verdict changed it."""
    copies: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    """content hash → the media ids that copy its results."""
    analyzed_first: dict[str, str] = field(default_factory=dict)
    """content hash → the media id analysed for it in this batch."""
    pending: list[Pending] = field(default_factory=list)
    """Analysed objects waiting for their embeddings."""
    sha_by_media: dict[str, str] = field(default_factory=dict)
    """media id → content hash, for the objects sent to analysis."""
    in_workers: dict[str, FetchedObject] = field(default_factory=dict)
    """uri → the fetched object a worker holds: its bytes (or file) must live until answered."""

    info_by_uri: dict[str, ObjectInfo] = field(init=False)

    def __post_init__(self) -> None:
        self.info_by_uri = {o.uri: o for o in self.objects}

    def uri_of(self) -> dict[str, str]:
        """media id → URI, for every listed object."""
        return {o.media_id: o.uri for o in self.objects}

    def lineage(self, sha256: str | None, producer: str, version: str) -> Lineage:
        return Lineage(sha256, producer, version, self.run_id, self.partition)
