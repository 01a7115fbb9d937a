"""The one place that builds the Dagster ``Definitions``: assets, checks, sensors, jobs and resources.

The code location: ``workspace.yaml`` and ``[tool.dagster]`` load this module from the installed package
(``dagster dev -m mm_platform.orchestration.definitions``); the project's top-level ``definitions.py``
re-exports it for ``-f definitions.py``."""

import dagster as dg

from mm_platform.orchestration import LakeResource, MediaSourceResource
from mm_platform.orchestration.annotations import AnnotationSourceResource
from mm_platform.orchestration.assets import all_assets
from mm_platform.orchestration.assets.pipeline import PIPELINE
from mm_platform.orchestration.queue import S3EventQueueResource
from mm_platform.orchestration.sensors import all_jobs, all_sensors

defs = dg.Definitions(
    assets=all_assets,
    sensors=all_sensors,
    jobs=all_jobs,
    # A batch is one staging step and one publish step; in-process keeps the models loaded across both.
    executor=dg.in_process_executor,
    resources={
        "lake": LakeResource(),
        "source": MediaSourceResource(),
        "s3_source": MediaSourceResource(env_var="MM_S3_SOURCE", default=None),
        "pipeline": PIPELINE,
        "annotation_source": AnnotationSourceResource(),
        "s3_events": S3EventQueueResource(),
    },
)
