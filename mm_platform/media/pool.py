"""A per-file time limit for probing: each probe runs in a worker process, killed and replaced on overrun.

A pathological file must not hang a batch, and a thread stuck inside FFmpeg or libjpeg cannot be
interrupted; ``signal.alarm`` belongs to the caller's main thread (Dagster's, pytest's). So probes run in
worker processes that are killed and replaced when they overrun.
"""

from __future__ import annotations

import atexit
import multiprocessing
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import suppress
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING

from mm_platform.forkserver import configure_forkserver
from mm_platform.handoff import MediaFile
from mm_platform.media.blob import Buffer, open_media
from mm_platform.media.budget import DEFAULT_TIMEOUT_S
from mm_platform.media.probe import Probed, probe
from mm_platform.media.quarantine import MediaRejected, QuarantineReason, classify_exception

if TYPE_CHECKING:
    from multiprocessing.context import BaseContext
    from multiprocessing.process import BaseProcess

__all__ = ["ProbeFn", "ProbePool", "probe_with_limit"]

ProbeFn = Callable[[Buffer, str], Probed]
"""A probe run inside a worker: module-level (picklable), raising ``MediaRejected`` to reject."""


def _worker_main(conn: Connection) -> None:
    """Worker loop: receive (probe_fn, data, name), answer ("ok", Probed) or ("rejected", reason, detail)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it kills us
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        probe_fn, data, name = job
        try:
            # A large object arrives as a path and is mapped here: its bytes never cross the pipe. The
            # answer is sent while the mapping is open (a lazily decoded picture may still read from it).
            with open_media(data) as buffer:
                conn.send(("ok", (probe_fn or probe)(buffer, name)))
        except MediaRejected as exc:
            conn.send(("rejected", exc.reason.value, exc.detail))
        except Exception as exc:  # the worker must survive any probe failure
            reason, detail = classify_exception(exc, None)
            conn.send(("rejected", reason.value, detail))


class _Worker:
    """One probe process and its pipe; replaced wholesale when it hangs or dies."""

    def __init__(self, ctx: BaseContext) -> None:
        self._ctx = ctx
        self.proc: BaseProcess | None = None
        self.conn: Connection | None = None
        self.job: tuple[int, str, float] | None = None  # (index, name, deadline) while busy

    def submit(
        self, index: int, probe_fn: ProbeFn | None, data: bytes | MediaFile, name: str, timeout_s: float
    ) -> None:
        for attempt in (1, 2):
            if self.proc is None or not self.proc.is_alive():
                self._start()
            assert self.conn is not None
            try:
                self.conn.send((probe_fn, data, name))
                break
            except (BrokenPipeError, ConnectionResetError):
                self.kill()  # died while idle (e.g. killed by the OOM killer): one fresh worker, one retry
                if attempt == 2:
                    raise
        # The deadline counts from hand-over (a fresh worker forks from the preloaded server in ms).
        self.job = (index, name, time.monotonic() + timeout_s)

    def _start(self) -> None:
        parent, child = self._ctx.Pipe()
        self.proc = self._ctx.Process(target=_worker_main, args=(child,), daemon=True)  # type: ignore[attr-defined]
        self.proc.start()
        child.close()
        self.conn = parent

    def collect(self) -> Probed | MediaRejected:
        assert self.conn is not None and self.job is not None
        _, name, _ = self.job
        self.job = None
        try:
            answer = self.conn.recv()
        except (EOFError, OSError):
            code = self.kill()
            return MediaRejected(QuarantineReason.UNREADABLE, _death(code), name=name)
        if answer[0] == "ok":
            result: Probed = answer[1]
            return result
        return MediaRejected(answer[1], answer[2], name=name)

    def kill(self) -> int | None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        code = None
        if self.proc is not None:
            self.proc.kill()
            self.proc.join(5)
            code = self.proc.exitcode
            self.proc = None
        self.job = None
        return code

    def close(self) -> None:
        if self.conn is not None and self.job is None:
            with suppress(OSError):  # already gone: nothing to tell it
                self.conn.send(None)
        if self.proc is not None:
            self.proc.join(1)
        self.kill()


def _death(code: int | None) -> str:
    if code is not None and code < 0:
        return f"the probe worker died from signal {signal.Signals(-code).name} while decoding"
    return f"the probe worker exited unexpectedly (exit code {code}) while decoding"


class ProbePool:
    """Probe many files in worker processes, each under a time limit, yielding outcomes in input order.

    At most ``max_in_flight`` files are held (sent to workers or finished and waiting for their turn),
    so a stream of large files keeps memory bounded. A worker that overruns is killed and replaced;
    its file becomes ``MediaRejected("timeout")`` and the rest of the batch carries on.
    """

    def __init__(
        self,
        workers: int = 2,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        *,
        probe_fn: ProbeFn | None = None,
        max_in_flight: int | None = None,
        start_method: str = "forkserver",
        preload: Sequence[str] = (
            "mm_platform.media.probe",
            "mm_platform.media.probe_av",
            "mm_platform.media.probe_document",
        ),
    ) -> None:
        if workers < 1 or timeout_s <= 0:
            raise ValueError("workers must be >= 1 and timeout_s > 0")
        self.timeout_s = timeout_s
        self.probe_fn = probe_fn
        self.max_in_flight = max(max_in_flight or 2 * workers, workers)
        ctx = multiprocessing.get_context(start_method)
        if start_method == "forkserver":
            # Workers fork from a server that already imported Pillow/PyAV/pypdf (and ``probe_fn``'s module):
            # restarts cost ms, not s. The process's first pool starts the server, so its list is the one used.
            configure_forkserver(preload)
        self._workers = [_Worker(ctx) for _ in range(workers)]

    def __enter__(self) -> ProbePool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        for worker in self._workers:
            worker.close()

    def worker_pids(self) -> list[int]:
        """The process ids of the live workers (for resource accounting)."""
        return [w.proc.pid for w in self._workers if w.proc is not None and w.proc.pid is not None]

    def probe(self, data: bytes, name: str = "") -> Probed:
        """Probe one file under the time limit; raises ``MediaRejected`` (``timeout`` included)."""
        [(_, outcome)] = list(self.map([(name, data)]))
        if isinstance(outcome, MediaRejected):
            raise outcome
        return outcome

    def map(self, items: Iterable[tuple[str, bytes | MediaFile]]) -> Iterator[tuple[str, Probed | MediaRejected]]:
        """Yield ``(name, Probed | MediaRejected)`` for each ``(name, data)``, in input order; ``data`` is the
        bytes or, for a large object, a :class:`MediaFile` the worker maps."""
        source = iter(items)
        names: dict[int, str] = {}
        done: dict[int, Probed | MediaRejected] = {}
        submitted = next_out = 0
        exhausted = False
        try:
            while True:
                idle = [w for w in self._workers if w.job is None]
                while idle and not exhausted and submitted - next_out < self.max_in_flight:
                    item = next(source, None)
                    if item is None:
                        exhausted = True
                        break
                    names[submitted] = item[0]
                    idle.pop().submit(submitted, self.probe_fn, item[1], item[0], self.timeout_s)
                    submitted += 1
                if next_out in done:
                    yield names.pop(next_out), done.pop(next_out)
                    next_out += 1
                    continue
                if exhausted and next_out == submitted:
                    return
                self._wait_for_any(done)
        finally:
            for worker in self._workers:
                if worker.job is not None:  # abandoned by an early exit: its answer has no reader
                    worker.kill()

    def _wait_for_any(self, done: dict[int, Probed | MediaRejected]) -> None:
        """Block until a busy worker answers or the earliest deadline passes; kill overrunning workers."""
        busy = [w for w in self._workers if w.job is not None and w.conn is not None]
        soonest = min(w.job[2] for w in busy if w.job is not None)
        ready = set(wait([w.conn for w in busy if w.conn is not None], max(0.0, soonest - time.monotonic())))
        now = time.monotonic()
        for worker in busy:
            assert worker.job is not None
            index, name, deadline = worker.job
            if worker.conn in ready:
                done[index] = worker.collect()
            elif deadline <= now:
                worker.kill()
                done[index] = MediaRejected(
                    QuarantineReason.TIMEOUT,
                    f"probing did not finish within {self.timeout_s:g} s; the worker was killed and replaced",
                    name=name,
                )


_shared_lock = threading.Lock()
_shared_pool: ProbePool | None = None


def probe_with_limit(
    data: bytes, name: str = "", timeout_s: float = DEFAULT_TIMEOUT_S, *, probe_fn: ProbeFn | None = None
) -> Probed:
    """Probe one file in a shared worker process, abandoning it after ``timeout_s`` seconds.

    Raises ``MediaRejected`` with reason ``timeout`` when the limit fires; the worker is replaced, so
    the next call works normally. ``probe_fn`` (a picklable module-level function) defaults to ``probe``.
    """
    global _shared_pool
    with _shared_lock:
        if _shared_pool is None:
            _shared_pool = ProbePool(workers=1)
            atexit.register(_shared_pool.close)
        _shared_pool.timeout_s = timeout_s
        _shared_pool.probe_fn = probe_fn
        return _shared_pool.probe(data, name)
