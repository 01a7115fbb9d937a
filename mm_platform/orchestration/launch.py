"""Submit batches as Dagster runs through the instance's run coordinator and run launcher (``--parallel``).

Each batch becomes a run of ``ingest_job`` tagged with its partition, created exactly as ``dagster job
launch`` creates one (the code location is loaded in its own gRPC server process, and runs start from it):

- with a queued run coordinator and a live ``dagster-daemon``, runs are *submitted*: the queue's limits
  (``max_concurrent_runs``, tag concurrency) decide when each starts, and the launcher where (a subprocess
  here, a Kubernetes Job under the K8sRunLauncher); the executor decides where steps run (Celery workers);
- with no daemon to drain a queue, runs are *launched* directly through the instance's run launcher;
- either way at most ``parallel`` of this command's runs are in flight at once.

Dagster has no public Python API for this (only GraphQL against a running webserver), so this module uses
the same internal functions as the ``dagster job launch`` command; they are confined here.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import dagster as dg
from dagster._cli.job import _create_run
from dagster._cli.workspace.cli_target import (
    get_code_location_from_workspace,
    get_remote_job_from_remote_repo,
    get_remote_repository_from_code_location,
)
from dagster._core.workspace.context import WorkspaceProcessContext, WorkspaceRequestContext
from dagster._core.workspace.load_target import ModuleTarget, PythonFileTarget, WorkspaceLoadTarget

from mm_platform.errors import ConfigError
from mm_platform.ingest.batches import BatchManifest
from mm_platform.ingest.scan import PlannedBatch
from mm_platform.log import get_logger, kv
from mm_platform.orchestration.runner import (
    JOB,
    PARTITIONS,
    BatchRun,
    batch_run_from_instance,
    definitions_file,
    is_definitions_file,
)

__all__ = ["INGEST_TAG", "daemon_is_running", "launch_batches"]

INGEST_TAG = "mmp/ingest"
"""Tags every run of one ``mmp ingest`` invocation (find them in the UI: ``mmp/ingest=<id>``)."""
DONE = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
POLL_S = 0.5
DAEMON_FRESH_S = 60.0

log = get_logger("mm_platform.orchestration.launch")


def daemon_is_running(instance: dg.DagsterInstance) -> bool:
    """Whether a ``dagster-daemon`` that drains the run queue has reported in lately."""
    beats = instance.get_daemon_heartbeats()
    beat = beats.get("QUEUED_RUN_COORDINATOR")
    return beat is not None and time.time() - beat.timestamp < DAEMON_FRESH_S


@contextmanager
def _children_print_to_stderr() -> Iterator[None]:
    """The code server and the run processes it starts inherit stdout: point it at stderr meanwhile, so
    their logs never mix with what the command prints (``mmp ingest --json`` stays one JSON document)."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


@contextmanager
def _workspace(
    instance: dg.DagsterInstance, definitions: str, working_directory: Path
) -> Iterator[WorkspaceRequestContext]:
    target: WorkspaceLoadTarget
    if is_definitions_file(definitions):
        target = PythonFileTarget(
            python_file=definitions, attribute="defs", working_directory=str(working_directory), location_name=None
        )
    else:
        target = ModuleTarget(
            module_name=definitions, attribute="defs", working_directory=str(working_directory), location_name=None
        )
    context = WorkspaceProcessContext(instance, version=dg.__version__, read_only=False, workspace_load_target=target)
    context.__enter__()
    try:
        yield context.create_request_context()
    finally:
        try:
            context.__exit__(None, None, None)
        except subprocess.TimeoutExpired:  # on a loaded machine the code server may take > 30 s to exit;
            # every run has finished by now, and the server stops by itself once its heartbeat ends
            log.warning("code server slow to stop %s", kv(definitions=str(definitions)))


def launch_batches(
    instance: dg.DagsterInstance,
    definitions: str | Path,
    batches: Sequence[BatchManifest | PlannedBatch],
    *,
    parallel: int,
    run_config: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
    working_directory: str | Path | None = None,
    timeout_s: float = 3600.0,
    on_start: Callable[[BatchManifest | PlannedBatch, str], None] | None = None,
) -> Iterator[BatchRun]:
    """Run each batch as its own Dagster run, at most ``parallel`` at once; yields runs as they finish.

    ``definitions``: a module (the installed package's by default) or a ``definitions.py`` file.
    ``working_directory`` (default: the current one) is where the code location imports from, as
    ``working_directory`` in workspace.yaml.
    """
    where = str(definitions_file(definitions)) if is_definitions_file(definitions) else str(definitions)
    if parallel < 1:
        raise ConfigError(f"--parallel must be at least 1, not {parallel}")
    if not batches:
        return
    instance.add_dynamic_partitions(PARTITIONS, sorted({b.batch_id for b in batches}))
    invocation = uuid.uuid4().hex[:12]
    queued = isinstance(instance.run_coordinator, dg.QueuedRunCoordinator)
    submit = not queued or daemon_is_running(instance)
    directory = Path(working_directory or Path.cwd()).resolve()
    with _children_print_to_stderr(), _workspace(instance, where, directory) as workspace:
        try:
            location = get_code_location_from_workspace(workspace, None)
            repo = get_remote_repository_from_code_location(location, None)
            job = get_remote_job_from_remote_repo(repo, JOB)
        except click.UsageError as exc:  # how Dagster's loaders report a code location that does not load
            raise ConfigError(
                f"the code location {where} does not load: {exc.format_message()}",
                hint="check it with `dagster definitions validate -f FILE` from the project folder",
            ) from exc
        pending = list(batches)
        running: dict[str, BatchManifest | PlannedBatch] = {}
        deadline = time.monotonic() + timeout_s
        while pending or running:
            while pending and len(running) < parallel:
                batch = pending.pop(0)
                run_tags = {**(tags or {}), "dagster/partition": batch.batch_id, INGEST_TAG: invocation}
                run = _create_run(instance, location, repo, job, dict(run_config or {}), run_tags, None, None)
                if submit:
                    instance.submit_run(run.run_id, workspace)
                else:
                    instance.launch_run(run.run_id, workspace)
                log.info("run %s", kv(batch=batch.batch_id, run=run.run_id, submitted=submit))
                running[run.run_id] = batch
                if on_start is not None:
                    on_start(batch, run.run_id)
            finished = [run_id for run_id in running if _status(instance, run_id) in DONE]
            for run_id in finished:
                batch = running.pop(run_id)
                yield batch_run_from_instance(instance, run_id, batch.batch_id)
            if not finished:
                if time.monotonic() > deadline:
                    raise ConfigError(
                        f"{len(running)} run(s) did not finish within {timeout_s:.0f} s: {', '.join(running)}",
                        hint="see them in the Dagster UI; a queued run needs `dagster-daemon run`",
                    )
                time.sleep(POLL_S)


def _status(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRunStatus:
    run = instance.get_run_by_id(run_id)
    assert run is not None
    return run.status
