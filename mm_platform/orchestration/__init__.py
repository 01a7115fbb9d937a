"""The only core package that imports Dagster: resources and result helpers for ``assets/`` and ``sensors/``."""

from mm_platform.orchestration.resources import LakeResource, MediaSourceResource

__all__ = ["LakeResource", "MediaSourceResource"]
