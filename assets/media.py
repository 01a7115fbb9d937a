"""The ``media`` layer: register the source's objects by reference and publish them."""
# No `from __future__ import annotations` here: Dagster inspects the context annotation at runtime.

import dagster as dg

from mm_platform.ingest.pipeline import ingest_source
from mm_platform.ingest.register import REGISTER_VERSION
from mm_platform.orchestration import LakeResource, MediaSourceResource


@dg.asset(
    group_name="media",
    code_version=REGISTER_VERSION,
    kinds={"deltalake", "python"},
    description="One row per source object version in the `media` table (plus `quarantine` for unreadable ones).",
)
def raw_media(
    context: dg.AssetExecutionContext, lake: LakeResource, source: MediaSourceResource
) -> dg.MaterializeResult:
    report = ingest_source(lake.get_lake(), source.get_source(), run_id=context.run_id)
    return dg.MaterializeResult(
        metadata={
            "partition": report.partition,
            "objects": report.objects,
            "media_rows": report.media_rows,
            "quarantined": report.quarantined,
            "publish_seq": report.publish.seq,
            "noop": report.publish.noop,
            "table_versions": dict(report.publish.table_versions),
            **{f"seconds_{step}": round(seconds, 3) for step, seconds in report.timings_s.items()},
        }
    )
