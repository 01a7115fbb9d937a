"""``mmp diff``, ``mmp export`` and ``mmp verify-export``: commands over whole snapshots.

Plain click commands; ``mm_platform.cli`` attaches them to the ``mmp`` group when one of them runs.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Any

import click

from mm_platform.annotations.schema import ANNOTATIONS
from mm_platform.cli.common import audit_options, emit, handle_errors, open_lake

__all__ = ["diff_command", "export_command", "verify_export_command"]


@click.command("diff")
@click.argument("a")
@click.argument("b")
@click.option("--ignore-column", "ignore_columns", multiple=True, help="Leave this column out (repeatable).")
@click.option("--sample", "sample_size", type=int, default=10, show_default=True, help="Keys listed per category.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@audit_options
@click.pass_context
@handle_errors
def diff_command(
    ctx: click.Context, a: str, b: str, ignore_columns: tuple[str, ...], sample_size: int, as_json: bool
) -> None:
    """Rows added, changed and removed per table from A to B (matched by each table's key). A and B are
    snapshot seqs, branches (`main`, `exp`) or BRANCH@SEQ."""
    from mm_platform.snapshots import diff_snapshots
    from mm_platform.snapshots.diff import resolve_snapshot
    from mm_platform.snapshots.diff_objects import sample_objects

    lake = open_lake(ctx)
    snap_a, snap_b = resolve_snapshot(lake, a), resolve_snapshot(lake, b)
    diff = diff_snapshots(lake, snap_a, snap_b, ignore_columns=ignore_columns, sample_size=sample_size)
    objects = sample_objects(snap_a, snap_b, diff)  # rows are matched by id; people know objects by key
    lines = [f"snapshot {a} → {b}", f"{'table':<18} {'added':>8} {'changed':>8} {'removed':>8}  versions"]
    for t in diff.tables.values():
        versions = f"{t.version_a}→{t.version_b}" if t.compared else f"{t.version_a} (unchanged)"
        lines.append(f"{t.table:<18} {t.added:>8} {t.changed:>8} {t.removed:>8}  {versions}")
    for t in diff.tables.values():
        for category, keys in (("added", t.added_keys), ("changed", t.changed_keys), ("removed", t.removed_keys)):
            if keys:
                names = objects.get(t.table, {}).get(f"{category}_keys") or [None] * len(keys)
                counted = Counter(_row_name(t.key, k, name) for k, name in zip(keys, names, strict=True))
                shown = ", ".join(f"{n} (×{c})" if c > 1 else n for n, c in counted.items())
                lines.append(f"  {t.table} {category}: {shown}")
        if t.changed_columns:
            lines.append(f"  {t.table} columns: " + ", ".join(f"{c}={n}" for c, n in t.changed_columns.items()))
    payload = diff.to_dict()
    for name, per_category in objects.items():  # beside each sample, the object key of each row
        for category, names in per_category.items():
            payload["tables"][name][category.replace("_keys", "_objects")] = names
    annotations = diff.tables.get(ANNOTATIONS.name)
    if annotations is not None and not annotations.is_empty:
        from mm_platform.annotations.query import label_changes

        found = {
            "added_keys": annotations.added_keys,
            "changed_keys": annotations.changed_keys,
            "removed_keys": annotations.removed_keys,
        }
        payload["annotation_changes"] = label_changes(lake, snap_a, snap_b, found)
        lines.append("annotation changes (which labels changed):")
        lines += [f"  {_label_change(change)}" for change in payload["annotation_changes"]]
    emit(as_json, payload, "\n".join(lines))


def _row_name(key: tuple[str, ...], row: dict[str, Any], object_key: str | None) -> str:
    """A row as a person knows it: the object key (and, for rows below media, what the row is)."""
    if object_key is None:
        return str(row[key[0]]) if len(key) == 1 else "/".join(map(str, row.values()))
    rest = [str(row[c]) for c in key if c != "media_id" and c not in ("derived_id", "subject_id")]
    return object_key + (f" [{'/'.join(rest)}]" if rest else "")


def _label_change(change: dict[str, Any]) -> str:
    where = f"{change['change']:<8} {change['annotation_set']}  {change['media']}"
    if change["annotation_key"]:
        where += f" #{change['annotation_key']}"
    fields = change["fields"]
    if change["change"] == "changed":
        shown = "; ".join(f"{c}: {was} → {now}" for c, (was, now) in fields.items())
    else:
        side = 1 if change["change"] == "added" else 0
        shown = " ".join(f"{c}={v[side]}" for c, v in fields.items() if c not in ("producer", "value_type"))
    return f"{where}  {shown}"


@click.command("export")
@click.option("--snapshot", "seq", type=int, default=None, help="Snapshot to export (default: the latest).")
@click.option("--to", "target", type=click.Path(file_okay=False, path_type=Path), required=True, help="New folder.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@audit_options
@click.pass_context
@handle_errors
def export_command(ctx: click.Context, seq: int | None, target: Path, as_json: bool) -> None:
    """Write a snapshot's tables as Parquet plus manifest.json pinning every source object version."""
    from mm_platform.snapshots import export_snapshot

    manifest = export_snapshot(open_lake(ctx), seq, target)
    summary = {
        "seq": manifest.seq,
        "folder": str(target),
        "table_versions": manifest.table_versions,
        "rows": {name: t.rows for name, t in manifest.tables.items()},
        "objects": len(manifest.objects),
    }
    rows = ", ".join(f"{name}={t.rows}" for name, t in manifest.tables.items())
    emit(as_json, summary, f"exported snapshot {manifest.seq} to {target}: {rows}; {len(manifest.objects)} object(s)")


@click.command("verify-export")
@click.argument("export_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--workers", type=int, default=4, show_default=True, help="Objects read in parallel.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
@handle_errors
def verify_export_command(ctx: click.Context, export_dir: Path, workers: int, as_json: bool) -> None:
    """Check that the sources still hold every object an export pins (exit code 1 if not)."""
    from mm_platform.snapshots import verify_export

    report = verify_export(export_dir, ctx.obj["env"], workers=workers)
    lines = [
        f"snapshot {report.seq} export at {report.export_dir}: {report.objects_checked} object(s) checked, "
        + ("all match" if report.passed else f"{len(report.problems)} problem(s)")
    ]
    lines += [f"  {p.status:<8} {p.key}: {p.detail}" for p in report.problems]
    lines += [f"  file     {problem}" for problem in report.file_problems]
    lines += [f"  newer    {p.key}: {p.detail}" for p in report.newer]  # information, not a failure
    emit(as_json, report.to_dict(), "\n".join(lines))
    if not report.passed:
        sys.exit(1)
