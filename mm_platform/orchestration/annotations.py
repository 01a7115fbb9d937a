"""The Dagster resource for annotation files: where they arrive and how their rows name media."""

from __future__ import annotations

from collections.abc import Mapping

import dagster as dg
from pydantic import PrivateAttr

from mm_platform.annotations.model import AttachOptions
from mm_platform.orchestration.env import AWS_VARIABLES, environment
from mm_platform.sources import S3Settings, Source, source_for

__all__ = ["AnnotationSourceResource"]


class AnnotationSourceResource(dg.ConfigurableResource):
    """A folder or ``s3://bucket/prefix`` that teams drop annotation files into, one file per set."""

    uri: str | None = None
    """Default: ``$MM_ANNOTATIONS``; unset, the annotation sensor skips."""
    match: str | None = None
    """``uri``, ``key`` or ``sha256``; default: each file's key column name says."""
    key_column: str | None = None
    """The column naming the media; default: ``uri`` / ``key`` / ``sha256``."""
    id_column: str | None = None
    """A column telling several annotations of one media apart (e.g. ``box_id``)."""
    producer: str = "human"
    """The lineage ``producer`` of attached rows."""
    _env: Mapping[str, str] = PrivateAttr(default_factory=dict)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._env = environment("MM_ANNOTATIONS", *AWS_VARIABLES)

    def resolved_uri(self) -> str | None:
        return self.uri or self._env.get("MM_ANNOTATIONS") or None

    def s3_settings(self, uri: str) -> S3Settings | None:
        return S3Settings.from_env(self._env) if uri.startswith("s3://") else None

    def get_source(self, uri: str) -> Source:
        return source_for(uri, self._env)

    def options(self, set_name: str) -> AttachOptions:
        return AttachOptions(
            set_name=set_name,
            match=self.match,  # type: ignore[arg-type]
            key_column=self.key_column,
            id_column=self.id_column,
            producer=self.producer,
        )
