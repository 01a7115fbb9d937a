"""Helpers every ``mmp`` command shares: how errors are shown, how output is emitted, which lake is meant."""

from __future__ import annotations

import json
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


def _lake(ctx: click.Context, create: bool = False) -> Lake:
    return Lake.open(ctx.obj["lake_uri"], ctx.obj["env"], create=create)
