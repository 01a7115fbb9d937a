"""Publishes made outside Dagster (``mmp erase``, ``mmp annotate``, ``mmp rollback``) reported to the Dagster
instance as runless ``AssetMaterialization`` events, so the UI's asset pages show every snapshot, not only
those its runs made.

Which asset: an erasure or a rollback changes every table, so it is a materialization of
``published_snapshot``; an annotation revision one of ``annotation_set``. The event carries the partition only
when the instance already has it (an annotation set the sensor registered): reporting never creates a
partition, because a partition invites a backfill, and an erasure is not something to re-run.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg

from mm_platform.serve.links import item_url, snapshot_url

__all__ = ["PARTITIONS_OF", "report_publish"]

PARTITIONS_OF = {"published_snapshot": "ingest_batches", "annotation_set": "annotation_sets"}


def report_publish(
    dagster_home: str,
    asset: str,
    *,
    seq: int,
    kind: str,
    description: str,
    metadata: Mapping[str, Any],
    partition: str | None = None,
    browser_url: str | None = None,
    media_ids: tuple[str, ...] = (),
) -> dg.AssetMaterialization:
    """Record the publish ``seq`` as a materialization of ``asset`` in the instance under ``dagster_home``."""
    home = Path(dagster_home).expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    # The instance DAGSTER_HOME names (its dagster.yaml, or Dagster's SQLite default), without touching os.environ.
    with dg.DagsterInstance.from_config(str(home)) as instance:
        if partition is not None and not instance.has_dynamic_partition(PARTITIONS_OF[asset], partition):
            partition = None
        values: dict[str, Any] = {"publish_seq": seq, "kind": kind, "reported_by": "mmp", **metadata}
        if browser_url:
            values["browser_snapshot"] = dg.MetadataValue.url(snapshot_url(browser_url, seq))
            for media_id in media_ids[:5]:
                values[f"browser_item_{media_id[:8]}"] = dg.MetadataValue.url(item_url(browser_url, media_id, seq))
        event = dg.AssetMaterialization(asset_key=asset, partition=partition, description=description, metadata=values)
        instance.report_runless_asset_event(event)
        return event
