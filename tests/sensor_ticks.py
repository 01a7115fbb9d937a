"""Sensor ticks by hand over a real Dagster instance, as the sensor daemon runs them: the set-up shared by the
S3 listing sensor test (test_dagster.py) and the SQS event sensor test (test_sqs_discovery.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from definitions import defs
from tests.services import S3Endpoint


def use_s3_lake(monkeypatch: pytest.MonkeyPatch, endpoint: S3Endpoint, lake_dir: Path) -> None:
    """The environment a deployment gives the sensor and its runs: the S3 API's credentials and ``MM_LAKE``."""
    for key, value in endpoint.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("MM_LAKE", str(lake_dir))


@dataclass
class SensorTicks:
    """Ticks of one sensor with fixed resources; each tick registers the partitions it asks for (the daemon's
    part), so its run requests can be executed at once."""

    sensor: Callable[..., Any]
    instance: dg.DagsterInstance
    resources: dict[str, Any]

    def tick(self, cursor: str | None) -> dg.SensorResult:
        context = dg.build_sensor_context(instance=self.instance, cursor=cursor, resources=self.resources)
        result = self.sensor(context)
        assert isinstance(result, dg.SensorResult)
        for add in result.dynamic_partitions_requests or []:
            self.instance.add_dynamic_partitions(add.partitions_def_name, list(add.partition_keys or []))
        return result


def run_ingest_job(instance: dg.DagsterInstance, batch_id: str, **resources: Any) -> dg.ExecuteInProcessResult:
    """The ingest job of ``definitions.py`` over one batch partition, in process (``resources`` override)."""
    instance.add_dynamic_partitions("ingest_batches", [batch_id])
    job = defs.resolve_job_def("ingest_job")
    if resources:
        job = dg.Definitions(
            assets=defs.assets,
            jobs=defs.jobs,
            resources={**(defs.resources or {}), **resources},
        ).resolve_job_def("ingest_job")
    return job.execute_in_process(instance=instance, partition_key=batch_id, raise_on_error=False)
