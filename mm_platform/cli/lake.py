"""``mmp status``, ``snapshots``, ``rollback``, ``vacuum``, ``compact`` and ``recover``: the lake's own
commands (its snapshots and its files)."""

from __future__ import annotations

from typing import Any

import click

from mm_platform.cli.common import audit_options, emit, handle_errors, open_lake
from mm_platform.cli.report import report_to_dagster
from mm_platform.errors import ConfigError

__all__ = ["compact", "recover", "rollback", "snapshots", "status", "vacuum"]


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@audit_options
@click.pass_context
@handle_errors
def status(ctx: click.Context, as_json: bool) -> None:
    """The latest snapshot, row counts, an open publish and the last rejected partition."""
    info = open_lake(ctx).status()
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
    emit(as_json, info, "\n".join(lines))


def _rejected_objects(ctx: click.Context, rejected: dict[str, Any]) -> list[dict[str, Any]]:
    """The objects a rejected batch's failing rows name, by URI (resolved through the batch's manifest)."""
    from mm_platform.ingest.batches import load_manifest  # only for a rejection: `mmp status` stays light

    try:
        manifest = load_manifest(open_lake(ctx).location, rejected["partition"])
        uri_of = {o.media_id: o.uri for o in manifest.objects}
    except ConfigError:  # not an ingest batch (an annotation revision, an erasure…)
        uri_of = {}
    objects: dict[str, dict[str, Any]] = {}
    for row in rejected.get("failing_rows", []):
        uri = row.get("uri") or uri_of.get(str(row.get("media_id")))
        if uri and uri not in objects:
            objects[uri] = {"uri": uri, "check": row["check"], "detail": row.get("detail")}
    return list(objects.values())


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@audit_options
@click.pass_context
@handle_errors
def snapshots(ctx: click.Context, as_json: bool) -> None:
    """Every readable published snapshot, oldest first."""
    snaps = [s.to_dict() for s in open_lake(ctx).snapshots()]
    lines = [f"{'seq':>5}  {'kind':<9} {'partition':<24} published_at"]
    lines += [f"{s['seq']:>5}  {s['kind']:<9} {str(s['partition']):<24} {s['published_at']}" for s in snaps]
    emit(as_json, snaps, "\n".join(lines))


@click.command()
@click.argument("seq", type=int)
@click.option("--reason", default="", help="Recorded in the publish log.")
@click.option("--json", "as_json", is_flag=True)
@audit_options
@click.pass_context
@handle_errors
def rollback(ctx: click.Context, seq: int, reason: str, as_json: bool) -> None:
    """Publish a new snapshot whose tables equal snapshot SEQ (history is kept)."""
    result = open_lake(ctx).rollback(seq, reason=reason)
    emit(
        as_json,
        {"seq": result.seq, "restored": seq, "table_versions": dict(result.table_versions)},
        f"published snapshot {result.seq}: tables restored to snapshot {seq}",
    )
    report_to_dagster(ctx, "published_snapshot", seq=result.seq, kind="rollback",
                      description=f"rollback to snapshot {seq}" + (f": {reason}" if reason else ""),
                      metadata={"restored": seq})


@click.command()
@click.option("--keep", "keep_last", type=int, default=None, help="Keep only the last N snapshots readable.")
@click.option("--min-age-hours", type=float, default=1.0, show_default=True, help="Grace for unpublished files.")
@click.option("--dry-run", is_flag=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@handle_errors
def vacuum(ctx: click.Context, keep_last: int | None, min_age_hours: float, dry_run: bool, as_json: bool) -> None:
    """Delete files that no retained snapshot needs (all snapshots are retained unless --keep)."""
    report = open_lake(ctx).vacuum(keep_last=keep_last, min_age_hours=min_age_hours, dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    total = sum(report.files_deleted.values())
    emit(
        as_json,
        report.__dict__,
        f"{verb} {total} file(s); {len(report.retained_seqs)} snapshot(s) retained"
        + (f"; snapshots below {report.expired_below_seq} expired" if report.expired_below_seq else ""),
    )


@click.command()
@click.option(
    "--min-files", type=int, default=8, show_default=True, help="Compact a table with at least this many small files."
)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@handle_errors
def compact(ctx: click.Context, min_files: int, as_json: bool) -> None:
    """Rewrite small files into large ones, in one publish (rows unchanged)."""
    report = open_lake(ctx).compact(min_files=min_files)
    text = (
        "nothing to compact"
        if report.publish_seq is None
        else (
            f"published snapshot {report.publish_seq}: "
            + ", ".join(f"{t} {report.files_before[t]}→{report.files_after[t]} files" for t in report.files_before)
        )
    )
    emit(as_json, report.__dict__, text)


@click.command()
@click.pass_context
@handle_errors
def recover(ctx: click.Context) -> None:
    """Finish a publish whose process died after its intent (publishers also do this by themselves)."""
    seq = open_lake(ctx).recover()
    click.echo("nothing to recover" if seq is None else f"rolled publish {seq} forward")
