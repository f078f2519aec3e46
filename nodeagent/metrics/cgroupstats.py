"""A container's figures from its cgroup, for a scrape: cgroup v1 and v2 alike.

The runtime's cgroup drivers (``nodeagent.runtime.cgroups``) read what they
need to enforce and report limits; a scrape needs more (user and system CPU,
``memory.stat``, the failure counter) and reads it for every running
container, so these readers are their own: raw ``os.read`` of each file
(no text wrapper), each file read once, and nothing that does not change
during a container's life (its limits) read more than once per start
(:class:`SpecCache`).

:func:`reader_for` takes the driver :func:`~nodeagent.runtime.cgroups.detect`
chose, so the hierarchy is the one the runtime uses; both readers take their
roots as parameters, so tests point them at a temp-dir cgroupfs.

Invariants:
- a missing file (a controller not mounted, a group gone between the list
  and the read) reads as absent, never as an error: a scrape shows what it
  can;
- quantities: seconds for CPU, bytes for memory, as cAdvisor reports them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["CgroupReader", "Limits", "SpecCache", "Usage", "V1Reader", "V2Reader", "read_file",
           "reader_for"]

# v1 reports "no limit" as a page-rounded 2**63 - 1; anything this large is none.
_UNLIMITED = 1 << 62
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def read_file(path: str) -> bytes | None:
    """The file's bytes; None if it cannot be read (gone, or not there)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return os.read(fd, 65536)
    except OSError:
        return None
    finally:
        os.close(fd)


def _int(data: bytes | None) -> int | None:
    if data is None:
        return None
    try:
        return int(data)
    except ValueError:  # "max", or empty
        return None


def _keyed(data: bytes | None) -> dict[bytes, int]:
    """A flat keyed file (``key value`` lines); lines that do not fit are skipped."""
    out: dict[bytes, int] = {}
    for line in (data or b"").splitlines():
        key, _, value = line.partition(b" ")
        try:
            out[key] = int(value)
        except ValueError:
            continue
    return out


@dataclass
class Usage:
    """What changes: counters and current figures. None: not available here."""

    cpu_seconds: float | None = None
    cpu_user_seconds: float | None = None
    cpu_system_seconds: float | None = None
    cfs_periods: int | None = None
    cfs_throttled_periods: int | None = None
    cfs_throttled_seconds: float | None = None
    memory_usage: int | None = None
    memory_working_set: int | None = None
    memory_rss: int | None = None
    memory_cache: int | None = None
    memory_failcnt: int | None = None
    oom_events: int | None = None


@dataclass(frozen=True)
class Limits:
    """What a container keeps from start to exit. None: no limit."""

    memory_bytes: int | None = None
    cpu_quota_us: int | None = None
    cpu_period_us: int | None = None

    @property
    def cpus(self) -> float | None:
        if self.cpu_quota_us is None or not self.cpu_period_us:
            return None
        return self.cpu_quota_us / self.cpu_period_us


class CgroupReader(Protocol):
    version: int

    def usage(self, group: str) -> Usage | None:
        """The group's figures; None if the group does not exist."""
        ...

    def limits(self, group: str) -> Limits: ...


def _working_set(usage: int | None, inactive_file: int | None) -> int | None:
    """usage - inactive_file, never below 0 (as `docker stats` and cAdvisor)."""
    if usage is None:
        return None
    return max(0, usage - (inactive_file or 0))


class V1Reader:
    """cgroup v1: ``hierarchies`` maps a controller to its mount (``V1Driver.hierarchies``)."""

    version = 1

    def __init__(self, hierarchies: dict[str, str]) -> None:
        self.cpu = hierarchies.get("cpu")
        self.cpuacct = hierarchies.get("cpuacct")
        self.memory = hierarchies.get("memory")

    def usage(self, group: str) -> Usage | None:
        u = Usage()
        found = False
        if self.cpuacct is not None:
            base = os.path.join(self.cpuacct, group)
            total = _int(read_file(base + "/cpuacct.usage"))
            if total is not None:
                found = True
                u.cpu_seconds = total / 1e9
                ticks = _keyed(read_file(base + "/cpuacct.stat"))
                if b"user" in ticks:
                    u.cpu_user_seconds = ticks[b"user"] / _CLK_TCK
                if b"system" in ticks:
                    u.cpu_system_seconds = ticks[b"system"] / _CLK_TCK
        if self.cpu is not None:
            cpu_stat = read_file(os.path.join(self.cpu, group, "cpu.stat"))
            if cpu_stat is not None:
                found = True
                _throttling(u, _keyed(cpu_stat), b"throttled_time", 1e9)
        if self.memory is not None:
            base = os.path.join(self.memory, group)
            usage = _int(read_file(base + "/memory.usage_in_bytes"))
            if usage is not None:
                found = True
                stat = _keyed(read_file(base + "/memory.stat"))
                u.memory_usage = usage
                u.memory_working_set = _working_set(usage, stat.get(b"total_inactive_file"))
                u.memory_rss = stat.get(b"total_rss")
                u.memory_cache = stat.get(b"total_cache")
                u.memory_failcnt = _int(read_file(base + "/memory.failcnt"))
                # oom_kill: kernels >= 4.13
                u.oom_events = _keyed(read_file(base + "/memory.oom_control")).get(b"oom_kill")
        return u if found else None

    def limits(self, group: str) -> Limits:
        memory = quota = period = None
        if self.memory is not None:
            memory = _int(read_file(os.path.join(self.memory, group, "memory.limit_in_bytes")))
        if self.cpu is not None:
            quota = _int(read_file(os.path.join(self.cpu, group, "cpu.cfs_quota_us")))
            period = _int(read_file(os.path.join(self.cpu, group, "cpu.cfs_period_us")))
        return Limits(memory_bytes=_limit(memory), cpu_quota_us=quota if quota and quota > 0 else None,
                      cpu_period_us=period)


