"""One probe worker: the process's loop, and the pool's handle on it (its queue of files, its deadline).

The worker reads the files it is sent on a thread of its own while it probes, so the pool can queue the
next file in it (``QUEUED_PER_WORKER``) without either side blocking on a full pipe. Workers run at a lower
scheduling priority than their caller (``PROBE_NICENESS``); a worker that is only waiting for a CPU on a busy
host is given more time rather than killed (``waiting_for_cpu``).
"""

from __future__ import annotations

import os
import queue
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mm_platform.handoff import MediaFile
from mm_platform.media.blob import Buffer, open_media
from mm_platform.media.probe import Probed, probe
from mm_platform.media.quarantine import MediaRejected, QuarantineReason, classify_exception

if TYPE_CHECKING:
    from multiprocessing.context import BaseContext
    from multiprocessing.process import BaseProcess

__all__ = ["PROBE_NICENESS", "QUEUED_PER_WORKER", "STARVED_LIMIT", "ProbeFn", "Job", "Worker", "waiting_for_cpu"]

ProbeFn = Callable[[Buffer, str], Probed]
"""A probe run inside a worker: module-level (picklable), raising ``MediaRejected`` to reject."""


QUEUED_PER_WORKER = 2
"""Files handed to a worker at once: the next one waits inside the worker while it decodes the current one,
so it goes straight on instead of idling until the caller, busy between answers, sends it more."""

PROBE_NICENESS = 10
"""How much lower the workers' scheduling priority is than their caller's. The model's threads meet at every
operator, so a decode that preempts one of them stalls the other; the workers decode ahead of the model in a
bounded window, so they lose nothing by taking the gaps instead. Alternated in one process, a 96-JPEG batch took
0.90–0.93 s instead of 0.92–0.96 s; ``benchmarks.incremental``'s 1,000-object run 8.47 s instead of 8.98 s."""

