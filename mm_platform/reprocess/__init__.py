"""Reprocessing without drift: stale detection, shadow re-embedding, and the active-model switch.

``run`` and ``stale`` load the ingest pipeline (decoders, sources) on first use, not on import: search
reads the active models from here and should not pay for PyAV and pypdf.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mm_platform.reprocess.active import activate_model, active_models

if TYPE_CHECKING:
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

_LAZY = {
    "ReprocessReport": "run",
    "reprocess": "run",
    "StaleItem": "stale",
    "media_needing_work": "stale",
    "stale_report": "stale",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"mm_platform.reprocess.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
