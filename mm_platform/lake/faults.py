"""Named fault-injection points in the publish protocol, for crash tests.

With ``MMP_FAULT_PAUSE_AT=<point>`` a process that reaches the point writes ``MMP_FAULT_READY_FILE`` and
waits there, so a test can kill it with SIGKILL at exactly that step. With ``MMP_FAULT_BARRIER_DIR`` (and
``MMP_FAULT_BARRIER_N``, default 2) the point is a barrier instead: each process waits there until N have
arrived, so a test can line concurrent runs up at exactly that step. The environment is read when a point
is reached, never at import time; with the variable unset a point costs one dictionary lookup.
"""

from __future__ import annotations

import os
import time

POINTS = (
    "after_stage",
    "after_ticket",
    "after_audit",
    "after_intent",
    "after_apply",  # reached once per table: after_apply:<table>
    "after_published",
)


def fault_point(name: str) -> None:
    target = os.environ.get("MMP_FAULT_PAUSE_AT")
    if not target or target != name:
        return
    barrier = os.environ.get("MMP_FAULT_BARRIER_DIR")
    if barrier:
        _wait_at_barrier(barrier, int(os.environ.get("MMP_FAULT_BARRIER_N", "2")))
        return
    ready = os.environ.get("MMP_FAULT_READY_FILE")
    if ready:
        with open(ready, "w") as marker:
            marker.write(name)
    while True:  # wait for the SIGKILL
        time.sleep(60)


def _wait_at_barrier(folder: str, parties: int, timeout_s: float = 120.0) -> None:
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, f"{os.getpid()}-{time.monotonic_ns()}"), "w"):
        pass
    deadline = time.monotonic() + timeout_s
    while len(os.listdir(folder)) < parties and time.monotonic() < deadline:
        time.sleep(0.05)
