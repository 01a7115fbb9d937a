"""Dagster resources: typed wrappers that hand plain core objects (a Lake, a Source, a processor) to assets.

Swapped by configuration or subclassing, never by mocking. A field may be given as ``dg.EnvVar("NAME")``;
an unset field falls back to its environment variable, read once when Dagster sets the resource up for a
run or a tick (:func:`~mm_platform.orchestration.env.environment`), never at import time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from functools import cache
from typing import Any

import dagster as dg
from pydantic import PrivateAttr

from mm_platform.catalog import open_lake
from mm_platform.config import PipelineConfig
from mm_platform.embed import Embedder, embedder_for
from mm_platform.ingest.process import BatchProcessor
from mm_platform.lake import AuditCheck, Lake
from mm_platform.lake.audit_trail import set_audit
from mm_platform.orchestration.env import AWS_VARIABLES, environment
from mm_platform.quality import default_checks
from mm_platform.sources import Source, source_for

__all__ = ["BRANCH_TAG", "LakeResource", "MediaSourceResource", "PipelineResource", "embedders_loaded"]

BRANCH_TAG = "mm/branch"
"""A run tagged ``mm/branch=NAME`` reads and publishes on that branch of the lake."""
ACTOR_TAG = "mm/actor"
"""Who started the run, for the audit trail (``mmp ingest`` sets it from ``--actor``)."""
MESSAGE_TAG = "mm/message"
"""Why, for the audit trail (``mmp ingest`` sets it from ``-m``)."""


class LakeResource(dg.ConfigurableResource):
    """Where the lake lives."""

    uri: str | None = None
    """A local folder or ``s3://bucket/prefix``; default: ``$MM_LAKE`` or ``./lake``."""
    branch: str | None = None
    """The branch runs read and publish on; default: the run's ``mm/branch`` tag, ``$MM_BRANCH``, or main."""
    browser_url: str | None = None
    """The lake browser (`mmp serve`) to link materializations to; default: ``$MM_BROWSER_URL`` (unset: no links)."""
    _env: Mapping[str, str] = PrivateAttr(default_factory=dict)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._env = environment("MM_LAKE", "MM_BRANCH", "MM_ACTOR", "MM_MESSAGE", "MM_BROWSER_URL", *AWS_VARIABLES)

    def get_lake(self, context: dg.AssetExecutionContext | dg.OpExecutionContext | None = None) -> Lake:
        """The lake (on the run's branch); publishes made with it record the run as their audit trail."""
        env = self._env
        tags: dict[str, str] = dict(context.run.tags) if context is not None else {}
        branch = self.branch or tags.get(BRANCH_TAG) or env.get("MM_BRANCH") or None
        if context is not None:
            actor = tags.get(ACTOR_TAG) or tags.get("dagster/user") or env.get("MM_ACTOR", "")
            message = tags.get(MESSAGE_TAG) or env.get("MM_MESSAGE", "")
            set_audit(actor=actor, message=message, command=f"dagster run {context.run.run_id}")
        return open_lake(self.uri or env.get("MM_LAKE", "./lake"), env, branch=branch)

    def resolved_browser_url(self) -> str | None:
        return self.browser_url or self._env.get("MM_BROWSER_URL") or None


class MediaSourceResource(dg.ConfigurableResource):
    """The media library to ingest: a local folder or ``s3://bucket/prefix``."""

    uri: str | None = None
    """Default: the variable ``env_var`` names, else ``default``."""
    env_var: str = "MM_SOURCE"
    """The environment variable an unset ``uri`` comes from."""
    default: str | None = "demo/media"
    """The URI when neither ``uri`` nor ``env_var`` is set (``None``: no source, the sensor skips)."""
    _env: Mapping[str, str] = PrivateAttr(default_factory=dict)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._env = environment(self.env_var, *AWS_VARIABLES)

    def resolved_uri(self) -> str | None:
        return self.uri or self._env.get(self.env_var) or self.default

    def get_source(self, uri: str | None = None) -> Source:
        uri = uri or self.resolved_uri()
        if not uri:
            raise ValueError(f"no media source configured: set {self.env_var}")
        return source_for(uri, self._env)


@cache
def _embedder(spec: str, modality: str) -> Embedder[Any]:
    # One model per process and spec, shared by every run and asset in it.
    return embedder_for(spec, modality)  # type: ignore[arg-type]


def embedders_loaded() -> int:
    """How many embedders this process has built: stays put across tasks, as each worker loads models once."""
    return _embedder.cache_info().misses


class PipelineResource(dg.ConfigurableResource):
    """Which models embed, and how a batch is processed (the defaults are :class:`PipelineConfig`'s).
    A model change makes the embeddings stale."""

    image_model: str = PipelineConfig.image_model
    text_model: str = PipelineConfig.text_model
    workers: int = 0
    """0: the config's default (one decode worker per usable CPU core)."""
    timeout_s: float = PipelineConfig.timeout_s
    chunk_size: int = PipelineConfig.chunk_size

    def config(self) -> PipelineConfig:
        config = PipelineConfig(
            image_model=self.image_model,
            text_model=self.text_model,
            timeout_s=self.timeout_s,
            chunk_size=self.chunk_size,
        )
        return replace(config, workers=self.workers) if self.workers else config

    def embedders(self) -> dict[str, Embedder[Any]]:
        return {"image": _embedder(self.image_model, "image"), "text": _embedder(self.text_model, "text")}

    def processor(self, lake: Lake) -> BatchProcessor:
        return BatchProcessor(lake, self.config(), self.embedders())

    def checks(self) -> list[AuditCheck]:
        embedders = self.embedders()
        return default_checks({e.model_id: e.dim for e in embedders.values()})
