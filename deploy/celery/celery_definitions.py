"""The code location of the Celery profile: the project's one ``Definitions``, with its steps on Celery.

Load it from the project folder (it imports ``definitions`` from there). Same assets, checks, sensors, jobs
and resources as ``definitions.py``; only the executor differs: every step (a batch's staging multi-asset,
its publish, an annotation set's steps) is a Celery task that any worker subscribed to the broker may run,
on this machine or another. The broker and result backend come from ``MMP_CELERY_BROKER`` and
``MMP_CELERY_BACKEND``; the Celery settings match the workers' (``worker.yaml``).
"""

import dagster as dg
from dagster_celery import celery_executor

import definitions

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
    assets=definitions.defs.assets,
    asset_checks=definitions.defs.asset_checks,
    sensors=definitions.defs.sensors,
    jobs=definitions.defs.jobs,
    resources=definitions.defs.resources,
    executor=EXECUTOR,
)
