"""Run ingest batches through Dagster from plain Python (used by ``mmp ingest``): the runs, events and
checks land in the Dagster instance exactly as if the UI or a sensor had launched them."""

from __future__ import annotations

import fcntl
import importlib
import importlib.util
import os
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import dagster as dg

from mm_platform.errors import ConfigError
from mm_platform.ingest.batches import BatchManifest
from mm_platform.ingest.scan import PlannedBatch

PARTITIONS = "ingest_batches"
JOB = "ingest_job"
DEFINITIONS = "mm_platform.orchestration.definitions"
"""The code location ``mmp ingest`` runs by default: the installed package's module (works from any folder)."""


def is_definitions_file(definitions: str | Path) -> bool:
    """``--definitions`` names a file (``definitions.py``, ``deploy/x.py``) rather than a module."""
    return str(definitions).endswith(".py") or os.sep in str(definitions)


def definitions_file(definitions: str | Path) -> Path:
    """The resolved path of a ``--definitions`` file, which must exist."""
    file = Path(definitions).resolve()
    if not file.is_file():
        raise ConfigError(f"no Dagster definitions at {file}", hint="run from the project folder or pass --definitions")
    return file


def load_definitions(definitions: str | Path = DEFINITIONS) -> dg.Definitions:
    """The deployment's ``defs``: from a module (``mm_platform.orchestration.definitions``, what workspace.yaml
    loads) or from a ``definitions.py`` file, imported with its folder on the path as ``dagster -f`` does."""
    if is_definitions_file(definitions):
        file = definitions_file(definitions)
        spec = importlib.util.spec_from_file_location("mmp_definitions", file)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.path.insert(0, str(file.parent))
        spec.loader.exec_module(module)
        where = str(file)
    else:
        try:
            module = importlib.import_module(str(definitions))
        except ModuleNotFoundError as exc:
            raise ConfigError(
                f"no Dagster definitions module {definitions}", hint="pass --definitions MODULE or a definitions.py"
            ) from exc
        where = str(definitions)
    defs = getattr(module, "defs", None)
    if not isinstance(defs, dg.Definitions):
        raise ConfigError(f"{where} defines no `defs = dg.Definitions(...)`")
    return defs


INSTANCE_SETTINGS = files("mm_platform.orchestration").joinpath("dagster.yaml")
"""The project's ``dagster.yaml``, shipped in the package for a new instance made outside the project folder."""


def instance_for(dagster_home: str | None) -> dg.DagsterInstance:
    """The persistent instance under DAGSTER_HOME (created with the project's dagster.yaml if new).

    Several ``mmp ingest`` started at once on a fresh home would race to create Dagster's SQLite schema
    (``table alembic_version already exists``): the first use is serialised with a file lock, and every
    storage is touched under it so its tables exist before the lock is released.
    """
    home = Path(dagster_home or ".dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".mmp-instance.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (home / "dagster.yaml").exists():  # the project folder's settings, else the package's copy
            settings = Path("dagster.yaml")
            text = settings.read_text() if settings.exists() else INSTANCE_SETTINGS.read_text(encoding="utf-8")
            (home / "dagster.yaml").write_text(text)
        instance = dg.DagsterInstance.from_config(str(home))  # as DAGSTER_HOME would, without setting it
        instance.get_runs_count()  # run storage
        instance.get_dynamic_partitions(PARTITIONS)  # event log / partitions storage
        instance.all_asset_keys()  # the asset index
        return instance


def default_parallel() -> int:
    """Batches in flight at once when ``--parallel`` is not given: half the machine's cores, at most 8.

    A batch's staging step uses about two cores (decoding in worker processes beside embedding), so a
    2-core machine runs one batch at a time, in process; bigger machines submit runs.
    """
    return max(1, min(8, (os.cpu_count() or 1) // 2))


@dataclass(frozen=True)
class BatchRun:
    """The outcome of one batch's run."""

    batch_id: str
    run_id: str
    success: bool
    publish_seq: int | None
    metadata: dict[str, Any]
    failed_checks: list[str]
    error: str | None = None
    """Why a step failed, as the user's code said it (the innermost cause), when one did."""


def run_batches(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    batches: Sequence[BatchManifest | PlannedBatch],
    *,
    run_config: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
) -> Iterator[BatchRun]:
    """Materialize each batch's partition (stage, audit, publish) through the ingest job, one after another,
    in this process (the embedded default: no daemon, no subprocesses, models loaded once). ``run_config``
    and ``tags`` go to every run (the lake's URI, the branch and the audit fields)."""
    job = defs.resolve_job_def(JOB)
    if batches:
        instance.add_dynamic_partitions(PARTITIONS, [b.batch_id for b in batches])
    for batch in batches:
        result = job.execute_in_process(
            run_config=dict(run_config or {}),
            instance=instance,
            partition_key=batch.batch_id,
            tags=dict(tags or {}),
            raise_on_error=False,
        )
        yield batch_run_from_instance(instance, result.run_id, batch.batch_id)


def batch_run_from_instance(instance: dg.DagsterInstance, run_id: str, batch_id: str) -> BatchRun:
    """A finished run's outcome, read from the instance's event log (wherever the run executed)."""
    run = instance.get_run_by_id(run_id)
    events = [record.dagster_event for record in instance.all_logs(run_id) if record.dagster_event is not None]
    metadata: dict[str, Any] = {}
    seq: int | None = None
    failed: list[str] = []
    for event in events:
        if event.event_type_value == "ASSET_MATERIALIZATION":
            materialization = event.step_materialization_data.materialization
            values = {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}
            metadata[materialization.asset_key.to_user_string()] = values
            if materialization.asset_key.to_user_string() == "published_snapshot":
                seq = int(str(values["publish_seq"])) if values.get("publish_seq") is not None else None
        elif event.event_type_value == "ASSET_CHECK_EVALUATION" and not event.asset_check_evaluation_data.passed:
            failed.append(event.asset_check_evaluation_data.check_name)
    success = run is not None and run.status == dg.DagsterRunStatus.SUCCESS
    return BatchRun(batch_id, run_id, success, seq, metadata, failed, step_error(events))


def step_error(events: Iterable[dg.DagsterEvent]) -> str | None:
    """The first failed step's error: the exception our code raised, not Dagster's wrapper around it."""
    for event in events:
        if event.event_type_value != "STEP_FAILURE" or event.step_failure_data is None:
            continue
        error = event.step_failure_data.error
        while error is not None and error.cause is not None and (error.cls_name or "").startswith("Dagster"):
            error = error.cause  # past Dagster's wrappers, to the first exception our code raised
        if error is not None:
            return error.message.strip()  # Dagster's message already starts with the exception's class
    return None
