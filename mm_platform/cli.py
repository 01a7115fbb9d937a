"""``mmp``: the platform's command line. The environment is read here, at the boundary, and nowhere else."""

from __future__ import annotations

import importlib
import os
import shlex
import sys
from typing import Any

import click

from mm_platform.cli_common import _emit, _handle_errors, _lake, audit_options


class _LazyGroup(click.Group):
    """A group whose commands in ``lazy_commands`` ("name" -> "module:attribute") import on first use."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands: dict[str, str] = {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy_commands:
            module, _, attribute = self.lazy_commands[cmd_name].partition(":")
            self.add_command(getattr(importlib.import_module(module), attribute), cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(cls=_LazyGroup)
@click.option(
    "--lake",
    "lake_uri",
    envvar="MM_LAKE",
    default="./lake",
    show_default=True,
    help="Lake root: a local folder or s3://bucket/prefix (env MM_LAKE). S3 settings come from AWS_* variables.",
)
@click.option("--branch", envvar="MM_BRANCH", default="", help="Read and publish on this branch (env MM_BRANCH).")
@click.option("--actor", envvar="MM_ACTOR", default="", help="Who publishes, for the audit trail (env MM_ACTOR).")
@click.option("-m", "--message", default="", help="Why: recorded on every publish this command makes.")
@click.pass_context
def main(ctx: click.Context, lake_uri: str, branch: str, actor: str, message: str) -> None:
    """mm-platform: a versioned record of your media, its metadata, derived data and embeddings."""
    ctx.obj = {"lake_uri": lake_uri, "env": dict(os.environ), "branch": branch, "actor": actor, "message": message}
    if os.path.basename(sys.argv[0]) == "mmp":  # the audit trail keeps the command line as typed
        ctx.obj["command"] = " ".join(["mmp", *(shlex.quote(a) for a in sys.argv[1:])])


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@audit_options
@click.pass_context
@_handle_errors
def status(ctx: click.Context, as_json: bool) -> None:
    """The latest snapshot, row counts, an open publish and the last rejected partition."""
    info = _lake(ctx).status()
    snap = info["snapshot"]
    lines = [
        f"lake        {info['lake']}" + (f" (branch {info['branch']})" if "branch" in info else ""),
        f"snapshot    {snap['seq']} ({snap['kind']}, partition {snap['partition']}, at {snap['published_at']})",
        "rows        " + ", ".join(f"{name}={count}" for name, count in info["rows"].items()),
        f"snapshots   {info['snapshots']}",
    ]
    if info["open_intent"]:
        lines.append(f"in flight   publish {info['open_intent']['seq']} of {info['open_intent']['partition']}")
    if info["last_rejected"]:
        rejected = info["last_rejected"]
        rejected["objects"] = _rejected_objects(ctx, rejected)
        lines.append(f"rejected    {rejected['partition']} at {rejected['at']}: {rejected['reason']}")
        lines += [f"  object    {o['uri']}: {o['check']}" for o in rejected["objects"]]
    _emit(as_json, info, "\n".join(lines))


def _rejected_objects(ctx: click.Context, rejected: dict[str, Any]) -> list[dict[str, Any]]:
    """The objects a rejected batch's failing rows name, by URI (resolved through the batch's manifest)."""
    from mm_platform.errors import ConfigError
    from mm_platform.ingest.batches import load_manifest

    try:
        manifest = load_manifest(_lake(ctx).location, rejected["partition"])
        uri_of = {o.media_id: o.uri for o in manifest.objects}
    except ConfigError:  # not an ingest batch (an annotation revision, an erasure…)
        uri_of = {}
    objects: dict[str, dict[str, Any]] = {}
    for row in rejected.get("failing_rows", []):
        uri = row.get("uri") or uri_of.get(str(row.get("media_id")))
        if uri and uri not in objects:
            objects[uri] = {"uri": uri, "check": row["check"], "detail": row.get("detail")}
    return list(objects.values())


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@audit_options
@click.pass_context
@_handle_errors
def snapshots(ctx: click.Context, as_json: bool) -> None:
    """Every readable published snapshot, oldest first."""
    snaps = [s.to_dict() for s in _lake(ctx).snapshots()]
    lines = [f"{'seq':>5}  {'kind':<9} {'partition':<24} published_at"]
    lines += [f"{s['seq']:>5}  {s['kind']:<9} {str(s['partition']):<24} {s['published_at']}" for s in snaps]
    _emit(as_json, snaps, "\n".join(lines))


@main.command()
@click.argument("seq", type=int)
@click.option("--reason", default="", help="Recorded in the publish log.")
@click.option("--json", "as_json", is_flag=True)
@audit_options
@click.pass_context
@_handle_errors
def rollback(ctx: click.Context, seq: int, reason: str, as_json: bool) -> None:
    """Publish a new snapshot whose tables equal snapshot SEQ (history is kept)."""
    result = _lake(ctx).rollback(seq, reason=reason)
    _emit(
        as_json,
        {"seq": result.seq, "restored": seq, "table_versions": dict(result.table_versions)},
        f"published snapshot {result.seq}: tables restored to snapshot {seq}",
    )
    from mm_platform.cli_dagster import report_to_dagster

    report_to_dagster(ctx, "published_snapshot", seq=result.seq, kind="rollback",
                      description=f"rollback to snapshot {seq}" + (f": {reason}" if reason else ""),
                      metadata={"restored": seq})


@main.command()
@click.option("--keep", "keep_last", type=int, default=None, help="Keep only the last N snapshots readable.")
@click.option("--min-age-hours", type=float, default=1.0, show_default=True, help="Grace for unpublished files.")
@click.option("--dry-run", is_flag=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@_handle_errors
def vacuum(ctx: click.Context, keep_last: int | None, min_age_hours: float, dry_run: bool, as_json: bool) -> None:
    """Delete files that no retained snapshot needs (all snapshots are retained unless --keep)."""
    report = _lake(ctx).vacuum(keep_last=keep_last, min_age_hours=min_age_hours, dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    total = sum(report.files_deleted.values())
    _emit(
        as_json,
        report.__dict__,
        f"{verb} {total} file(s); {len(report.retained_seqs)} snapshot(s) retained"
        + (f"; snapshots below {report.expired_below_seq} expired" if report.expired_below_seq else ""),
    )


@main.command()
@click.option(
    "--min-files", type=int, default=8, show_default=True, help="Compact a table with at least this many small files."
)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@_handle_errors
def compact(ctx: click.Context, min_files: int, as_json: bool) -> None:
    """Rewrite small files into large ones, in one publish (rows unchanged)."""
    report = _lake(ctx).compact(min_files=min_files)
    text = (
        "nothing to compact"
        if report.publish_seq is None
        else (
            f"published snapshot {report.publish_seq}: "
            + ", ".join(f"{t} {report.files_before[t]}→{report.files_after[t]} files" for t in report.files_before)
        )
    )
    _emit(as_json, report.__dict__, text)


@main.command()
@click.pass_context
@_handle_errors
def recover(ctx: click.Context) -> None:
    """Finish a publish whose process died after its intent (publishers also do this by themselves)."""
    seq = _lake(ctx).recover()
    click.echo("nothing to recover" if seq is None else f"rolled publish {seq} forward")


@main.command()
@click.argument("source_uri", metavar="SOURCE")
@click.option("--max-objects", type=int, default=1000, show_default=True, help="Objects per batch (partition).")
@click.option("--reconcile/--no-reconcile", default=True, show_default=True, help="Erase objects gone from SOURCE.")
@click.option("--definitions", default="definitions.py", show_default=True, help="The Dagster code location.")
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
@_handle_errors
def ingest(
    ctx: click.Context,
    source_uri: str,
    max_objects: int,
    reconcile: bool,
    definitions: str,
    plan_only: bool,
    parallel: int | None,
    as_json: bool,
) -> None:
    """Discover new, changed and deleted objects in SOURCE (a folder or s3://bucket/prefix), create batches,
    and materialize them through Dagster (stage → audit → publish)."""
    from tqdm import tqdm

    from mm_platform.ingest.batches import ManifestWriter
    from mm_platform.ingest.ledger import DiscoveryLedger
    from mm_platform.ingest.reconcile import ReconcileCursor
    from mm_platform.ingest.scan import ScanBudget, scan_step
    from mm_platform.orchestration.runner import (
        PARTITIONS,
        default_parallel,
        instance_for,
        load_definitions,
        run_batches,
    )
    from mm_platform.sources import S3Settings, source_from_uri

    env = ctx.obj["env"]
    lake = _lake(ctx, create=True)
    for key, var in (("branch", "MM_BRANCH"), ("actor", "MM_ACTOR"), ("message", "MM_MESSAGE")):
        if ctx.obj.get(key):  # the code location's resources read these when the run starts
            os.environ[var] = ctx.obj[key]
    settings = S3Settings.from_env(env) if source_uri.startswith("s3://") else None
    source = source_from_uri(source_uri, s3_settings=settings)
    snapshot = lake.snapshot()
    erased = frozenset(snapshot.table("erasures", columns=["media_id"]).column("media_id").to_pylist())
    # One pass of the paged, chunked diff: batches are saved as they fill, so memory stays flat at 1M objects.
    with ManifestWriter(lake.location) as writer:
        batches = scan_step(
            source,
            snapshot,
            DiscoveryLedger(),
            ReconcileCursor(),
            writer.save,
            budget=ScanBudget.unbounded(),
            max_objects=max_objects,
            erased=erased,
            deletions=reconcile,
            remember=False,
        ).batches
    os.environ["MM_LAKE"] = lake.location.root  # the code location's resources read it when the run starts
    instance = instance_for(env.get("DAGSTER_HOME"))
    if plan_only:
        if batches:
            instance.add_dynamic_partitions(PARTITIONS, [b.batch_id for b in batches])
        plan = [{"batch": b.batch_id, "kind": b.kind, "objects": b.size} for b in batches]
        _emit(
            as_json,
            plan,
            "\n".join(f"{p['batch']}  {p['kind']}  {p['objects']} object(s)" for p in plan) or "nothing new",
        )
        return
    parallel = default_parallel() if parallel is None else parallel
    runs = []
    progress = tqdm(total=len(batches), desc="batches", unit="batch", disable=as_json or not batches)
    if parallel > 1 and len(batches) > 1:
        from mm_platform.orchestration.launch import launch_batches

        finished = launch_batches(instance, definitions, batches, parallel=parallel)
    else:
        finished = run_batches(load_definitions(definitions), instance, batches)
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
    _emit(as_json, summary, "\n".join(lines))
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


# Commands that live in their own modules, imported only when one of them runs (or ``mmp --help`` lists
# them): `mmp search` must not pay for the ingest pipeline's decoders, nor `mmp status` for the models.
main.lazy_commands.update(
    {
        "stale": "mm_platform.cli_reprocess:stale_command",
        "reprocess": "mm_platform.cli_reprocess:reprocess_command",
        "activate-model": "mm_platform.cli_reprocess:activate_model_command",
        "diff": "mm_platform.cli_snapshots:diff_command",
        "export": "mm_platform.cli_snapshots:export_command",
        "verify-export": "mm_platform.cli_snapshots:verify_export_command",
        "erase": "mm_platform.cli_erasure:erase_command",
        "vacuum-erased": "mm_platform.cli_erasure:vacuum_erased_command",
        "search": "mm_platform.cli_search:search_command",
        "lineage": "mm_platform.cli_search:lineage_command",
        "annotate": "mm_platform.cli_annotate:annotate_command",
        "annotations": "mm_platform.cli_annotate:annotations_command",
        "branch": "mm_platform.cli_branch:branch_group",
        "merge": "mm_platform.cli_branch:merge_command",
        "log": "mm_platform.cli_branch:log_command",
        "serve": "mm_platform.cli_serve:serve_command",
    }
)

if __name__ == "__main__":
    main()
