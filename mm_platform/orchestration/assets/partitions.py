"""Dagster partitions: one dynamic partition per ingest batch (a bounded set of object versions)."""

import dagster as dg

ingest_batches = dg.DynamicPartitionsDefinition(name="ingest_batches")