class V2Reader:
    """cgroup v2: one unified hierarchy at ``root`` (``V2Driver.root``)."""

    version = 2

    def __init__(self, root: str) -> None:
        self.root = root

    def usage(self, group: str) -> Usage | None:
        base = os.path.join(self.root, group)
        cpu = read_file(base + "/cpu.stat")
        if cpu is None:  # core accounting: present in every v2 group
            return None
        stat = _keyed(cpu)
        u = Usage()
        if b"usage_usec" in stat:
            u.cpu_seconds = stat[b"usage_usec"] / 1e6
        if b"user_usec" in stat:
            u.cpu_user_seconds = stat[b"user_usec"] / 1e6
        if b"system_usec" in stat:
            u.cpu_system_seconds = stat[b"system_usec"] / 1e6
        _throttling(u, stat, b"throttled_usec", 1e6)
        usage = _int(read_file(base + "/memory.current"))
        if usage is not None:
            mem = _keyed(read_file(base + "/memory.stat"))
            events = _keyed(read_file(base + "/memory.events"))
            u.memory_usage = usage
            u.memory_working_set = _working_set(usage, mem.get(b"inactive_file"))
            u.memory_rss = mem.get(b"anon")
            u.memory_cache = mem.get(b"file")
            # v2 has no failcnt: "max" counts the times usage hit the limit (runc maps it so).
            u.memory_failcnt = events.get(b"max")
            u.oom_events = events.get(b"oom_kill")
        return u

    def limits(self, group: str) -> Limits:
        base = os.path.join(self.root, group)
        memory = _int(read_file(base + "/memory.max"))
        quota = period = None
        line = read_file(base + "/cpu.max")
        if line is not None:
            parts = line.split()
            if len(parts) == 2:
                quota, period = _int(parts[0]), _int(parts[1])
        return Limits(memory_bytes=_limit(memory), cpu_quota_us=quota, cpu_period_us=period)


def _throttling(u: Usage, stat: dict[bytes, int], throttled_key: bytes, per_second: float) -> None:
    """The CFS counters of a ``cpu.stat`` (v1: throttled_time in ns; v2: throttled_usec)."""
    if b"nr_periods" in stat:
        u.cfs_periods = stat[b"nr_periods"]
        u.cfs_throttled_periods = stat.get(b"nr_throttled", 0)
        u.cfs_throttled_seconds = stat.get(throttled_key, 0) / per_second


def _limit(value: int | None) -> int | None:
    return None if value is None or value < 0 or value >= _UNLIMITED else value


class SpecCache:
    """Each container's limits, read once per start: they do not change while
    it runs (a new start reads them again, by ``started_at``)."""

    def __init__(self, reader: CgroupReader) -> None:
        self.reader = reader
        self._cache: dict[str, tuple[float, Limits]] = {}

    def get(self, cid: str, started_at: float, group: str) -> Limits:
        hit = self._cache.get(cid)
        if hit is not None and hit[0] == started_at:
            return hit[1]
        limits = self.reader.limits(group)
        self._cache[cid] = (started_at, limits)
        return limits

    def keep(self, ids: set[str]) -> None:
        """Forget the containers not in ``ids`` (removed, or no longer running)."""
        for cid in [c for c in self._cache if c not in ids]:
            del self._cache[cid]


def reader_for(driver: Any) -> CgroupReader:
    """The reader for a runtime cgroup driver (``V1Driver`` or ``V2Driver``)."""
    if driver.version == 1:
        return V1Reader(dict(driver.hierarchies))
    return V2Reader(str(driver.root))
