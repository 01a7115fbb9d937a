"""``mmp annotate`` and ``mmp annotations`` (registered on the ``mmp`` group at the end of ``cli.py``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click

from mm_platform.annotations.model import (
    MATCH_KINDS,
    AttachOptions,
    NothingAttachedError,
    RowProblem,
    RowsRejectedError,
)
from mm_platform.annotations.schema import ANNOTATION_REJECTS
from mm_platform.cli.common import audit_options, emit, handle_errors, open_lake
from mm_platform.cli.report import report_to_dagster

__all__ = ["annotate_command", "annotations_command"]


@click.command("annotate")
@click.argument("file")
@click.option("--set", "set_name", required=True, help="The annotation set; attaching again makes a new revision.")
@click.option("--key-column", default=None, help="The column naming the media (default: uri / key / sha256).")
@click.option(
    "--match",
    type=click.Choice(MATCH_KINDS),
    default=None,
    help="What the key column holds (default: the column's name says, or its values do).",
)
@click.option("--id-column", default=None, help="Tells several annotations of one media apart (e.g. box ids).")
@click.option("--producer", default="human", show_default=True, help="Who made the labels (lineage `producer`).")
@click.option(
    "--vocabulary",
    default=None,
    help="Allowed labels, comma-separated; kept for later revisions ('' drops it). Other labels are rejected.",
)
@click.option("--strict", is_flag=True, help="Publish nothing if any row is rejected.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@audit_options
@click.pass_context
@handle_errors
def annotate_command(
    ctx: click.Context,
    file: str,
    set_name: str,
    key_column: str | None,
    match: str | None,
    id_column: str | None,
    producer: str,
    vocabulary: str | None,
    strict: bool,
    as_json: bool,
) -> None:
    """Attach FILE (CSV, TSV, Parquet or JSON Lines; a path or s3://bucket/key) to media as the next revision
    of an annotation set, through the audit gate. Rejected rows are listed with their row number and reason."""
    from mm_platform.annotations.attach import attach_file
    from mm_platform.sources import S3Settings

    options = AttachOptions(
        set_name=set_name,
        match=match,  # type: ignore[arg-type]
        key_column=key_column,
        id_column=id_column,
        producer=producer,
        vocabulary=None if vocabulary is None else tuple(v.strip() for v in vocabulary.split(",") if v.strip()),
        strict=strict,
    )
    env = ctx.obj["env"]
    settings = S3Settings.from_env(env) if file.startswith("s3://") else None
    try:
        result = attach_file(open_lake(ctx), file, options, s3_settings=settings)
    except (NothingAttachedError, RowsRejectedError) as exc:
        if as_json:
            click.echo(json.dumps({"error": exc.message, "rejects": [p.to_dict() for p in exc.problems]}, indent=2))
        else:
            click.echo(_rejects_text(exc.problems), err=True)
        raise
    emit(as_json, result.to_dict(), _report(result))
    if result.seq is not None and not result.noop:
        report_to_dagster(
            ctx, "annotation_set", seq=result.seq, kind="annotate", partition=result.set_name,
            description=f"annotation set {result.set_name} revision {result.revision} from {result.file.uri}",
            metadata={"annotation_set": result.set_name, "revision": result.revision,
                      "rows_attached": result.rows_attached, "rows_rejected": result.rows_rejected},
        )


def _report(result: Any) -> str:
    f = result.file
    if result.noop:
        head = f"{result.set_name}: revision {result.revision} is current (same file, same result); nothing published"
    else:
        head = f"{result.set_name}: revision {result.revision} published as snapshot {result.seq}"
    reasons = ", ".join(f"{n} {reason}" for reason, n in result.reasons().items())
    lines = [
        head,
        f"  file        {f.uri} ({f.format}, version {f.version}, sha256 {f.sha256[:12]}…)",
        f"  matched by  {result.match_by} on column {result.key_column!r}"
        + (f", annotation ids from {result.id_column!r}" if result.id_column else ""),
        f"  rows        {result.rows_in_file}: {result.rows_attached} attached, {result.rows_rejected} rejected"
        + (f" ({reasons})" if reasons else ""),
        f"  annotations {result.annotations}: {result.added} added, {result.changed} changed, "
        f"{result.unchanged} unchanged, {result.removed} removed",
    ]
    if result.new_columns:
        lines.append(f"  new columns {', '.join(result.new_columns)}")
    if result.vocabulary:
        lines.append(f"  vocabulary  {', '.join(result.vocabulary)}")
    if result.rejects:
        lines.append(_rejects_text(result.rejects))
    return "\n".join(lines)


def _rejects_text(problems: Sequence[RowProblem]) -> str:
    lines = ["rejected rows:"]
    for p in problems:
        where = f"row {p.row}" + (f" (line {p.line})" if p.line is not None else "")
        lines.append(f"  {where:<20} {p.reason:<24} {p.detail}")
    return "\n".join(lines)


@click.command("annotations")
@click.option("--set", "set_name", default=None, help="Only this set.")
@click.option("--rejects", "rejects_of", type=int, default=None, help="List the rejected rows of this revision.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@audit_options
@click.pass_context
@handle_errors
def annotations_command(ctx: click.Context, set_name: str | None, rejects_of: int | None, as_json: bool) -> None:
    """Annotation sets and their revisions, each with the snapshot that holds it (`--snapshot` reads it)."""
    import pyarrow.compute as pc

    from mm_platform.annotations.query import revisions
    from mm_platform.errors import ConfigError

    lake = open_lake(ctx)
    if rejects_of is not None:
        if set_name is None:
            raise ConfigError("--rejects needs --set", hint="e.g. mmp annotations --set pets --rejects 2")
        where = (pc.field("annotation_set") == set_name) & (pc.field("revision") == rejects_of)
        rows = lake.snapshot().table(ANNOTATION_REJECTS.name, filter=where).sort_by("row").to_pylist()
        problems = [RowProblem(r["row"], r["reason"], r["detail"], r["line"], r["media_id"]) for r in rows]
        emit(as_json, [p.to_dict() for p in problems], _rejects_text(problems) if problems else "no rejected rows")
        return
    found = revisions(lake, set_name)
    header = (
        f"{'set':<20} {'rev':>4} {'snapshot':>8} {'rows':>6} {'attached':>8} {'rejected':>8} "
        f"{'+':>5} {'~':>5} {'-':>5}  file"
    )
    lines = [header] + [
        f"{r['annotation_set']:<20} {r['revision']:>4} {r['seq'] if r['seq'] is not None else '-':>8} "
        f"{r['rows_in_file']:>6} {r['rows_attached']:>8} {r['rows_rejected']:>8} {r['added']:>5} {r['changed']:>5} "
        f"{r['removed']:>5}  {r['source_file']}"
        for r in found
    ]
    emit(as_json, found, "\n".join(lines) if found else "no annotation sets")
