"""The one place that builds the Dagster ``Definitions``: assets, checks, sensors and resources."""

from __future__ import annotations

import dagster as dg

from assets import all_assets
from mm_platform.orchestration import LakeResource, MediaSourceResource
from sensors import all_sensors

defs = dg.Definitions(
    assets=all_assets,
    sensors=all_sensors,  # type: ignore[arg-type]
    resources={"lake": LakeResource(), "source": MediaSourceResource()},
    executor=dg.in_process_executor,
)
