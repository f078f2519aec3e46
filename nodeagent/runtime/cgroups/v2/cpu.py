"""v2 ``cpu`` controller: ``cpu.max`` ("<quota> <period>" or "max <period>") and ``cpu.stat``.

``cpu.stat`` is always present (``usage_usec`` is core accounting); the
throttling fields appear only when the cpu controller is enabled.
"""

from __future__ import annotations

import os

from .. import _fs
from .._base import CPU_PERIOD_US, cpu_quota_us


def max_value(cpus: float | None) -> str:
    """The ``cpu.max`` line for ``cpus`` CPUs (None = no quota)."""
    quota = "max" if cpus is None else str(cpu_quota_us(cpus))
    return f"{quota} {CPU_PERIOD_US}"


def apply(directory: str, cpus: float | None) -> None:
    path = os.path.join(directory, "cpu.max")
    if cpus is None and not os.path.exists(path):
        return
    _fs.write(path, max_value(cpus))


def stats(directory: str) -> tuple[int, int, int, int]:
    """(usage_ns, nr_periods, nr_throttled, throttled_ns); the kernel reports usec."""
    stat = _fs.read_keyed(os.path.join(directory, "cpu.stat"))
    return (
        stat.get("usage_usec", 0) * 1000,
        stat.get("nr_periods", 0),
        stat.get("nr_throttled", 0),
        stat.get("throttled_usec", 0) * 1000,
    )
