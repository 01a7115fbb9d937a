"""Publishes made by ``mmp`` itself (erase, annotate, rollback), reported to Dagster when ``DAGSTER_HOME`` is set.

Dagster only sees what its runs materialize; without this, an erasure or an annotation revision published from
the command line was a snapshot the UI never showed. Reporting is best effort: the publish has happened
either way, so a Dagster problem is a warning on stderr, not a failed command.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import click

__all__ = ["report_to_dagster"]


def report_to_dagster(
    ctx: click.Context, asset: str, *, seq: int, kind: str, description: str, metadata: Mapping[str, Any],
    partition: str | None = None,
) -> bool:
    """Report publish ``seq`` as a materialization of ``asset``; False (and nothing imported) without DAGSTER_HOME."""
    env = ctx.obj["env"]
    home = env.get("DAGSTER_HOME")
    if not home:
        return False
    try:
        from mm_platform.orchestration.report import report_publish

        report_publish(
            home, asset, seq=seq, kind=kind, description=description, metadata=metadata, partition=partition,
            browser_url=env.get("MM_BROWSER_URL") or None,
        )
    except Exception as exc:  # noqa: BLE001 - any Dagster failure: the publish itself stands
        click.echo(f"warning: snapshot {seq} is published, but reporting it to Dagster failed: {exc}", err=True)
        return False
    click.echo(f"reported snapshot {seq} to Dagster ({home}) as a materialization of {asset}", err=True)
    return True