STARVED_LIMIT = 4.0
"""A worker still runnable at its deadline that had under half of that time on a CPU is waiting for a busy
host, not stuck on its file: it is given more time, up to this many times the limit, before it is killed."""

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _worker_main(conn: Connection) -> None:
    """Worker loop: take jobs (probe_fn, data, name) in order, answer ("ok", Probed, cpu) or ("rejected", reason,
    detail, cpu) for each; ``cpu`` is the process's CPU seconds so far, from which the pool counts the next job's."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it kills us
    with suppress(OSError):  # lowering one's own priority is always allowed; a platform without it keeps going
        os.nice(PROBE_NICENESS)
    jobs: queue.SimpleQueue[tuple[ProbeFn | None, bytes | MediaFile, str] | None] = queue.SimpleQueue()
    threading.Thread(target=_receive_jobs, args=(conn, jobs), daemon=True).start()
    while True:
        job = jobs.get()
        if job is None:
            return
        probe_fn, data, name = job
        try:
            # A large object arrives as a path and is mapped here: its bytes never cross the pipe. The
            # answer is sent while the mapping is open (a lazily decoded picture may still read from it).
            with open_media(data) as buffer:
                result = (probe_fn or probe)(buffer, name)
                conn.send(("ok", result, time.process_time()))
        except MediaRejected as exc:
            conn.send(("rejected", exc.reason.value, exc.detail, time.process_time()))
        except Exception as exc:  # the worker must survive any probe failure
            reason, detail = classify_exception(exc, None)
            conn.send(("rejected", reason.value, detail, time.process_time()))


def _receive_jobs(conn: Connection, jobs: queue.SimpleQueue[Any]) -> None:
    """Read jobs as they arrive, beside the probing: the parent's send of a queued job then never waits for
    the current probe, so parent and worker cannot both block writing to each other."""
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            job = None
        jobs.put(job)
        if job is None:
            return


@dataclass(frozen=True)
class Job:
    index: int
    name: str
    data: bytes | MediaFile


class Worker:
    """One probe process and its pipe; replaced wholesale when it hangs or dies."""

    def __init__(self, ctx: BaseContext) -> None:
        self._ctx = ctx
        self.proc: BaseProcess | None = None
        self.conn: Connection | None = None
        self.jobs: deque[Job] = deque()
        """Handed over and not answered yet, in order: the first is the one being probed."""
        self.deadline = 0.0
        """When the first job overruns: counted from when the worker could start it."""
        self._started = 0.0
        self._cpu_at_start = 0.0
        """The process's CPU seconds when its first job started: as its last answer said (a fresh process: 0)."""
        self.broken = False
        """A send failed while jobs were queued: the worker is dead, and its first job's answer says how."""

    def can_take(self) -> bool:
        return not self.broken and len(self.jobs) < QUEUED_PER_WORKER

    def submit(self, job: Job, probe_fn: ProbeFn | None, timeout_s: float) -> bool:
        """Hand ``job`` over; False (the job is not taken) if the worker died with jobs still queued."""
        for attempt in (1, 2):
            if self.proc is None or not self.proc.is_alive():
                if self.jobs:
                    self.broken = True
                    return False
                self.start()
            assert self.conn is not None
            try:
                self.conn.send((probe_fn, job.data, job.name))
                break
            except (BrokenPipeError, ConnectionResetError):
                if self.jobs:  # it died working: collecting its first job tells how
                    self.broken = True
                    return False
                self.kill()  # died while idle (e.g. killed by the OOM killer): one fresh worker, one retry
                if attempt == 2:
                    raise
        if not self.jobs:
            # The deadline counts from hand-over (a fresh worker forks from the preloaded server in ms).
            self._start_clock(timeout_s)
        self.jobs.append(job)
        return True

    def start(self) -> None:
        """Start a fresh worker process (any earlier one must be gone)."""
        parent, child = self._ctx.Pipe()
        self.proc = self._ctx.Process(target=_worker_main, args=(child,), daemon=True)  # type: ignore[attr-defined]
        self.proc.start()
        child.close()
        self.conn = parent
        self._cpu_at_start = 0.0  # a forked process's CPU times start at zero

    def collect(self, timeout_s: float) -> tuple[Job, Probed | MediaRejected]:
        """The first job's answer; a worker that died on it is killed (its queued jobs stay in ``jobs``)."""
        assert self.conn is not None and self.jobs
        job = self.jobs.popleft()
        try:
            answer = self.conn.recv()
        except (EOFError, OSError):
            code = self.kill()
            return job, MediaRejected(QuarantineReason.UNREADABLE, _death(code), name=job.name)
        self._cpu_at_start = answer[-1]
        self._start_clock(timeout_s)  # the next queued job starts now
        if answer[0] == "ok":
            result: Probed = answer[1]
            return job, result
        return job, MediaRejected(answer[1], answer[2], name=job.name)

    def _start_clock(self, timeout_s: float) -> None:
        self._started = time.monotonic()
        self.deadline = self._started + timeout_s

    def overran(self, now: float, timeout_s: float) -> bool:
        """Past its deadline and to be killed; a worker that is only waiting for a CPU gets more time instead."""
        if now < self.deadline:
            return False
        cpu, state = self._cpu_and_state()  # read only here: a /proc read per file would cost the batch ms
        if cpu is None:
            return True
        if waiting_for_cpu(cpu - self._cpu_at_start, now - self._started, state, timeout_s):
            self.deadline = now + timeout_s / STARVED_LIMIT
            return False
        return True

    def _cpu_and_state(self) -> tuple[float | None, str]:
        """CPU seconds the process has used and its scheduler state (``R``: running or runnable), from /proc;
        (None, "") where that cannot be read."""
        pid = self.proc.pid if self.proc is not None else None
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS, fields[0]
        except (OSError, IndexError, ValueError):
            return None, ""

    def kill(self) -> int | None:
        """Stop the process; the jobs it had not answered stay in ``jobs`` for the caller to hand on."""
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        code = None
        if self.proc is not None:
            self.proc.kill()
            self.proc.join(5)
            code = self.proc.exitcode
            self.proc = None
        self.broken = False
        return code

    def close(self) -> None:
        if self.conn is not None and not self.jobs:
            with suppress(OSError):  # already gone: nothing to tell it
                self.conn.send(None)
        if self.proc is not None:
            self.proc.join(1)
        self.kill()
        self.jobs.clear()


def waiting_for_cpu(cpu_s: float, wall_s: float, state: str, timeout_s: float) -> bool:
    """At its deadline, is a worker waiting for a busy host's CPU rather than stuck? Runnable, with under half of
    ``wall_s`` spent on a CPU, and not yet ``STARVED_LIMIT`` times the limit. A hang (asleep, or spinning with
    the CPU to itself) is neither."""
    return state == "R" and cpu_s < wall_s / 2 and wall_s < STARVED_LIMIT * timeout_s


def _death(code: int | None) -> str:
    if code is not None and code < 0:
        return f"the probe worker died from signal {signal.Signals(-code).name} while decoding"
    return f"the probe worker exited unexpectedly (exit code {code}) while decoding"
