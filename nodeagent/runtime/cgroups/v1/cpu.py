"""v1 ``cpu`` controller: CFS quota and throttling counters.

Files: ``cpu.cfs_period_us``, ``cpu.cfs_quota_us`` (-1 = unlimited), and
``cpu.stat`` (``nr_periods``, ``nr_throttled``, ``throttled_time`` in ns).
"""

from __future__ import annotations

import os

from .. import _fs
from .._base import CPU_PERIOD_US, cpu_quota_us


def apply(directory: str, cpus: float | None) -> None:
    """Set the quota for ``cpus`` CPUs, or remove it (None)."""
    quota = -1 if cpus is None else cpu_quota_us(cpus)
    if cpus is None and not os.path.exists(os.path.join(directory, "cpu.cfs_quota_us")):
        return
    # The period first: the kernel checks quota against the current period.
    _fs.write(os.path.join(directory, "cpu.cfs_period_us"), str(CPU_PERIOD_US))
    _fs.write(os.path.join(directory, "cpu.cfs_quota_us"), str(quota))


def throttling(directory: str) -> tuple[int, int, int]:
    """(nr_periods, nr_throttled, throttled_ns) from ``cpu.stat``."""
    stat = _fs.read_keyed(os.path.join(directory, "cpu.stat"))
    return stat.get("nr_periods", 0), stat.get("nr_throttled", 0), stat.get("throttled_time", 0)
