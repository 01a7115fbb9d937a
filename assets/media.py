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
    description="Registers, probes, derives and embeds the source's objects; publishes all tables at once.",
)
def raw_media(
    context: dg.AssetExecutionContext, lake: LakeResource, source: MediaSourceResource
) -> dg.MaterializeResult:
    report = ingest_source(lake.get_lake(), source.get_source(), run_id=context.run_id)
    return dg.MaterializeResult(
        metadata={
            "partition": report.partition,
            "objects": report.objects,
            "analyzed": report.analyzed,
            "reused": report.reused,
            "quarantined": report.quarantined,
            "rows": dict(report.rows),
            "model_calls": dict(report.model_calls),
            "publish_seq": report.publish.seq if report.publish else None,
            "table_versions": dict(report.publish.table_versions) if report.publish else {},
            **{f"seconds_{step}": round(seconds, 3) for step, seconds in report.timings_s.items()},
        }
    )
