"""A sensor that turns new annotation files (under ``MM_ANNOTATIONS`` or the resource's ``uri``) into runs.

Thin: the decision is ``mm_platform.annotations.discovery.decide_annotation_files`` (a pure function).
"""

import dagster as dg

from mm_platform.annotations.discovery import AnnotationCursor, decide_annotation_files
from mm_platform.annotations.schema import ANNOTATION_SETS
from mm_platform.orchestration import LakeResource
from mm_platform.orchestration.annotations import AnnotationSourceResource
from mm_platform.orchestration.assets.annotations import STAGED, annotation_sets

annotation_job = dg.define_asset_job("annotation_job", selection=dg.AssetSelection.groups("annotations"))


@dg.sensor(job=annotation_job, minimum_interval_seconds=30, description="New annotation files (MM_ANNOTATIONS).")
def annotation_file_sensor(
    context: dg.SensorEvaluationContext, lake: LakeResource, annotation_source: AnnotationSourceResource
) -> dg.SensorResult | dg.SkipReason:
    uri = annotation_source.resolved_uri()
    if not uri:
        return dg.SkipReason("no annotation source configured: set MM_ANNOTATIONS to a folder or s3://bucket/prefix")
    sets = lake.get_lake().snapshot().table(ANNOTATION_SETS.name, columns=["source_file", "source_version"])
    files, versions = sets.column("source_file").to_pylist(), sets.column("source_version").to_pylist()
    attached = frozenset(zip(files, versions, strict=True))
    listing = annotation_source.get_source(uri).list_objects()
    requests, cursor = decide_annotation_files(listing, AnnotationCursor.from_json(context.cursor), attached)
    context.log.info(f"{len(requests)} new annotation file(s) under {uri}")
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                partition_key=r.set_name,
                run_key=r.run_key,
                run_config={"ops": {STAGED: {"config": {"file": r.file}}}},
            )
            for r in requests
        ],
        dynamic_partitions_requests=[annotation_sets.build_add_request([r.set_name for r in requests])]
        if requests
        else [],
        cursor=cursor.to_json(),
    )
