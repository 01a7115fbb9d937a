"""Probe workers run below their caller's priority, and the time limit tells a starved worker from a stuck one."""

from __future__ import annotations

import multiprocessing
import os
import time
from typing import Any

import pytest

from mm_platform.media import ContentType, MediaRejected, Probed, ProbePool, QuarantineReason
from mm_platform.media.pool_worker import PROBE_NICENESS, STARVED_LIMIT, waiting_for_cpu

_NOTHING = ContentType("application/octet-stream", "document", "unknown")


def own_niceness(data: bytes, name: str) -> Probed:
    return Probed(_NOTHING, {"nice": os.nice(0)})


def spin_forever(data: bytes, name: str) -> Probed:
    while True:
        pass


def spin_on_cpu_zero(data: bytes, name: str) -> Probed:
    """Needs 20 ms of CPU, on CPU 0 at the lowest priority: behind a hog there it waits, runnable, for a CPU."""
    os.sched_setaffinity(0, {0})
    os.nice(19)
    start = time.process_time()
    while time.process_time() - start < 0.02:
        pass
    return Probed(_NOTHING, {})


def _hog_cpu_zero(running: Any) -> None:
    os.sched_setaffinity(0, {0})
    running.set()
    while True:
        pass


def test_workers_run_below_the_caller_priority() -> None:
    with ProbePool(workers=1, timeout_s=20, probe_fn=own_niceness) as pool:
        answer = pool.probe(b"x", "a.bin")
    assert answer.fields["nice"] == min(19, os.nice(0) + PROBE_NICENESS)


def test_waiting_for_cpu_is_runnable_with_little_cpu_and_bounded() -> None:
    assert waiting_for_cpu(cpu_s=0.1, wall_s=1.0, state="R", timeout_s=1.0)
    assert not waiting_for_cpu(cpu_s=0.9, wall_s=1.0, state="R", timeout_s=1.0)  # spinning with a CPU: stuck
    assert not waiting_for_cpu(cpu_s=0.0, wall_s=1.0, state="S", timeout_s=1.0)  # asleep: a hang
    assert not waiting_for_cpu(cpu_s=0.0, wall_s=1.0, state="D", timeout_s=1.0)
    assert not waiting_for_cpu(cpu_s=0.1, wall_s=STARVED_LIMIT, state="R", timeout_s=1.0)  # enough waiting


def test_a_spinning_probe_is_killed_within_the_bounded_extension() -> None:
    started = time.monotonic()
    with ProbePool(workers=1, timeout_s=1.0, probe_fn=spin_forever) as pool:
        [(_, outcome)] = list(pool.map([("spin.bin", b"x")]))
    assert isinstance(outcome, MediaRejected) and outcome.reason is QuarantineReason.TIMEOUT
    assert time.monotonic() - started < STARVED_LIMIT * 1.0 + 3


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or 0 not in os.sched_getaffinity(0), reason="no CPU 0")
def test_a_worker_starved_by_a_busy_host_is_given_more_time_not_killed() -> None:
    ctx = multiprocessing.get_context("spawn")
    running = ctx.Event()
    hog = ctx.Process(target=_hog_cpu_zero, args=(running,), daemon=True)
    hog.start()
    try:
        assert running.wait(60)
        started = time.monotonic()
        with ProbePool(workers=1, timeout_s=1.0, probe_fn=spin_on_cpu_zero) as pool:
            [(_, outcome)] = list(pool.map([("starved.bin", b"x")]))
        waited = time.monotonic() - started
    finally:
        hog.kill()
        hog.join()
    assert not isinstance(outcome, MediaRejected), outcome
    # The file outlived its limit (20 ms of CPU at ~1 % of one: ~1.8 s here): the extension, not luck, let it finish.
    assert waited > 1.0, waited
