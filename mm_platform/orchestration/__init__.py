"""The only core package that imports Dagster: the ``Definitions`` (``definitions``) with their assets and
sensors (``assets/``, ``sensors/``), the resources they take, result helpers and the runner of ``mmp ingest``."""

from mm_platform.orchestration.resources import LakeResource, MediaSourceResource, PipelineResource

__all__ = ["LakeResource", "MediaSourceResource", "PipelineResource"]
