"""``mmp``: the platform's command line. The environment is read here, at the boundary, and nowhere else.

The group is here; each command group lives in its own module (``lake``, ``ingest``, ``search``…), imported
only when one of its commands runs, so `mmp search` never pays for Dagster or the ingest pipeline."""

from __future__ import annotations

import gc
import importlib
import os
import shlex
import sys
from typing import Any

import click

from mm_platform.cli.common import audit_options, emit, handle_errors, open_lake

__all__ = ["audit_options", "emit", "handle_errors", "main", "open_lake", "run"]


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


# Every command lives in its module, imported only when it runs (or ``mmp --help`` lists it): `mmp search`
# must not pay for the ingest pipeline's decoders, nor `mmp status` for the models.
main.lazy_commands.update(
    {
        "status": "mm_platform.cli.lake:status",
        "snapshots": "mm_platform.cli.lake:snapshots",
        "rollback": "mm_platform.cli.lake:rollback",
        "vacuum": "mm_platform.cli.lake:vacuum",
        "compact": "mm_platform.cli.lake:compact",
        "recover": "mm_platform.cli.lake:recover",
        "ingest": "mm_platform.cli.ingest:ingest",
        "stale": "mm_platform.cli.reprocess:stale_command",
        "reprocess": "mm_platform.cli.reprocess:reprocess_command",
        "activate-model": "mm_platform.cli.reprocess:activate_model_command",
        "diff": "mm_platform.cli.snapshots:diff_command",
        "export": "mm_platform.cli.snapshots:export_command",
        "verify-export": "mm_platform.cli.snapshots:verify_export_command",
        "erase": "mm_platform.cli.erasure:erase_command",
        "vacuum-erased": "mm_platform.cli.erasure:vacuum_erased_command",
        "search": "mm_platform.cli.search:search_command",
        "lineage": "mm_platform.cli.search:lineage_command",
        "annotate": "mm_platform.cli.annotate:annotate_command",
        "annotations": "mm_platform.cli.annotate:annotations_command",
        "branch": "mm_platform.cli.branch:branch_group",
        "merge": "mm_platform.cli.branch:merge_command",
        "log": "mm_platform.cli.branch:log_command",
        "serve": "mm_platform.cli.serve:serve_command",
    }
)


def run() -> None:
    """The ``mmp`` console script: :data:`main`, then exit without the interpreter's final collection.

    After an ingest the process holds millions of objects (Dagster, Great Expectations, the models); the
    collection that interpreter shutdown runs over them took ~2 s, every command. Freezing them first (they
    are about to go with the process anyway) skips it. Not done for ``main`` itself: tests invoke it in a
    process that lives on."""
    try:
        main()
    finally:
        gc.freeze()


if __name__ == "__main__":
    run()
