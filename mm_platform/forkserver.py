"""The process's fork server, from which every worker pool (probe workers, scan workers) forks its workers.

multiprocessing prepares each worker forked from the server by running the parent's main module again
(as ``__mp_main__``), so that objects defined there unpickle. Our workers only run functions from
``mm_platform``; for them that re-run is pure cost, paid by every worker at start and again whenever one
is replaced: the ``mmp`` script imports the CLI (pandas, pyarrow: ~0.4 s of a core), ``dagster``'s
imports Dagster, ``python -m benchmarks.x`` imports the models. So the server imports this module first,
and inside the server it marks the server's own ``__main__`` as the parent's: multiprocessing then sees
the main module as already in place and skips the re-run (``multiprocessing.spawn._fixup_main_from_*``).
The cost of that: a worker cannot run a function defined in the parent's ``__main__`` (``ProbePool``
refuses one with a clear error).
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.process
import os
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from multiprocessing import forkserver

__all__ = ["configure_forkserver", "defined_in_main", "start_forkserver"]

# The parent's main module as multiprocessing would name it to a worker: "name:<module>" or "path:<file>".
PARENT_MAIN_ENV = "MMP_FORKSERVER_PARENT_MAIN"


def _parent_main() -> str:
    """How multiprocessing will tell each worker to re-create this process's main module (as
    ``multiprocessing.spawn.get_preparation_data`` decides it); empty when it will not."""
    main = sys.modules.get("__main__")
    name = getattr(getattr(main, "__spec__", None), "name", None)
    if name is not None:
        return f"name:{name}"
    path = getattr(main, "__file__", None)
    if path is None:
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


def defined_in_main(fn: object) -> bool:
    """Whether ``fn`` lives in the main module, which the workers do not re-create."""
    return getattr(fn, "__module__", None) in ("__main__", "__mp_main__")


def _inside_forkserver() -> bool:
    """True while the fork server imports its preload list (``multiprocessing.forkserver.main`` is on the
    stack); a process that merely inherited the environment variable must not touch its own main module."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code is forkserver.main.__code__:
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


def _stand_in_for_parent_main() -> None:
    kind, _, value = os.environ.get(PARENT_MAIN_ENV, "").partition(":")
    main = sys.modules["__main__"]  # the server's own, from ``python -c``: nothing of it is needed
    if kind == "name":
        main.__spec__ = ModuleSpec(value, None)
    elif kind == "path":
        main.__file__ = value


if _inside_forkserver():
    _stand_in_for_parent_main()
