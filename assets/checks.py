"""The blocking checks each staged asset carries, declared up front so the UI lists them before any run."""

import dagster as dg

from mm_platform.orchestration.results import TABLE_ASSETS
from mm_platform.quality import CHECK_TABLES

STAGED_CHECKS = [
    dg.AssetCheckSpec(name, asset=TABLE_ASSETS[table], blocking=True, description=f"audit of the staged {table} rows")
    for name, table in CHECK_TABLES.items()
]
