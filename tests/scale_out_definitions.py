"""A code location for the scale-out tests: the project's Definitions with the tiny test CLIP for both
modalities (models load in milliseconds), and the Celery profile's executor when ``MMP_TEST_EXECUTOR=celery``.

Loaded by run and Celery worker processes from the project folder; the model path comes from
``MMP_TEST_CLIP`` (a test builds it with ``tests.tiny_clip``).
"""

import os

import dagster as dg

import definitions
from mm_platform.orchestration import PipelineResource

CLIP = f"clip:{os.environ['MMP_TEST_CLIP']}"


def _executor() -> dg.ExecutorDefinition:
    if os.environ.get("MMP_TEST_EXECUTOR") == "celery":
        from deploy.celery.celery_definitions import EXECUTOR

        return EXECUTOR
    return dg.in_process_executor


defs = dg.Definitions(
    assets=definitions.defs.assets,
    asset_checks=definitions.defs.asset_checks,
    sensors=definitions.defs.sensors,
    jobs=definitions.defs.jobs,
    resources={
        **(definitions.defs.resources or {}),
        "pipeline": PipelineResource(image_model=CLIP, text_model=CLIP, workers=1),
    },
    executor=_executor(),
)
