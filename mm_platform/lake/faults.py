"""Named fault-injection points in the publish protocol, for crash tests.

With ``MMP_FAULT_PAUSE_AT=<point>`` a process that reaches the point writes ``MMP_FAULT_READY_FILE`` and
waits there, so a test can kill it with SIGKILL at exactly that step. The environment is read when a point
is reached, never at import time; with the variable unset a point costs one dictionary lookup.
"""

from __future__ import annotations

import os
import time

POINTS = (
    "after_stage",
    "after_audit",
    "after_intent",
    "after_apply",  # reached once per table: after_apply:<table>
    "after_published",
)


def fault_point(name: str) -> None:
    target = os.environ.get("MMP_FAULT_PAUSE_AT")
    if not target or target != name:
        return
    ready = os.environ.get("MMP_FAULT_READY_FILE")
    if ready:
        with open(ready, "w") as marker:
            marker.write(name)
    while True:  # wait for the SIGKILL
        time.sleep(60)
