"""What this machine (or container) lets the process use, so parallelism follows the hardware, not a constant."""

from __future__ import annotations

import math
import os
from pathlib import Path

__all__ = ["default_probe_workers", "usable_cpus"]


def usable_cpus() -> int:
    """CPUs this process may run on: its affinity mask, capped by a cgroup v2 CPU quota (containers)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cpus = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):  # no cgroup v2 limit to read
        pass
    return max(1, cpus)


def default_probe_workers() -> int:
    """One decode worker per usable core: decoding is most of an image's cost (a 20 MP JPEG takes longer to
    decode, even at 1/8 scale, than the model takes on its 224 px input), and the model's one thread in
    the main process mostly waits for decoded pictures, so it overlaps the workers instead of needing a core."""
    return usable_cpus()
