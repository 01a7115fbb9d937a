"""A code location for the run-queue test: the real folder discovery tick (``listing_tick`` and the sensors'
``sensor_result``, one object per batch) requests runs of a light job partitioned like ``ingest_job``, so the
daemon's queue is exercised without loading models in every queued run."""

import os
import time

import dagster as dg

from mm_platform.catalog import open_lake
from mm_platform.ingest.reconcile import ReconcileCursor
from mm_platform.ingest.ticks import DiscoveryLimits, listing_tick
from mm_platform.orchestration.assets.partitions import ingest_batches
from mm_platform.orchestration.sensors.discovery import sensor_result
from mm_platform.sources import LocalFolderSource


@dg.asset(partitions_def=ingest_batches)
def probe_batch(context: dg.AssetExecutionContext) -> None:
    time.sleep(float(os.environ.get("MM_PROBE_SLEEP_S", "3")))


probe_job = dg.define_asset_job("probe_job", selection=[probe_batch])


@dg.sensor(job=probe_job, minimum_interval_seconds=3600, default_status=dg.DefaultSensorStatus.RUNNING)
def probe_discovery(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    lake = open_lake(os.environ["MM_LAKE"])
    source = LocalFolderSource(os.environ["MM_SOURCE"])
    outcome = listing_tick(
        lake, source, ReconcileCursor.from_json(context.cursor), limits=DiscoveryLimits(max_objects=1)
    )
    assert outcome.cursor is not None
    return sensor_result(context, source.uri, outcome, outcome.cursor.to_json())


defs = dg.Definitions(assets=[probe_batch], jobs=[probe_job], sensors=[probe_discovery])
