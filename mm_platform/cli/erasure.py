"""``mmp erase`` and ``mmp vacuum-erased``: click commands that ``mm_platform.cli`` attaches to its group."""

from __future__ import annotations

import sys

import click

from mm_platform.cli.common import audit_options, emit, handle_errors, open_lake
from mm_platform.cli.report import report_to_dagster

__all__ = ["erase_command", "vacuum_erased_command"]


def _seqs(seqs: list[int]) -> str:
    if not seqs:
        return ""
    word = "snapshot" if len(seqs) == 1 else "snapshots"
    shown = f"{seqs[0]}–{seqs[-1]}" if len(seqs) > 2 and seqs == list(range(seqs[0], seqs[-1] + 1)) else ", ".join(
        map(str, seqs)
    )
    return f"{word} {shown}"


@click.command("erase")
@click.argument("targets", nargs=-1, required=True)
@click.option("--reason", required=True, help="Why (recorded in the `erasures` audit table), e.g. a request id.")
@click.option("--requested-by", default="", help="Who asked for the erasure (recorded in the audit table).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@audit_options
@click.pass_context
@handle_errors
def erase_command(ctx: click.Context, targets: tuple[str, ...], reason: str, requested_by: str, as_json: bool) -> None:
    """Remove every row of the objects TARGET… (URIs or media ids) from every table, in one publish.

    An audit row per object goes to `erasures` (what, when, why; never the URI or content). Older snapshots
    still hold the rows until `mmp vacuum-erased` removes them from history.
    """
    from mm_platform.erasure import erase

    # The audit trail names the command but never the erased objects (vacuum-erased verifies that).
    ctx.obj["command"] = f"mmp erase ({len(targets)} target(s))"
    result = erase(open_lake(ctx), targets, reason, requested_by)
    rows = ", ".join(f"{name}={count}" for name, count in result.rows_removed.items())
    text = (
        f"published snapshot {result.seq}: erased {len(result.media_ids)} media (erasure {result.erasure_id}); "
        f"rows removed: {rows}\n"
        "older snapshots still hold them: run `mmp vacuum-erased` to remove them from history"
    )
    if result.shared_content:
        text += f"\nnote: {result.shared_content} other media have identical bytes; their rows keep the content hash"
    emit(as_json, result.__dict__, text)

    report_to_dagster(
        ctx, "published_snapshot", seq=result.seq, kind="erase",
        description=f"erasure {result.erasure_id}: {len(result.media_ids)} media removed from every table ({reason})",
        metadata={"erasure_id": result.erasure_id, "media_erased": len(result.media_ids),
                  "partition": f"erasure:{result.erasure_id}", "rows_removed": sum(result.rows_removed.values())},
    )


@click.command("vacuum-erased")
@click.option("--dry-run", is_flag=True, help="Say which snapshots would expire; change nothing.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before expiring snapshots (asked only on a terminal).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
@handle_errors
def vacuum_erased_command(ctx: click.Context, dry_run: bool, yes: bool, as_json: bool) -> None:
    """Make erased objects unreadable: EXPIRE every snapshot before the latest erasure (they can no longer be
    read, rolled back to or exported), delete their files and old Delta logs, verify.

    Exits with code 2 when a file still names an erased object (the report lists it).
    """
    from mm_platform.erasure import plan_vacuum_erased, vacuum_erased

    lake = open_lake(ctx).main()  # history is main's: a branch cannot vacuum it
    plan = plan_vacuum_erased(lake)
    expiring = _seqs(plan.expiring)
    if dry_run:
        emit(
            as_json,
            {**plan.to_dict(), "dry_run": True},
            f"would expire {expiring or 'no snapshots'} (history before the erasure of {plan.erased_media} media)"
            + "; nothing changed",
        )
        return
    if plan.expiring and not yes and sys.stdin.isatty():
        click.confirm(
            f"this expires {expiring}: they can no longer be read, rolled back to or exported. Continue?",
            abort=True,
            err=True,
        )
    report = vacuum_erased(lake)
    text = (
        f"{report.erased_media} erased media: deleted {sum(report.data_files_deleted.values())} data file(s), "
        f"{sum(report.vacuumed_files.values())} other expired file(s), "
        f"{sum(report.log_files_deleted.values())} log file(s), {report.manifests_deleted} manifest(s) "
        f"({report.manifests_rewritten} rewritten), {report.index_files_deleted} index cache file(s); "
        f"snapshots below {report.expired_below_seq} expired"
    )
    if plan.expiring:
        text += f"\nexpired {expiring}: history before the erasure is no longer readable"
    emit(as_json, {**report.to_dict(), "expired": plan.expiring}, text)
    if not report.complete:
        for path in report.pending:
            click.echo(f"pending: {path} (a retained snapshot or an in-flight publish uses it)", err=True)
        for leftover in report.leftovers:
            click.echo(f"still present: {leftover}", err=True)
        click.echo("hint: finish or roll back the publish in flight, erase again if needed, then re-run", err=True)
        sys.exit(2)
