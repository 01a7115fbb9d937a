"""What a publish does, as a value: the one ``Stage`` field the publisher decides on.

Modelled on lance's ``LanceOperation.Append/Overwrite/Delete`` passed to one ``commit``. Each operation
has the ``kind`` string that stage manifests, ``_publish_log`` events and Delta commit metadata
(``mmp.kind``) have always carried, so lakes written before these types existed read the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar


@dataclass(frozen=True)
class Write:
    """Add staged rows and remove the published rows they replace (an ingest, an annotation set...)."""

    kind: ClassVar[str] = "publish"


@dataclass(frozen=True)
class Merge(Write):
    """A branch's changes written into another branch."""

    kind: ClassVar[str] = "merge"


@dataclass(frozen=True)
class Erase(Write):
    """Rows removed for good: no rollback may go back past it, and ``vacuum-erased`` purges history."""

    kind: ClassVar[str] = "erase"


@dataclass(frozen=True)
class Compact(Write):
    """The same rows in fewer, larger files (never compacted again by the publish that made it)."""

    kind: ClassVar[str] = "compact"


@dataclass(frozen=True)
class Restore:
    """Each listed table's content goes back to a version it had (a rollback)."""

    versions: Mapping[str, int] = field(default_factory=dict)
    """The version each table's content returns to."""
    kind: ClassVar[str] = "rollback"


Operation = Write | Restore
"""Every operation; a ``Write`` subclass commits staged files, a ``Restore`` commits earlier versions."""

_WRITES: dict[str, type[Write]] = {op.kind: op for op in (Write, Merge, Erase, Compact)}


def operation_from(kind: str, restore_versions: Mapping[str, int] | None = None) -> Operation:
    """The operation a persisted ``kind`` (and a rollback's ``restore_versions``) names."""
    if kind == Restore.kind:
        return Restore(dict(restore_versions or {}))
    return _WRITES.get(kind, Write)()


def restored_versions(operation: Operation) -> Mapping[str, int]:
    """The versions a restore returns tables to (empty for a write)."""
    return operation.versions if isinstance(operation, Restore) else {}
