"""cgroup v1 driver: one directory per controller hierarchy under ``root``.

Layout: ``root/<controller>/<name>`` for controller in cpu, cpuacct, memory,
pids, devices (the group's device rules, ``create``'s ``device_rules``; a
host without that hierarchy restricts no device, so rules are skipped
there). Hosts that co-mount controllers (``root/cpu,cpuacct`` with ``cpu``
and ``cpuacct`` symlinks, or without the symlinks) are handled by
resolving each controller to its hierarchy's real path and de-duplicating.

Invariants:
- A group exists in every hierarchy found at construction time; a process is
  added to all of them.
- A limit for a controller whose hierarchy is missing is an error, never
  silently dropped; a missing hierarchy with no limit is fine.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from common.errors import FailedPrecondition, NotFound, SetupError
from nodeagent.runtime.spec import Resources

from .. import _fs, _procs
from .._base import CgroupStats, limits_to_write, validate_name, validate_resources
from . import cpu, cpuacct, devices, memory, pids

# Each controller's writer of one limit (None: unlimited).
_APPLY: dict[str, Callable[[str, Any], None]] = {
    "memory": memory.apply, "cpu": cpu.apply, "pids": pids.apply}

CONTROLLERS: tuple[str, ...] = ("cpu", "cpuacct", "memory", "pids", "devices")


def find_hierarchies(root: str) -> dict[str, str]:
    """Map each controller to the real path of its hierarchy under ``root``."""
    found: dict[str, str] = {}
    try:
        entries = sorted(os.listdir(root))
    except OSError:
        entries = []
    for controller in CONTROLLERS:
        direct = os.path.join(root, controller)
        if os.path.isdir(direct):
            found[controller] = os.path.realpath(direct)
            continue
        for entry in entries:  # co-mounted without symlinks: "cpu,cpuacct"
            path = os.path.join(root, entry)
            if controller in entry.split(",") and os.path.isdir(path):
                found[controller] = os.path.realpath(path)
                break
    return found


class V1Cgroup:
    """One group: ``name`` in each hierarchy of ``hierarchies``."""

    def __init__(self, name: str, hierarchies: dict[str, str]) -> None:
        self.name = name
        self._dirs = {c: os.path.join(h, name) for c, h in hierarchies.items()}
        self._roots = list(hierarchies.values())

    def directories(self) -> list[str]:
        """The group's directory in each distinct hierarchy."""
        # Co-mounted controllers share a directory; touch it once.
        return list(dict.fromkeys(self._dirs.values()))

    def directory_of(self, controller: str) -> str | None:
        return self._dirs.get(controller)

    def add_process(self, pid: int) -> None:
        for directory in self.directories():
            _fs.write(os.path.join(directory, "cgroup.procs"), str(pid))

    def self_join_files(self) -> list[str]:
        """``tasks`` moves just the writer: for a single-threaded caller that
        is the whole process, without the threadgroup lock ``cgroup.procs`` takes."""
        return [os.path.join(d, "tasks") for d in self.directories()]

    def procs(self) -> list[int]:
        seen: set[int] = set()
        for directory in self.directories():
            seen.update(_fs.read_pids(os.path.join(directory, "cgroup.procs")))
        return sorted(seen)

    def oom_kills(self) -> int:
        d = self.directory_of("memory")
        return memory.oom_kills(d) if d else 0

    def stats(self) -> CgroupStats:
        if not any(os.path.isdir(d) for d in self.directories()):
            raise NotFound(f"cgroup {self.name!r} does not exist")
        mem, acct = self.directory_of("memory"), self.directory_of("cpuacct")
        cpu_dir, pid_dir = self.directory_of("cpu"), self.directory_of("pids")
        periods, throttled, throttled_ns = cpu.throttling(cpu_dir) if cpu_dir else (0, 0, 0)
        return CgroupStats(
            memory_usage_bytes=memory.usage_bytes(mem) if mem else 0,
            memory_limit_bytes=memory.limit_bytes(mem) if mem else None,
            cpu_usage_ns=cpuacct.usage_ns(acct) if acct else 0,
            cpu_nr_periods=periods,
            cpu_nr_throttled=throttled,
            cpu_throttled_ns=throttled_ns,
            pids_current=pids.current(pid_dir) if pid_dir else 0,
            pids_limit=pids.limit(pid_dir) if pid_dir else None,
            oom_kills=memory.oom_kills(mem) if mem else 0,
        )

    def kill_all(self) -> None:
        """SIGKILL every process; gives up after about 1 s (remove() then reports them)."""
        # v1 has no cgroup.kill: signal each listed pid until the list is empty.
        _procs.kill_until_empty(self.procs)

    def remove(self) -> None:
        _procs.rmdir_all(self.directories(), self.procs)
        self._prune()

    def try_remove(self) -> bool:
        """One rmdir per hierarchy, no waiting: True if the group is gone."""
        gone = all([_fs.rmdir(d) for d in self.directories()])
        if gone:
            self._prune()
        return gone

    def _prune(self) -> None:
        for root in dict.fromkeys(self._roots):
            _fs.prune(root, self.name)


class V1Driver:
    version = 1

    def __init__(self, root: str = "/sys/fs/cgroup") -> None:
        self.root = root
        self.hierarchies = find_hierarchies(root)
        if not self.hierarchies:
            raise FailedPrecondition(
                f"no cgroup v1 hierarchy ({', '.join(CONTROLLERS)}) found under {root}"
            )

    def _require(self, controller: str, wanted: object) -> str | None:
        """The controller's hierarchy, or an error if a limit needs a missing one."""
        directory = self.hierarchies.get(controller)
        if directory is None and wanted is not None:
            raise SetupError(
                "cgroup limit", f"{controller}={wanted}",
                f"the {controller} controller is not mounted under {self.root}",
            )
        return directory

    def create(self, name: str, resources: Resources,
               device_rules: tuple[str, ...] | None = None) -> V1Cgroup:
        validate_name(name)
        validate_resources(resources)
        self._require("memory", resources.memory_bytes)
        self._require("cpu", resources.cpus)
        self._require("pids", resources.pids_limit)
        group = V1Cgroup(name, self.hierarchies)
        created = [_fs.mkdir(directory) for directory in group.directories()]
        self._apply(group, resources, fresh=all(created))
        if device_rules is not None and (directory := group.directory_of("devices")):
            devices.apply(directory, device_rules)
        return group

    def _apply(self, group: V1Cgroup, resources: Resources, fresh: bool) -> None:
        # Missing hierarchies were already checked against the wanted limits.
        for controller, value in limits_to_write(resources, fresh).items():
            if directory := group.directory_of(controller):
                _APPLY[controller](directory, value)

    def open(self, name: str) -> V1Cgroup:
        validate_name(name)
        group = V1Cgroup(name, self.hierarchies)
        if not any(os.path.isdir(d) for d in group.directories()):
            raise NotFound(f"cgroup {name!r} does not exist under {self.root}")
        return group

    def remove_parent_if_empty(self, name: str) -> bool:
        """rmdir ``name`` in every hierarchy unless child groups remain there."""
        validate_name(name)
        dirs = list(dict.fromkeys(os.path.join(h, name) for h in self.hierarchies.values()))
        return all([_fs.rmdir(d) for d in dirs])
