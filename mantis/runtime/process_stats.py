"""CPU and memory of this process, for a worker's heartbeat metrics.

A worker runs in a process of its own, so the process's figures are the worker's.
``ProcessStats.sample`` reads them from the kernel on each call: CPU time (user +
system, every thread) from ``os.times``, resident memory from ``/proc/self/statm``
(0 where there is no /proc), and the CPU share since the previous sample, so a
heartbeat shows the load now rather than an average since the start.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable

_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def cpu_seconds() -> float:
    """CPU time this process has used so far (user + system, all threads), in seconds."""
    t = os.times()
    return t.user + t.system


def rss_mb() -> float:
    """This process's resident memory in MB (shared pages included), or 0.0 without /proc."""
    try:
        with open("/proc/self/statm") as f:
            resident_pages = int(f.read().split()[1])
    except (OSError, IndexError, ValueError):
        return 0.0
    return resident_pages * _PAGE_BYTES / (1024 * 1024)


class ProcessStats:
    """Samples of this process's CPU and memory; the CPU share is since the previous sample.

    ``sample()`` returns ``{"cpuSeconds", "cpuPercent", "rssMB"}``: CPU time used so far,
    the CPU used since the previous sample (or since construction) as a percentage of
    one core (100 = one core busy, more with several busy threads), and resident memory.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 cpu: Callable[[], float] = cpu_seconds):
        self._clock, self._cpu = clock, cpu
        self._last_at, self._last_cpu = clock(), cpu()

    def sample(self) -> dict:
        """``{"cpuSeconds", "cpuPercent", "rssMB"}`` now (see the class docstring)."""
        now, cpu = self._clock(), self._cpu()
        elapsed = now - self._last_at
        percent = 100.0 * (cpu - self._last_cpu) / elapsed if elapsed > 0 else 0.0
        self._last_at, self._last_cpu = now, cpu
        return {"cpuSeconds": round(cpu, 3), "cpuPercent": round(max(percent, 0.0), 1),
                "rssMB": round(rss_mb(), 1)}
