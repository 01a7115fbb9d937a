"""Great Expectations in a process of its own, so that importing it (seconds) never sits on a batch's path.

The library's import is pure Python: on a thread of the run's process it would take the interpreter from
the batch being staged. A validation process imports it on another core while the run starts and
stages, and each audit sends it the staged rows. If the process cannot be started or dies, validation
runs in this process as before (:func:`~mm_platform.quality.expectations.validate_table`): the result is
the same either way, only its cost moves.

The process is a plain ``python -c`` child talking over a socket pair, not a ``multiprocessing`` spawn:
a spawned child first runs the parent's main module again, and this one needs nothing from it. For ``mmp``
that re-run cost little (its imports are GX's own), but a user's script without a ``__main__`` guard that
calls the Python API would have run its whole body a second time in the child before it validated.
"""

from __future__ import annotations

import atexit
import gc
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping
from contextlib import suppress
from multiprocessing.connection import Connection
from pathlib import Path

import pyarrow as pa

from mm_platform.lake.audit import AuditCheck, AuditContext, CheckResult
from mm_platform.log import get_logger, kv
from mm_platform.quality.deferred_imports import defer_imports
from mm_platform.quality.expectations import SUITES, TableSuite, validate_table, warm_up

__all__ = ["expectation_check", "expectation_checks", "prepare_in_background", "validate"]

log = get_logger("mm_platform.quality.gx_process")

VALIDATION_TIMEOUT_S = 600.0
"""How long one validation may take in the process (its first includes the import) before it is given up
and the validation runs here instead."""


class _ValidationProcess:
    """One child process and its socket; one request at a time."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair()
        with ours, theirs:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _SERVE.format(root=str(_PACKAGE_ROOT), fd=theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
            )
            self.conn = Connection(ours.detach())
        self.lock = threading.Lock()
        self.broken = False
        # Asked to stop, not killed at exit: it then releases what it holds (a killed one leaves e.g. tqdm's
        # semaphore to the resource tracker, which warns at shutdown).
        atexit.register(self.close)

    def close(self) -> None:
        with self.lock:
            if not self.broken:
                with suppress(OSError):
                    self.conn.send(None)
                self.broken = True
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def validate(self, suite: TableSuite, rows: pa.Table) -> CheckResult | None:
        """The process's result, ``None`` if it is gone or too slow (the caller validates itself)."""
        with self.lock:
            if self.broken:
                return None
            try:
                self.conn.send((suite, rows))
                if not self.conn.poll(VALIDATION_TIMEOUT_S):
                    raise TimeoutError(f"no answer in {VALIDATION_TIMEOUT_S:.0f} s")
                answer = self.conn.recv()
            except (OSError, EOFError, TimeoutError) as exc:
                self.broken = True
                self.proc.kill()
                self.proc.wait()
                log.warning("gx process lost, validating in this process %s", kv(error=f"{type(exc).__name__}: {exc}"))
                return None
        if answer[0] == "error":  # what validate_table raised there, it would have raised here
            raise RuntimeError(answer[1])
        result: CheckResult = answer[1]
        return result


def _prepare() -> None:
    """Import and warm Great Expectations, leaving out the modules only unused expectations need."""
    defer_imports()
    warm_up()


_PACKAGE_ROOT = Path(__file__).resolve().parents[2]
"""The folder ``mm_platform`` is imported from, first on the child's path (an uninstalled checkout works)."""

_SERVE = "import sys; sys.path.insert(0, {root!r}); from mm_platform.quality.gx_process import serve_fd; serve_fd({fd})"


def serve_fd(fd: int) -> None:
    """The child's entry point: serve on the socket inherited as file descriptor ``fd``."""
    _serve(Connection(fd))


def _serve(conn: Connection) -> None:
    """The validation process: import and warm Great Expectations, then validate what arrives."""
    _prepare()
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            gc.freeze()  # a clean exit (finalizers run) without a final collection over GX's objects
            return
        suite, rows = job
        try:
            conn.send(("ok", validate_table(suite, rows)))
        except Exception as exc:  # reported to the caller as its check's failure
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


_LOCK = threading.Lock()
_PROCESS: _ValidationProcess | None = None
_STARTED = False


def prepare_in_background() -> None:
    """Start this process's validation process, once (it imports Great Expectations while we go on)."""
    global _PROCESS, _STARTED
    with _LOCK:
        if _STARTED:
            return
        _STARTED = True
        try:
            _PROCESS = _ValidationProcess()
        except OSError as exc:  # e.g. no process can be started here
            log.info("gx validation stays in this process %s", kv(reason=f"{type(exc).__name__}: {exc}"))


def validate(suite: TableSuite, rows: pa.Table) -> CheckResult:
    """``validate_table(suite, rows)``, in the validation process when one was started."""
    process = _PROCESS
    if process is not None and rows.num_rows:
        present = [c for c in suite.columns if c in rows.column_names]
        result = process.validate(suite, rows.select(present))  # only what the suite reads crosses the pipe
        if result is not None:
            return result
    return validate_table(suite, rows)


def expectation_check(suite: TableSuite) -> AuditCheck:
    """An audit check that validates the stage's new rows of ``suite.table``; passes when it has none. Its
    ``prepare`` starts the validation process (see :func:`~mm_platform.lake.audit.prepare_checks`)."""

    def check(context: AuditContext) -> CheckResult:
        if suite.table not in context.staged:
            return CheckResult(name=f"gx_{suite.table}", table=suite.table, passed=True, detail="table not staged")
        return validate(suite, context.staged[suite.table])

    check.__name__ = f"gx_{suite.table}"
    check.__qualname__ = check.__name__
    check.prepare = prepare_in_background  # type: ignore[attr-defined]
    return check


def expectation_checks(suites: Mapping[str, TableSuite] | None = None) -> list[AuditCheck]:
    """One check per table suite (all of :data:`SUITES` by default)."""
    return [expectation_check(suite) for suite in (suites or SUITES).values()]
