"""``mmp branch create/list/delete``, ``mmp merge`` and ``mmp log``: branches of the lake and its audit trail."""

from __future__ import annotations

from typing import Any

import click

from mm_platform.cli.common import audit_options, emit, handle_errors, open_lake


def _main_lake(ctx: click.Context) -> Any:
    return open_lake(ctx).main()


@click.group("branch")
def branch_group() -> None:
    """Isolated branches of the whole lake: publish on one, look at it, merge it back or delete it."""


@branch_group.command("create")
@click.argument("name")
@click.option("--from", "from_ref", default=None, help="A main snapshot (SEQ), a BRANCH or BRANCH@SEQ (default: main).")
@click.option("--json", "as_json", is_flag=True)
@audit_options
@click.pass_context
@handle_errors
def branch_create(ctx: click.Context, name: str, from_ref: str | None, as_json: bool) -> None:
    """Create branch NAME (metadata only: it starts from the fork snapshot's files, nothing is copied)."""
    from mm_platform.lake.branch import create_branch

    ctx.obj["branch"] = ""  # the new branch forks from --from, never from a --branch given by habit
    record = create_branch(_main_lake(ctx), name, from_ref)
    emit(
        as_json,
        record.to_json(),
        f"created branch {record.name} from {record.parent} snapshot {record.fork_seq}",
    )


@branch_group.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@handle_errors
def branch_list(ctx: click.Context, as_json: bool) -> None:
    """Every branch with its parent, fork snapshot and latest snapshot."""
    from mm_platform.lake.branch import branch_heads

    ctx.obj["branch"] = ""
    rows = branch_heads(_main_lake(ctx))
    lines = [f"{'branch':<20} {'parent':<12} {'fork':>5} {'head':>5} {'merged':>6}  created by"]
    lines += [
        f"{r['name']:<20} {r['parent']:<12} {r['fork_seq']:>5} {r['head_seq']:>5} {r['merged_seq']:>6}  "
        f"{r['actor']} at {r['created_at'][:19]}"
        for r in rows
    ]
    emit(as_json, rows, "\n".join(lines) if rows else "no branches")


@branch_group.command("delete")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@handle_errors
def branch_delete(ctx: click.Context, name: str, as_json: bool) -> None:
    """Delete branch NAME; main is untouched, and the next `mmp vacuum` frees the files only it held."""
    from mm_platform.lake.branch import delete_branch

    ctx.obj["branch"] = ""
    delete_branch(_main_lake(ctx), name)
    emit(as_json, {"deleted": name}, f"deleted branch {name}; `mmp vacuum` frees its files")


@click.command("merge")
@click.argument("source")
@click.option("--into", default=None, help="The target: main or a branch (default: the branch's parent).")
@click.option("--prefer", type=click.Choice(["source", "target"]), default=None, help="How conflicts are decided.")
@click.option("--json", "as_json", is_flag=True)
@audit_options
@click.pass_context
@handle_errors
def merge_command(ctx: click.Context, source: str, into: str | None, prefer: str | None, as_json: bool) -> None:
    """Merge branch SOURCE into its parent in one audited publish (a three-way merge by each table's keys)."""
    from mm_platform.lake.merge import merge_branch

    ctx.obj["branch"] = ""
    result = merge_branch(_main_lake(ctx), source, into=into, message=ctx.obj.get("message", ""), prefer=prefer)
    if result.publish is None or result.publish.noop:
        text = f"nothing to merge: {source} has no change since its last merge into {result.into}"
    else:
        text = f"merged {source} (snapshot {result.source_seq}) into {result.into}: snapshot {result.publish.seq}"
        for t in result.tables.values():
            text += (
                f"\n  {t.table:<18} {t.upserted} upserted, {t.deleted} deleted; "
                f"{t.files_committed} branch file(s) committed as they are, {t.files_rewritten} written"
            )
        if result.conflicts:
            text += f"\n  {len(result.conflicts)} conflict(s) resolved by --prefer {prefer}:"
            text += "".join(f"\n    {c.describe()}" for c in result.conflicts[:20])
    emit(as_json, result.to_dict(), text)


@click.command("log")
@click.option("--limit", type=int, default=50, show_default=True, help="The newest N events.")
@click.option("--all-events", is_flag=True, help="Also intents (each publish's first step).")
@click.option("--json", "as_json", is_flag=True)
@audit_options
@click.pass_context
@handle_errors
def log_command(ctx: click.Context, limit: int, all_events: bool, as_json: bool) -> None:
    """The audit trail: who published what, why, with which command or run (main, or --branch)."""
    from mm_platform.lake.audit_log import log_events

    lake = open_lake(ctx)
    events = log_events(lake, include_intents=all_events)[-limit:] if limit > 0 else []
    lines = [f"log of {lake.branch_name}"]
    for e in events:
        lines.append(
            f"{e['seq'] if e['seq'] is not None else '-':>5}  {e['event']:<9} {e['kind']:<9} {e['at'][:19]}  "
            f"{e['actor'] or '?'}: {e['message'] or ''}"
        )
        detail = e.get("detail")
        if detail:
            lines.append(f"{'':>7}{detail}")
        if e.get("command"):
            lines.append(f"{'':>7}by {e['command']}")
    emit(as_json, events, "\n".join(lines))
