"""Helpers every ``mmp`` command shares: how errors are shown (:func:`handle_errors`), how output is emitted
(:func:`emit`), which lake is meant (:func:`open_lake`) and who acts (:func:`audit_options`)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click

from mm_platform.catalog import open_lake as open_catalogued_lake
from mm_platform.errors import MMPlatformError
from mm_platform.lake import Lake
from mm_platform.lake.audit_trail import set_audit

__all__ = ["audit_options", "emit", "handle_errors", "open_lake"]

F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(func: F) -> F:
    """A user sees what failed and what to do, not a traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except MMPlatformError as exc:
            if kwargs.get("as_json"):  # a script asked for JSON: it gets the error as JSON too, on stdout
                click.echo(json.dumps({"error": exc.message, "hint": exc.hint or None}, indent=2))
            click.echo(f"error: {exc.message}", err=True)
            if exc.hint:
                click.echo(f"hint: {exc.hint}", err=True)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]


def emit(as_json: bool, payload: Any, text: str) -> None:
    """``payload`` as JSON with ``--json``, else ``text`` for a person."""
    click.echo(json.dumps(payload, indent=2, default=str) if as_json else text)


def open_lake(ctx: click.Context, create: bool = False) -> Lake:
    """The lake (on ``--branch`` / ``MM_BRANCH`` when given); its publishes carry the audit fields."""
    obj = ctx.obj
    branch = obj.get("branch") or None
    restore = set_audit(
        actor=obj.get("actor", ""), message=obj.get("message", ""), command=obj.get("command") or _command(ctx)
    )
    ctx.call_on_close(restore)  # the fields belong to this command only
    return open_catalogued_lake(obj["lake_uri"], obj["env"], create=create, branch=branch)


def _command(ctx: click.Context) -> str:
    """The command as the audit trail records it: ``mmp <command> name=value ...``."""
    parts = ["mmp", *ctx.command_path.split(" ")[1:]]
    for name, value in ctx.params.items():
        if value not in (None, False, (), "") and name != "as_json":
            parts.append(f"{name}={value if not isinstance(value, tuple) else ','.join(map(str, value))}")
    return " ".join(parts)


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    if value and param.name:
        ctx.obj[param.name] = value
    return value


def audit_options(func: F) -> F:
    """``--branch``, ``--actor`` and ``-m`` on a command (as on ``mmp`` itself): which branch, who, why."""
    for option in (
        click.option("-m", "--message", expose_value=False, callback=_remember, help="Why: kept in `mmp log`."),
        click.option("--actor", expose_value=False, callback=_remember, help="Who (default: MM_ACTOR or OS user)."),
        click.option("--branch", expose_value=False, callback=_remember, help="Work on this branch (env MM_BRANCH)."),
    ):
        func = option(func)
    return func
