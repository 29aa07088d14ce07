"""How much of the CPU other processes use: a shared machine slows a training down.

:func:`others_busy` samples /proc/stat's busy time over a quarter second, less
this process's own CPU time (a training running in this process is not
"other work"); :func:`load_factor` turns that into how much slower a training
that keeps every core busy runs than it did under other conditions.
:mod:`core.estimate` records it with a calibration and scales estimates by it.
Linux only; elsewhere other work reads as none.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def cpu_times() -> tuple[float, float, float]:
    """(wall clock, seconds of CPU busy on all cores, this process's CPU seconds) now; busy is 0 without /proc."""
    busy = 0.0
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
        busy = (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        pass
    return time.perf_counter(), busy, time.process_time()


def others_between(before: tuple[float, float, float], after: tuple[float, float, float]) -> float:
    """Cores other processes kept busy between two :func:`cpu_times`."""
    wall = after[0] - before[0]
    if wall <= 0 or not after[1]:
        return 0.0
    return max(0.0, ((after[1] - before[1]) - (after[2] - before[2])) / wall)


_sample: dict[str, float] = {}
_SAMPLE_SECONDS, _SAMPLE_TTL = 0.25, 5.0


def others_busy() -> float:
    """Cores other processes keep busy now (a 0.25 s sample, reused for 5 s): they slow a training down."""
    now = time.monotonic()
    if now - _sample.get("at", -1e9) > _SAMPLE_TTL:
        before = cpu_times()
        time.sleep(_SAMPLE_SECONDS)
        _sample.update(at=now, cores=others_between(before, cpu_times()))
    return _sample["cores"]


def load_factor(others_now: float, others_then: float, cores: int | None = None) -> float:
    """How much slower a training that wants every core runs now than it did when calibrated.

    With ``x`` cores busy elsewhere, a training that keeps all ``n`` cores busy gets about
    ``n / (n + x)`` of them, so its time scales with ``(n + x)``.
    """
    n = cores or os.cpu_count() or 1
    return (n + max(0.0, others_now)) / (n + max(0.0, others_then))
