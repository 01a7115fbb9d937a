"""Annotation sets: stage + audit a file's revision (blocking checks), then publish it atomically.

Partitioned by set (dynamic partitions, added by ``annotation_file_sensor``); the file comes from the run
config the sensor writes, or, when materialized by hand, the newest file of the set under the annotation
source. Thin: the work is ``mm_platform.annotations.steps``.
"""

import warnings
from collections.abc import Iterator
from typing import Any

import dagster as dg

from mm_platform.annotations.attach import ANNOTATE_VERSION
from mm_platform.annotations.checks import ANNOTATION_CHECK_NAMES
from mm_platform.annotations.discovery import set_name_for
from mm_platform.annotations.steps import no_change_checks, publish_revision, stage_revision
from mm_platform.errors import ConfigError
from mm_platform.orchestration import LakeResource
from mm_platform.orchestration.annotations import AnnotationSourceResource
from mm_platform.orchestration.results import check_result

GROUP = "annotations"
STAGED = "staged_annotation_set"
annotation_sets = dg.DynamicPartitionsDefinition(name="annotation_sets")

with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.PreviewWarning)  # partitioned checks: see assets/checks.py
    ANNOTATION_CHECKS = [
        dg.AssetCheckSpec(
            name,
            asset=STAGED,
            blocking=True,
            description=f"audit of the staged {table} rows",
            partitions_def=annotation_sets,
        )
        for name, table in ANNOTATION_CHECK_NAMES.items()
    ]


class AnnotationFileConfig(dg.Config):
    """Which file to attach."""

    file: str = ""
    """The file's path or URI; empty: the newest file of this set under the annotation source."""


def _file_for(source: AnnotationSourceResource, set_name: str) -> str:
    uri = source.resolved_uri()
    if not uri:
        raise ConfigError("no annotation file given", hint="set `file` in the run config, or MM_ANNOTATIONS")
    files = [o for o in source.get_source(uri).list_objects() if set_name_for(o) == set_name]
    if not files:
        raise ConfigError(f"no file for annotation set {set_name} under {uri}")
    return max(files, key=lambda o: o.last_modified).uri


@dg.asset(
    name=STAGED,
    partitions_def=annotation_sets,
    check_specs=ANNOTATION_CHECKS,
    group_name=GROUP,
    code_version=f"annotate-{ANNOTATE_VERSION}",
    kinds={"deltalake"},
    description="A file's rows matched to media and validated (rejects kept with reasons), staged and audited.",
)
def staged_annotation_set(
    context: dg.AssetExecutionContext,
    config: AnnotationFileConfig,
    lake: LakeResource,
    annotation_source: AnnotationSourceResource,
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    set_name = context.partition_key
    location = config.file or _file_for(annotation_source, set_name)
    staged = stage_revision(
        lake.get_lake(context),
        location,
        annotation_source.options(set_name),
        run_id=context.run.run_id,
        s3_settings=annotation_source.s3_settings(location),
    )
    result = staged.result
    yield dg.MaterializeResult(
        metadata={
            "revision": result.revision,
            "noop": result.noop,
            "file": result.file.uri,
            "file_version": result.file.version,
            "rows_in_file": result.rows_in_file,
            "rows_attached": result.rows_attached,
            "rows_rejected": result.rows_rejected,
            "reject_reasons": dg.MetadataValue.json(result.reasons()),
            "rejects": dg.MetadataValue.json([p.to_dict() for p in result.rejects[:20]]),
            "changes": dg.MetadataValue.json(
                {"added": result.added, "changed": result.changed, "removed": result.removed}
            ),
            "dagster/row_count": result.annotations,
        }
    )
    checks = staged.checks or no_change_checks(result, list(ANNOTATION_CHECK_NAMES))
    for check in checks:
        yield check_result(check, STAGED, set_name)


@dg.asset(
    deps=[STAGED],
    partitions_def=annotation_sets,
    group_name=GROUP,
    code_version="publish-1",
    kinds={"deltalake"},
    description="The set's audited revision published atomically across the annotation tables.",
)
def annotation_set(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    the_lake = lake.get_lake(context)
    revision, redemption = publish_revision(the_lake, context.partition_key, context.run.run_id)
    published, winner = redemption.result, redemption.superseded_by
    metadata: dict[str, Any] = {
        "revision": revision,
        "published": published is not None,
        "branch": the_lake.branch_name,
    }
    if published is not None:
        metadata.update(
            publish_seq=published.seq,
            noop=published.noop,
            table_versions=dg.MetadataValue.json(dict(published.table_versions)),
        )
    elif winner is not None:  # another run attached the same file version first
        metadata.update(publish_seq=winner.publish_seq, noop=True, superseded_by_run=winner.run_id or "")
    return dg.MaterializeResult(metadata=metadata)
