"""Defer the modules Great Expectations imports but our validation never runs, until something uses them.

``import great_expectations`` takes ~3.4 s of a core, and a third of that is two libraries pulled in at module
level by a single expectation (``expect_column_kl_divergence_to_be_less_than``): ``scipy.stats`` (~1 s) and
``altair`` (~0.3 s), for a distribution test and a chart our suites never ask for. That CPU is taken from the
probe workers of the batch being staged, on a 2-core machine the whole ingest's wall time.

The validation process (:mod:`mm_platform.quality.gx_process`) therefore imports them through the standard
library's :class:`importlib.util.LazyLoader`: the module object exists at once, and its code runs on the first
attribute looked up in it. Nothing changes for code that does use them (an expectation with a distribution
test loads scipy then); only when the cost is paid moves. It is never installed in a user's process.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import Sequence
from types import ModuleType

__all__ = ["GX_UNUSED_MODULES", "defer_imports"]

GX_UNUSED_MODULES = ("scipy.stats", "altair")
"""Imported by Great Expectations at module level, used only by expectations and renderers we never run."""


class _DeferringFinder(importlib.abc.MetaPathFinder):
    """Finds ``names`` with the other finders and hands their loaders to a ``LazyLoader``."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = frozenset(names)

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.names:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is None:
                continue
            if spec.loader is None or not hasattr(spec.loader, "exec_module"):
                return spec  # a namespace package or an old-style loader: imported as usual
            spec.loader = importlib.util.LazyLoader(spec.loader)
            return spec
        return None


def defer_imports(names: Sequence[str] = GX_UNUSED_MODULES) -> None:
    """From now on, import each of ``names`` lazily (once per process; already imported ones stay as they are)."""
    if not any(isinstance(f, _DeferringFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _DeferringFinder(names))
