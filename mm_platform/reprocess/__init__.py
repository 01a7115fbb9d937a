"""Reprocessing without drift: stale detection, shadow re-embedding, and the active-model switch."""

from mm_platform.reprocess.active import activate_model, active_models
from mm_platform.reprocess.run import ReprocessReport, reprocess
from mm_platform.reprocess.stale import StaleItem, media_needing_work, stale_report

__all__ = [
    "ReprocessReport",
    "StaleItem",
    "activate_model",
    "active_models",
    "media_needing_work",
    "reprocess",
    "stale_report",
]
