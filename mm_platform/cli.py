"""``mmp``: the platform's command line. The environment is read here, at the boundary, and nowhere else."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click

from mm_platform.errors import MMPlatformError
from mm_platform.lake import Lake

F = TypeVar("F", bound=Callable[..., Any])


def _handle_errors(func: F) -> F:
    """A user sees what failed and what to do, not a traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except MMPlatformError as exc:
            click.echo(f"error: {exc.message}", err=True)
            if exc.hint:
                click.echo(f"hint: {exc.hint}", err=True)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]


def _emit(as_json: bool, payload: Any, text: str) -> None:
    click.echo(json.dumps(payload, indent=2, default=str) if as_json else text)


@click.group()
@click.option(
    "--lake",
    "lake_uri",
    envvar="MM_LAKE",
    default="./lake",
    show_default=True,
    help="Lake root: a local folder or s3://bucket/prefix (env MM_LAKE). S3 settings come from AWS_* variables.",
)
@click.pass_context
def main(ctx: click.Context, lake_uri: str) -> None:
    """mm-platform: a versioned record of your media, its metadata, derived data and embeddings."""
    ctx.obj = {"lake_uri": lake_uri, "env": dict(os.environ)}


def _lake(ctx: click.Context, create: bool = False) -> Lake:
    return Lake.open(ctx.obj["lake_uri"], ctx.obj["env"], create=create)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
@_handle_errors
def status(ctx: click.Context, as_json: bool) -> None:
    """The latest snapshot, row counts, an open publish and the last rejected partition."""
    info = _lake(ctx).status()
    snap = info["snapshot"]
    lines = [
        f"lake        {info['lake']}",
        f"snapshot    {snap['seq']} ({snap['kind']}, partition {snap['partition']}, at {snap['published_at']})",
        "rows        " + ", ".join(f"{name}={count}" for name, count in info["rows"].items()),
        f"snapshots   {info['snapshots']}",
    ]
    if info["open_intent"]:
        lines.append(f"in flight   publish {info['open_intent']['seq']} of {info['open_intent']['partition']}")
    if info["last_rejected"]:
        rejected = info["last_rejected"]
        lines.append(f"rejected    {rejected['partition']} at {rejected['at']}: {rejected['reason']}")
    _emit(as_json, info, "\n".join(lines))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
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
@click.pass_context
@_handle_errors
def recover(ctx: click.Context) -> None:
    """Finish a publish whose process died after its intent (publishers also do this by themselves)."""
    seq = _lake(ctx).recover()
    click.echo("nothing to recover" if seq is None else f"rolled publish {seq} forward")


if __name__ == "__main__":
    main()
