"""The code location of the Celery profile: the project's one ``Definitions``, with its steps on Celery.

Same assets, checks, sensors, jobs and resources as ``definitions.py``; only the executor differs: every step
(a batch's staging multi-asset, its publish, an annotation set's steps) is a Celery task that any worker
subscribed to the broker may run, on this machine or another. The broker, result backend and Celery
settings come from the run config (``execution: config:``) or, by default, the variables below.
"""

import dagster as dg
from dagster_celery import celery_executor

from definitions import defs as base

EXECUTOR = celery_executor.configured(
    {
        "broker": {"env": "MMP_CELERY_BROKER"},
        "backend": {"env": "MMP_CELERY_BACKEND"},
        # The same settings the workers start with (worker.yaml): late acks, one task at a time.
        "config_source": {
            "task_acks_late": True,
            "task_reject_on_worker_lost": True,
            "worker_prefetch_multiplier": 1,
        },
    }
)

defs = dg.Definitions(
    assets=base.assets,
    asset_checks=base.asset_checks,
    sensors=base.sensors,
    jobs=base.jobs,
    resources=base.resources,
    executor=EXECUTOR,
)
