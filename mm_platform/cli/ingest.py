"""``mmp ingest``: discover what changed in a source, plan batches, and run them through Dagster."""

from __future__ import annotations

import sys
from typing import Any

import click
from tqdm import tqdm

from mm_platform.cli.common import audit_options, emit, handle_errors, open_lake
from mm_platform.ingest.process import start_probe_server
from mm_platform.ingest.scan import plan_batches
from mm_platform.quality import prepare_in_background
from mm_platform.sources import source_for

__all__ = ["ingest"]


@click.command()
@click.argument("source_uri", metavar="SOURCE")
@click.option("--max-objects", type=int, default=1000, show_default=True, help="Objects per batch (partition).")
@click.option("--reconcile/--no-reconcile", default=True, show_default=True, help="Erase objects gone from SOURCE.")
@click.option(
    "--definitions",
    default=None,
    help="The Dagster code location: a module, or a definitions.py file (relative to the current folder). "
    "Default: the installed package's definitions.",
)
@click.option("--plan-only", is_flag=True, help="Create the batches (partitions) but run nothing.")
@click.option(
    "--parallel",
    type=int,
    default=None,
    help="Batches in flight at once, each a Dagster run submitted through the instance's run coordinator and "
    "launcher. Default: from the machine (half its cores, at most 8); 1 runs them one by one in this process.",
)
@click.option("--json", "as_json", is_flag=True)
@audit_options
@click.pass_context
@handle_errors
def ingest(
    ctx: click.Context,
    source_uri: str,
    max_objects: int,
    reconcile: bool,
    definitions: str | None,
    plan_only: bool,
    parallel: int | None,
    as_json: bool,
) -> None:
    """Discover new, changed and deleted objects in SOURCE (a folder or s3://bucket/prefix), create batches,
    and materialize them through Dagster (stage → audit → publish)."""
    if not plan_only:
        # Both start other processes whose imports (the decoders; Great Expectations) then run on another core
        # while this one loads Dagster, instead of on the first batch's path.
        start_probe_server()
        prepare_in_background()
    # Dagster is imported here, not at the top: `mmp --help` imports every command module (3 s with Dagster).
    from mm_platform.orchestration.launch import launch_batches
    from mm_platform.orchestration.resources import ACTOR_TAG, BRANCH_TAG, MESSAGE_TAG
    from mm_platform.orchestration.runner import (
        DEFINITIONS,
        PARTITIONS,
        default_parallel,
        instance_for,
        load_definitions,
        run_batches,
    )

    definitions = definitions or DEFINITIONS
    run_tags = {"branch": BRANCH_TAG, "actor": ACTOR_TAG, "message": MESSAGE_TAG}  # audit field → run tag
    env = ctx.obj["env"]
    lake = open_lake(ctx, create=True)
    source = source_for(source_uri, env)
    # One pass of the paged, chunked diff: batches are saved as they fill, so memory stays flat at 1M objects.
    batches = plan_batches(lake, source, max_objects=max_objects, deletions=reconcile).batches
    # The runs' resources get the lake and the audit fields from their run, not from this process's environment.
    run_config = {"resources": {"lake": {"config": {"uri": lake.location.root}}}}
    tags = {tag: ctx.obj[key] for key, tag in run_tags.items() if ctx.obj.get(key)}
    instance = instance_for(env.get("DAGSTER_HOME"))
    if plan_only:
        if batches:
            instance.add_dynamic_partitions(PARTITIONS, [b.batch_id for b in batches])
        plan = [{"batch": b.batch_id, "kind": b.kind, "objects": b.size} for b in batches]
        emit(
            as_json,
            plan,
            "\n".join(f"{p['batch']}  {p['kind']}  {p['objects']} object(s)" for p in plan) or "nothing new",
        )
        return
    parallel = default_parallel() if parallel is None else parallel
    runs = []
    progress = tqdm(total=len(batches), desc="batches", unit="batch", disable=as_json or not batches)
    if parallel > 1 and len(batches) > 1:
        finished = launch_batches(instance, definitions, batches, parallel=parallel, run_config=run_config, tags=tags)
    else:
        finished = run_batches(load_definitions(definitions), instance, batches, run_config=run_config, tags=tags)
    for run in finished:
        runs.append(run)
        progress.set_postfix_str(f"{run.batch_id} {'published' if run.success else 'FAILED'}")
        progress.update()
    progress.close()
    batch_summaries: list[dict[str, Any]] = [
        {
            "batch": r.batch_id,
            "run_id": r.run_id,
            "success": r.success,
            "publish_seq": r.publish_seq,
            "objects": r.metadata.get("raw_media", {}).get("objects"),
            "quarantined": r.metadata.get("raw_media", {}).get("quarantined"),
            "failed_checks": r.failed_checks,
            "error": r.error,
        }
        for r in runs
    ]
    current = lake.snapshot().to_dict()
    summary: dict[str, Any] = {
        "lake": lake.location.root,
        "source": source.uri,
        "batches": batch_summaries,
        "snapshot": current,
    }
    lines = [f"{source.uri} → {lake.location.root}: {len(runs)} batch(es)"]
    for b in batch_summaries:
        state = f"published as snapshot {b['publish_seq']}" if b["success"] else f"FAILED: {_why_failed(b)}"
        lines.append(f"  {b['batch']}: {b['objects'] or 0} object(s), {b['quarantined'] or 0} quarantined, {state}")
    if not runs:
        lines.append("  nothing new: the lake is up to date")
    emit(as_json, summary, "\n".join(lines))
    failed = [b for b in batch_summaries if not b["success"]]
    if failed:
        seq = current["seq"]
        click.echo(
            f"error: {len(failed)} of {len(runs)} batch(es) did not publish ({_why_failed(failed[0])}); "
            f"nothing of them is in the lake, which serves snapshot {seq}",
            err=True,
        )
        click.echo(f"hint: {_failure_hint(failed[0])}", err=True)
        sys.exit(2)


def _why_failed(batch: dict[str, Any]) -> str:
    if batch["failed_checks"]:
        return "rejected by " + ", ".join(batch["failed_checks"])
    return str(batch["error"] or "the run failed; see the Dagster run's logs")


def _failure_hint(batch: dict[str, Any]) -> str:
    error = str(batch["error"] or "")
    if "No space left" in error or "Errno 28" in error or "Disk quota" in error:
        return "free space where the lake lives, then run `mmp ingest` again: it plans what did not publish"
    if "Read-only file system" in error or "Errno 30" in error:
        return "the lake's storage is read-only; make it writable (or point --lake elsewhere), then run again"
    if batch["failed_checks"]:
        return "`mmp status` names the objects and why; fix the cause and run `mmp ingest` again (it re-plans them)"
    return f"the logs of Dagster run {batch['run_id']} have the details; `mmp ingest` again re-plans the batch"
