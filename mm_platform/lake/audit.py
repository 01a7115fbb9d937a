"""Audit of a staged partition: pluggable checks that run before anything is published."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa

from mm_platform.lake.snapshot import Snapshot


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one audit check."""

    name: str
    passed: bool
    table: str | None = None
    detail: str = ""
    failing_rows: Sequence[Mapping[str, Any]] = field(default_factory=tuple)
    """A small sample of the rows that failed, for the UI and the publish log."""

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["failing_rows"] = [dict(r) for r in self.failing_rows][:10]
        return doc


@dataclass(frozen=True)
class AuditContext:
    """What a check sees: the staged rows per table, and the snapshot readers see now."""

    partition: str
    staged: Mapping[str, pa.Table]
    base: Snapshot


AuditCheck = Callable[[AuditContext], CheckResult | Sequence[CheckResult]]
"""A check is any callable taking the context; it returns one result or several. A check with a slow set-up
may also have a ``prepare`` attribute: a callable that starts it in the background (see :func:`prepare_checks`)."""


def prepare_checks(checks: Sequence[AuditCheck]) -> None:
    """Start the checks' slow set-up (their ``prepare``, where they have one) while the stage is being built,
    so the audit does not wait for it afterwards; a set-up that fails is the check's own to report."""
    for prepare in {getattr(check, "prepare", None) for check in checks}:
        if prepare is not None:
            prepare()


def run_checks(context: AuditContext, checks: Sequence[AuditCheck]) -> list[CheckResult]:
    results: list[CheckResult] = []
    for check in checks:
        name = getattr(check, "__name__", type(check).__name__)
        try:
            outcome = check(context)
        except Exception as exc:  # a crashing check blocks the publish like a failing one
            outcome = CheckResult(name=name, passed=False, detail=f"check raised {type(exc).__name__}: {exc}")
        results.extend([outcome] if isinstance(outcome, CheckResult) else outcome)
    return results
