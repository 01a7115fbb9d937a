"""Dagster resources: typed wrappers that hand plain core objects (a Lake, a Source, a processor) to assets.

Swapped by configuration or subclassing, never by mocking. Unset fields fall back to environment variables
when a run starts (never at import time).
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

import dagster as dg

from mm_platform.catalog import open_lake
from mm_platform.config import PipelineConfig
from mm_platform.embed import Embedder, embedder_for
from mm_platform.ingest.process import BatchProcessor
from mm_platform.lake import AuditCheck, Lake
from mm_platform.machine import default_probe_workers
from mm_platform.sources import S3Settings, Source, source_from_uri

BRANCH_TAG = "mm/branch"
"""A run tagged ``mm/branch=NAME`` reads and publishes on that branch of the lake."""


class LakeResource(dg.ConfigurableResource):
    """Where the lake lives."""

    uri: str | None = None
    """A local folder or ``s3://bucket/prefix``; default: ``$MM_LAKE`` or ``./lake``."""
    branch: str | None = None
    """The branch runs read and publish on; default: the run's ``mm/branch`` tag, ``$MM_BRANCH``, or main."""
    browser_url: str | None = None
    """The lake browser (`mmp serve`) to link materializations to; default: ``$MM_BROWSER_URL`` (unset: no links)."""

    def get_lake(self, context: dg.AssetExecutionContext | dg.OpExecutionContext | None = None) -> Lake:
        """The lake (on the run's branch); publishes made with it record the run as their audit trail."""
        from mm_platform.lake.audit_trail import set_audit

        env = dict(os.environ)
        tags: dict[str, str] = dict(context.run.tags) if context is not None else {}
        branch = self.branch or tags.get(BRANCH_TAG) or env.get("MM_BRANCH") or None
        if context is not None:
            actor = tags.get("mm/actor") or tags.get("dagster/user") or env.get("MM_ACTOR", "")
            message = tags.get("mm/message") or env.get("MM_MESSAGE", "")
            set_audit(actor=actor, message=message, command=f"dagster run {context.run.run_id}")
        return open_lake(self.uri or env.get("MM_LAKE", "./lake"), env, branch=branch)

    def resolved_browser_url(self) -> str | None:
        return self.browser_url or os.environ.get("MM_BROWSER_URL") or None


class MediaSourceResource(dg.ConfigurableResource):
    """The media library to ingest: a local folder or ``s3://bucket/prefix``."""

    uri: str | None = None
    """Default: ``$MM_SOURCE`` or the demo media shipped in ``demo/media``."""

    def resolved_uri(self) -> str:
        return self.uri or os.environ.get("MM_SOURCE", "demo/media")

    def get_source(self, uri: str | None = None) -> Source:
        uri = uri or self.resolved_uri()
        settings = S3Settings.from_env(dict(os.environ)) if uri.startswith("s3://") else None
        return source_from_uri(uri, s3_settings=settings)


@cache
def _embedder(spec: str, modality: str) -> Embedder[Any]:
    # One model per process and spec, shared by every run and asset in it.
    return embedder_for(spec, modality)  # type: ignore[arg-type]


def embedders_loaded() -> int:
    """How many embedders this process has built: stays put across tasks, as each worker loads models once."""
    return _embedder.cache_info().misses


class PipelineResource(dg.ConfigurableResource):
    """Which models embed, and how a batch is processed. A model change makes the embeddings stale."""

    image_model: str = "efficientnet-lite0"
    text_model: str = "minilm"
    workers: int = 0  # 0: one decode worker per usable CPU core
    timeout_s: float = 60.0
    chunk_size: int = 32

    def config(self) -> PipelineConfig:
        return PipelineConfig(
            image_model=self.image_model,
            text_model=self.text_model,
            workers=self.workers or default_probe_workers(),
            timeout_s=self.timeout_s,
            chunk_size=self.chunk_size,
        )

    def embedders(self) -> dict[str, Embedder[Any]]:
        return {"image": _embedder(self.image_model, "image"), "text": _embedder(self.text_model, "text")}

    def processor(self, lake: Lake) -> BatchProcessor:
        return BatchProcessor(lake, self.config(), self.embedders())

    def checks(self) -> list[AuditCheck]:
        from mm_platform.quality import default_checks

        embedders = self.embedders()
        return default_checks({e.model_id: e.dim for e in embedders.values()})
