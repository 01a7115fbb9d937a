"""Who published what and why: the audit fields every publish event carries.

The boundary that knows the caller (the CLI, a Dagster run) sets them once with :func:`audit_context`; every
publish, rejection and merge inside records them in ``_publish_log`` (column ``audit``, JSON). Without a
context the actor is the OS user, so no event is anonymous.
"""

from __future__ import annotations

import contextlib
import contextvars
import getpass
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class AuditInfo:
    """The audit fields of a publish event."""

    actor: str = ""
    """Who: ``--actor``, ``MM_ACTOR``, the Dagster run's user tag, or the OS user."""
    message: str = ""
    """Why: ``-m``."""
    command: str = ""
    """What ran it: the ``mmp`` command line, or ``dagster run <id>``."""
    branch: str = ""
    """The branch the publish went to (empty: main)."""

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v}


_CURRENT: contextvars.ContextVar[AuditInfo | None] = contextvars.ContextVar("mmp_audit", default=None)


def os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return "unknown"


def current_audit() -> AuditInfo:
    """The audit fields set by the innermost :func:`audit_context` (actor defaults to the OS user)."""
    info = _CURRENT.get() or AuditInfo()
    return info if info.actor else replace(info, actor=os_user())


@contextlib.contextmanager
def audit_context(**fields: str) -> Iterator[AuditInfo]:
    """Record ``actor``, ``message``, ``command`` (and ``branch``) on every publish made inside."""
    base = _CURRENT.get() or AuditInfo()
    info = replace(base, **{k: v for k, v in fields.items() if v})
    token = _CURRENT.set(info)
    try:
        yield info
    finally:
        _CURRENT.reset(token)


def set_audit(**fields: str) -> Callable[[], None]:
    """Set the audit fields, replacing earlier ones; returns the function that restores the previous ones
    (a CLI command calls it when it ends, a Dagster step runs in a context of its own)."""
    token = _CURRENT.set(AuditInfo(**{k: v for k, v in fields.items() if v}))

    def restore() -> None:
        with contextlib.suppress(ValueError):  # set in another context: nothing to restore here
            _CURRENT.reset(token)

    return restore


def merged(audit: Mapping[str, Any] | None, extra: Mapping[str, Any] | None) -> dict[str, Any]:
    return {**(audit or {}), **(extra or {})}
