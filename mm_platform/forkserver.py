"""The process's fork server, from which every worker pool (probe workers, scan workers) forks its workers.

multiprocessing prepares each worker forked from the server by running the parent's main module again
(as ``__mp_main__``), so that objects defined there unpickle. Our workers only run functions from
``mm_platform``; for them that re-run is pure cost, paid by every worker at start and again whenever one
is replaced: the ``mmp`` script imports the CLI (pandas, pyarrow: ~0.4 s of a core), ``dagster``'s
imports Dagster, ``python -m benchmarks.x`` imports the models. So the server imports this module first,
and inside the server it puts a stand-in for the parent's main module in place: multiprocessing sees the
main module as already there and skips the re-run (``multiprocessing.spawn._fixup_main_from_*``). The
stand-in runs the real main module the first time a worker looks up a name in it (a pool of the user's
own, on the same server, with a function defined in the script): the re-run happens only in the workers
that need it, and nothing that worked before breaks.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.process
import os
import runpy
import sys
import types
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from multiprocessing import forkserver

__all__ = ["configure_forkserver", "start_forkserver"]

# The parent's main module as multiprocessing would name it to a worker: "name:<module>" or "path:<file>".
PARENT_MAIN_ENV = "MMP_FORKSERVER_PARENT_MAIN"


def _parent_main() -> str:
    """How multiprocessing will tell each worker to re-create this process's main module (as
    ``multiprocessing.spawn.get_preparation_data`` decides it); empty when it will not."""
    main = sys.modules.get("__main__")
    name = getattr(getattr(main, "__spec__", None), "name", None)
    if name is not None:
        # A package's __main__ is never run again by multiprocessing (it would run the program): nor by us.
        return "" if name == "__main__" or name.endswith(".__main__") else f"name:{name}"
    path = getattr(main, "__file__", None)
    if path is None or os.path.splitext(os.path.basename(path))[0] == "ipython":  # skipped by spawn too
        return ""
    original_dir = getattr(multiprocessing.process, "ORIGINAL_DIR", None)  # where spawn resolves it from
    if not os.path.isabs(path) and original_dir is not None:
        path = os.path.join(original_dir, path)
    return f"path:{os.path.normpath(path)}"


def configure_forkserver(preload: Sequence[str]) -> None:
    """Set what the fork server imports when it starts (on the first worker, if not started already).

    Whichever list is set when the server starts is the one it uses; the server then outlives the pools.
    """
    os.environ[PARENT_MAIN_ENV] = _parent_main()
    multiprocessing.set_forkserver_preload([__name__, *(m for m in preload if m != __name__)])


def start_forkserver(preload: Sequence[str]) -> None:
    """Start the fork server now, importing ``preload``: the imports run in the server, on another core,
    while the caller goes on (a pool's first worker would otherwise wait for them)."""
    configure_forkserver(preload)
    forkserver.ensure_running()


def _inside_forkserver() -> bool:
    """True while the fork server imports its preload list (``multiprocessing.forkserver.main`` is on the
    stack); a process that merely inherited the environment variable must not touch its own main module."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code is forkserver.main.__code__:
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


class _ParentMain(types.ModuleType):
    """Stands in for the parent's main module in a worker; runs it, as multiprocessing would have, on the
    first lookup of a name that is not there (dunder probes by libraries do not count)."""

    def __init__(self, kind: str, value: str) -> None:
        super().__init__("__mp_main__")
        self._mmp_parent_main = (kind, value)
        if kind == "name":
            self.__spec__ = ModuleSpec(value, None)
        else:
            self.__file__ = value

    def __getattr__(self, name: str) -> object:
        if name.startswith("__") and name.endswith("__") or "_mmp_parent_main" not in self.__dict__:
            raise AttributeError(name)
        kind, value = self.__dict__.pop("_mmp_parent_main")
        if kind == "name":
            content = runpy.run_module(value, run_name="__mp_main__", alter_sys=True)
        else:
            content = runpy.run_path(value, run_name="__mp_main__")
        self.__dict__.update({k: v for k, v in content.items() if k not in ("__spec__", "__file__", "__name__")})
        try:
            return self.__dict__[name]
        except KeyError:
            raise AttributeError(f"module '__main__' has no attribute {name!r}") from None


def _stand_in_for_parent_main() -> None:
    kind, _, value = os.environ.get(PARENT_MAIN_ENV, "").partition(":")
    if kind in ("name", "path") and value:
        sys.modules["__main__"] = sys.modules["__mp_main__"] = _ParentMain(kind, value)


if _inside_forkserver():
    _stand_in_for_parent_main()
