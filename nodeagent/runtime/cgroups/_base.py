"""What every cgroup driver provides, and the quantity rules both versions share.

Invariants:
- A cgroup ``name`` is a relative path of plain components (``orch/<id>``);
  it is the same in every hierarchy.
- CPUs map to a CFS quota over a fixed 100 ms period: ``quota_us =
  round(cpus * 100000)``, clamped to the kernel minimum of 1000 us (never 0).
- Invalid resources (memory <= 0, cpus <= 0 or not finite, pids <= 0) raise
  :class:`InvalidArgument` naming the field before anything is written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

from common.errors import InvalidArgument
from nodeagent.runtime.spec import Resources

CPU_PERIOD_US = 100_000
# The kernel rejects quotas below 1 ms (min_cfs_quota_period).
CPU_MIN_QUOTA_US = 1_000
# v1 reports "unlimited" memory as PAGE_COUNTER_MAX * PAGE_SIZE (about 2**63);
# anything at or above 2**62 is treated as no limit.
UNLIMITED_THRESHOLD = 1 << 62


@dataclass
class CgroupStats:
    memory_usage_bytes: int
    memory_limit_bytes: int | None
    cpu_usage_ns: int
    cpu_nr_periods: int
    cpu_nr_throttled: int
    cpu_throttled_ns: int
    pids_current: int
    pids_limit: int | None
    oom_kills: int


class Cgroup(Protocol):
    name: str

    def add_process(self, pid: int) -> None: ...
    def self_join_files(self) -> list[str]:
        """The files a process writes ``0`` to, to move itself into the
        group (a container's init does, in ``orch-init/main.c``)."""
        ...
    def procs(self) -> list[int]: ...
    def stats(self) -> CgroupStats: ...
    def oom_kills(self) -> int: ...
    def kill_all(self) -> None: ...
    def remove(self) -> None: ...
    def try_remove(self) -> bool: ...


class CgroupDriver(Protocol):
    version: int

    def create(self, name: str, resources: Resources,
               device_rules: tuple[str, ...] | None = None) -> Cgroup:
        """The group, made or reset, with ``resources``' limits and (v1)
        ``device_rules`` after "deny all"; None leaves devices as they are."""
        ...
    def open(self, name: str) -> Cgroup: ...
    def remove_parent_if_empty(self, name: str) -> bool: ...


def limits_to_write(resources: Resources, fresh: bool) -> dict[str, Any]:
    """Controller -> limit (None: unlimited) that a group's files must be
    set to. A ``fresh`` group (just made) holds the kernel's defaults, no
    limits, so only the limits asked for are written; a group that existed
    before gets every one, unlimited ones included, to reset it."""
    wanted = {"memory": resources.memory_bytes, "cpu": resources.cpus,
              "pids": resources.pids_limit}
    return {c: v for c, v in wanted.items() if not fresh or v is not None}


def cpu_quota_us(cpus: float) -> int:
    """The CFS quota (us per 100 ms period) for ``cpus`` CPUs; never below 1 ms."""
    return max(CPU_MIN_QUOTA_US, round(cpus * CPU_PERIOD_US))


def validate_resources(resources: Resources) -> None:
    """Reject values no cgroup can express, naming the field."""
    mem = resources.memory_bytes
    if mem is not None and (isinstance(mem, bool) or mem <= 0):
        raise InvalidArgument(f"resources.memory_bytes must be a positive byte count, got {mem!r}")
    cpus = resources.cpus
    if cpus is not None and (not math.isfinite(cpus) or cpus <= 0):
        raise InvalidArgument(f"resources.cpus must be a positive number of CPUs, got {cpus!r}")
    pids = resources.pids_limit
    if pids is not None and (isinstance(pids, bool) or pids <= 0):
        raise InvalidArgument(f"resources.pids_limit must be a positive count, got {pids!r}")


def validate_name(name: str) -> list[str]:
    """Split a cgroup name into its components; InvalidArgument if it could escape."""
    parts = name.split("/")
    if not name or any(p in ("", ".", "..") for p in parts):
        raise InvalidArgument(
            f"cgroup name {name!r} must be a relative path of plain components, e.g. 'orch/<id>'"
        )
    return parts
