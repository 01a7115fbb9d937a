"""The blocking checks each staged asset carries, declared up front so the UI lists them before any run.

They are partitioned like the assets (one evaluation per ingest batch): an unpartitioned check on a
partitioned asset keeps one status per asset, so a failed batch flipped to "Passed" as soon as a later batch
passed, and the check page showed "Partition —".
"""

import warnings

import dagster as dg

from mm_platform.orchestration.assets.partitions import ingest_batches
from mm_platform.orchestration.results import TABLE_ASSETS
from mm_platform.quality import CHECK_TABLES

with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.PreviewWarning)  # partitioned checks are a preview feature in 1.13
    STAGED_CHECKS = [
        dg.AssetCheckSpec(
            name,
            asset=TABLE_ASSETS[table],
            blocking=True,
            description=f"audit of the staged {table} rows",
            partitions_def=ingest_batches,
        )
        for name, table in CHECK_TABLES.items()
    ]
