"""Dagster resources: typed wrappers that hand plain core objects (a Lake, a Source) to assets."""

from __future__ import annotations

import os

import dagster as dg

from mm_platform.lake import Lake
from mm_platform.sources import S3Settings, Source, source_from_uri


class LakeResource(dg.ConfigurableResource):
    """Where the lake lives. Unset fields fall back to MM_LAKE / AWS_* when a run starts, not at import."""

    uri: str | None = None
    """A local folder or ``s3://bucket/prefix``; default: ``$MM_LAKE`` or ``./lake``."""

    def get_lake(self) -> Lake:
        env = dict(os.environ)
        return Lake.open(self.uri or env.get("MM_LAKE", "./lake"), env)


class MediaSourceResource(dg.ConfigurableResource):
    """The media library to ingest: a local folder or ``s3://bucket/prefix``."""

    uri: str | None = None
    """Default: ``$MM_SOURCE`` or the demo media shipped in ``demo/media``."""

    def get_source(self) -> Source:
        env = dict(os.environ)
        uri = self.uri or env.get("MM_SOURCE", "demo/media")
        settings = S3Settings.from_env(env) if uri.startswith("s3://") else None
        return source_from_uri(uri, s3_settings=settings)
