"""The one place that builds the Dagster ``Definitions``: assets, checks, sensors, jobs and resources."""

import dagster as dg

from assets import all_assets
from assets.pipeline import PIPELINE
from mm_platform.orchestration import LakeResource, MediaSourceResource
from mm_platform.orchestration.annotations import AnnotationSourceResource
from mm_platform.orchestration.queue import S3EventQueueResource
from sensors import all_jobs, all_sensors

defs = dg.Definitions(
    assets=all_assets,
    sensors=all_sensors,
    jobs=all_jobs,
    # A batch is one staging step and one publish step; in-process keeps the models loaded across both.
    executor=dg.in_process_executor,
    resources={
        "lake": LakeResource(),
        "source": MediaSourceResource(),
        "s3_source": MediaSourceResource(uri=None),
        "pipeline": PIPELINE,
        "annotation_source": AnnotationSourceResource(),
        "s3_events": S3EventQueueResource(),
    },
)
