"""A per-file time limit for probing: each probe runs in a worker process, killed and replaced on overrun.

A pathological file must not hang a batch, and a thread stuck inside FFmpeg or libjpeg cannot be
interrupted; ``signal.alarm`` belongs to the caller's main thread (Dagster's, pytest's). So probes run in
worker processes that are killed and replaced when they overrun. Each worker holds the next file while it
probes the current one (:mod:`~mm_platform.media.pool_worker`): when one is killed, only the file it was on
is quarantined; the one waiting in it goes to the next free worker.
"""

from __future__ import annotations

import atexit
import multiprocessing
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from multiprocessing.connection import wait

from mm_platform.forkserver import configure_forkserver
from mm_platform.handoff import MediaFile
from mm_platform.media.budget import DEFAULT_TIMEOUT_S
from mm_platform.media.pool_worker import QUEUED_PER_WORKER, Job, ProbeFn, Worker
from mm_platform.media.probe import Probed
from mm_platform.media.quarantine import MediaRejected, QuarantineReason

__all__ = ["QUEUED_PER_WORKER", "ProbeFn", "ProbePool", "probe_with_limit"]


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
        self._workers = [Worker(ctx) for _ in range(workers)]

    def __enter__(self) -> ProbePool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        for worker in self._workers:
            worker.close()

    def start(self) -> None:
        """Start the workers now rather than on their first file: they boot while the caller prepares it."""
        for worker in self._workers:
            if worker.proc is None or not worker.proc.is_alive():
                worker.kill()
                worker.start()

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
        handed_back: deque[Job] = deque()  # queued in a worker that was killed: not started, they go first
        names: dict[int, str] = {}
        done: dict[int, Probed | MediaRejected] = {}
        submitted = next_out = 0
        exhausted = False
        try:
            while True:
                while worker := self._least_busy():
                    if handed_back:
                        job = handed_back.popleft()
                    elif exhausted or submitted - next_out >= self.max_in_flight:
                        break
                    elif (item := next(source, None)) is None:
                        exhausted = True
                        break
                    else:
                        job = Job(submitted, item[0], item[1])
                        names[submitted] = item[0]
                        submitted += 1
                    if not worker.submit(job, self.probe_fn, self.timeout_s):
                        handed_back.appendleft(job)
                if next_out in done:
                    yield names.pop(next_out), done.pop(next_out)
                    next_out += 1
                    continue
                if exhausted and next_out == submitted:
                    return
                self._wait_for_any(done, handed_back)
        finally:
            for worker in self._workers:
                if worker.jobs:  # abandoned by an early exit: its answers have no reader
                    worker.kill()
                    worker.jobs.clear()

    def _least_busy(self) -> Worker | None:
        """A worker that can take a file: every worker gets one before any gets a second one waiting."""
        return min((w for w in self._workers if w.can_take()), key=lambda w: len(w.jobs), default=None)

    def _wait_for_any(self, done: dict[int, Probed | MediaRejected], handed_back: deque[Job]) -> None:
        """Block until a busy worker answers or the earliest deadline passes; kill overrunning workers. The
        jobs a killed worker had queued, not started, are handed back to go to the next free worker."""
        busy = [w for w in self._workers if w.jobs and w.conn is not None]
        soonest = min(w.deadline for w in busy)
        ready = set(wait([w.conn for w in busy if w.conn is not None], max(0.0, soonest - time.monotonic())))
        now = time.monotonic()
        for worker in busy:
            if worker.conn in ready:
                job, outcome = worker.collect(self.timeout_s)
                done[job.index] = outcome
            elif worker.overran(now, self.timeout_s):
                worker.kill()
                job = worker.jobs.popleft()
                done[job.index] = MediaRejected(
                    QuarantineReason.TIMEOUT,
                    f"probing did not finish within {self.timeout_s:g} s; the worker was killed and replaced",
                    name=job.name,
                )
            if worker.conn is None and worker.jobs:
                handed_back.extendleft(reversed(worker.jobs))
                worker.jobs.clear()


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
