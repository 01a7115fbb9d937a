"""The platform's tables, in one place: what every lake is opened with.

The lake library holds whatever catalog it is given (``mm_platform.lake.TableCatalog``); this module is
where the domain lists its tables — the core media tables, the annotation tables and the erasure audit
table — and ``open_lake`` is how the CLI, the orchestration resources, serving and tests open a lake.
"""

from __future__ import annotations

from collections.abc import Mapping

from mm_platform.annotations.schema import ANNOTATION_TABLES
from mm_platform.erasure.table import ERASURES
from mm_platform.lake import Lake, TableCatalog
from mm_platform.tables import CORE_TABLES

__all__ = ["CATALOG", "open_lake"]

CATALOG = TableCatalog([*CORE_TABLES, *ANNOTATION_TABLES, ERASURES])
"""Every data table of a lake of this platform, in the order they are listed and created."""


def open_lake(
    uri: str, env: Mapping[str, str] | None = None, *, create: bool = True, branch: str | None = None
) -> Lake:
    """``Lake.open`` with the platform's catalog: create the lake (and any table it lacks) or open it."""
    return Lake.open(uri, env, catalog=CATALOG, create=create, branch=branch)
