"""Creating a lake's tables: idempotent, and safe when several processes open a new lake at once."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from deltalake import DeltaTable
from deltalake.exceptions import CommitFailedError

from mm_platform.lake.publish_log import PublishLog
from mm_platform.lake.schemas import TableSpec
from mm_platform.lake.storage import LakeLocation

# A checkpoint every 10 commits keeps log replay short: opening a table reads one checkpoint and at most
# 9 JSON commits, however many publishes the lake has seen (delta-rs writes them after each commit).
# Statistics of every column are exposed, not only the first 32: the lineage columns (`partition`, `run_id`)
# come last in wide tables such as `metadata`, and replacing a partition prunes files by them.
TABLE_CONFIGURATION = {"delta.checkpointInterval": "10", "delta.dataSkippingNumIndexedCols": "-1"}


def table_exists(location: LakeLocation, name: str) -> bool:
    return location.exists(f"{name}/_delta_log/00000000000000000000.json")


def ensure_tables(location: LakeLocation, specs: Iterable[TableSpec], log: PublishLog) -> None:
    """Create every missing table and the publish log (a stat per table: opening a lake stays cheap)."""
    options = dict(location.storage_options)
    for spec in specs:
        if not table_exists(location, spec.name):
            _create_racing(
                location,
                spec.name,
                lambda spec=spec: DeltaTable.create(  # type: ignore[misc]
                    location.uri(spec.name),
                    schema=spec.schema,
                    mode="ignore",
                    storage_options=options,
                    configuration=TABLE_CONFIGURATION,
                ),
            )
    if not table_exists(location, log.name):
        _create_racing(location, log.name, log.create)


def _create_racing(location: LakeLocation, name: str, create: Callable[[], object]) -> None:
    """Create a table; losing the race to another process creating it at the same moment is success."""
    try:
        create()
    except CommitFailedError:
        if not table_exists(location, name):
            raise
