"""Erasure: what an erased media id means (its rows in every table, its batch manifests, its search-index
caches), built on the lake's generic primitives (a delete-by-value publish, ``mm_platform.lake.expunge``).

``erase`` removes the rows in one publish; ``vacuum_erased`` removes them from history (``erase``'s
docstring lists the steps).
"""

from mm_platform.erasure.erase import ErasedRowsPresentError, ErasureResult, erase, erasure_publishes
from mm_platform.erasure.table import ERASURES
from mm_platform.erasure.vacuum import ErasureVacuumPlan, ErasureVacuumReport, plan_vacuum_erased, vacuum_erased

__all__ = [
    "ERASURES",
    "ErasedRowsPresentError",
    "ErasureResult",
    "ErasureVacuumPlan",
    "ErasureVacuumReport",
    "erase",
    "erasure_publishes",
    "plan_vacuum_erased",
    "vacuum_erased",
]
