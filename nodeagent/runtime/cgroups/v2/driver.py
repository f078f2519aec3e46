"""cgroup v2 driver: one unified hierarchy at ``root``.

Invariants:
- Before a group is used, every ancestor from ``root`` down to the group's
  parent delegates cpu, memory and pids in its ``cgroup.subtree_control``
  (only those listed in the ancestor's ``cgroup.controllers``); leaves never
  enable controllers (the no-internal-processes rule).
- A limit whose control file is missing (controller unavailable) is an error;
  a missing file with no limit is fine.
- ``kill_all`` uses ``cgroup.kill`` (kernel >= 5.14) when the file exists.
- Device rules (``create``'s ``device_rules``, v1 syntax): v2 has no devices
  files; ``create`` hands the rules to ``attach_devices`` (by default
  :func:`devices.attach`: an eBPF ``BPF_PROG_TYPE_CGROUP_DEVICE`` program
  compiled from them, attached to the group, replacing the one an earlier
  ``create`` of the group attached). None leaves the group's devices as they
  are. Tests against a fake cgroupfs, where no program can attach, pass a
  recorder instead.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from typing import Any

from common.errors import NotFound, SetupError
from nodeagent.runtime.spec import Resources

from .. import _fs, _procs
from .._base import CgroupStats, limits_to_write, validate_name, validate_resources
from . import cpu, devices, memory, pids

# Each controller's writer of one limit (None: unlimited).
_APPLY: dict[str, Callable[[str, Any], None]] = {
    "memory": memory.apply, "cpu": cpu.apply, "pids": pids.apply}

WANTED_CONTROLLERS: tuple[str, ...] = ("cpu", "memory", "pids")


def enable_controllers(directory: str, wanted: tuple[str, ...] = WANTED_CONTROLLERS) -> None:
    """Delegate ``wanted`` controllers to ``directory``'s children, skipping unavailable ones."""
    listed = _fs.read_optional(os.path.join(directory, "cgroup.controllers")) or ""
    available = set(listed.split())
    control = os.path.join(directory, "cgroup.subtree_control")
    enabled = {tok.lstrip("+") for tok in (_fs.read_optional(control) or "").split()}
    missing = [c for c in wanted if c in available and c not in enabled]
    if missing:
        _fs.write(control, " ".join(f"+{c}" for c in missing))


class V2Cgroup:
    def __init__(self, name: str, root: str) -> None:
        self.name = name
        self.root = root
        self.path = os.path.join(root, name)

    def _file(self, filename: str) -> str:
        return os.path.join(self.path, filename)

    def add_process(self, pid: int) -> None:
        _fs.write(self._file("cgroup.procs"), str(pid))

    def self_join_files(self) -> list[str]:
        return [self._file("cgroup.procs")]

    def procs(self) -> list[int]:
        return _fs.read_pids(self._file("cgroup.procs"))

    def oom_kills(self) -> int:
        return memory.oom_kills(self.path)

    def stats(self) -> CgroupStats:
        if not os.path.isdir(self.path):
            raise NotFound(f"cgroup {self.name!r} does not exist ({self.path})")
        usage_ns, periods, throttled, throttled_ns = cpu.stats(self.path)
        return CgroupStats(
            memory_usage_bytes=memory.usage_bytes(self.path),
            memory_limit_bytes=memory.limit_bytes(self.path),
            cpu_usage_ns=usage_ns,
            cpu_nr_periods=periods,
            cpu_nr_throttled=throttled,
            cpu_throttled_ns=throttled_ns,
            pids_current=pids.current(self.path),
            pids_limit=pids.limit(self.path),
            oom_kills=memory.oom_kills(self.path),
        )

    def kill_all(self) -> None:
        kill_file = self._file("cgroup.kill")
        if os.path.exists(kill_file):
            # The kernel kills every process, including ones forking right now.
            _fs.write(kill_file, "1")
            _procs.kill_until_empty(self.procs, signal_each=False)
        else:
            _procs.kill_until_empty(self.procs)

    def remove(self) -> None:
        _procs.rmdir_all([self.path], self.procs)
        _fs.prune(self.root, self.name)

    def try_remove(self) -> bool:
        """One rmdir, no waiting: True if the group is gone."""
        gone = _fs.rmdir(self.path)
        if gone:
            _fs.prune(self.root, self.name)
        return gone


class V2Driver:
    version = 2

    def __init__(self, root: str = "/sys/fs/cgroup",
                 attach_devices: Callable[[str, tuple[str, ...]], None] = devices.attach) -> None:
        self.root = root
        self.attach_devices = attach_devices  # (group directory, device rules)

    def create(self, name: str, resources: Resources,
               device_rules: tuple[str, ...] | None = None) -> V2Cgroup:
        if device_rules is not None:
            device_rules = tuple(device_rules)
            devices.validate(device_rules)  # bad rules fail before any mkdir
        for attempt in range(3):
            try:
                group = self._create(name, resources)
                if device_rules is not None:
                    self.attach_devices(group.path, device_rules)
                return group
            except SetupError as err:  # an ancestor pruned under us (_fs.prune): make it again
                if err.errno != errno.ENOENT or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _create(self, name: str, resources: Resources) -> V2Cgroup:
        parts = validate_name(name)
        validate_resources(resources)
        directory = self.root
        for part in parts[:-1]:  # ancestors: delegate, then descend
            enable_controllers(directory)
            directory = os.path.join(directory, part)
            _fs.mkdir(directory)
        enable_controllers(directory)
        group = V2Cgroup(name, self.root)
        fresh = _fs.mkdir(group.path)
        for controller, value in limits_to_write(resources, fresh).items():
            _APPLY[controller](group.path, value)
        return group

    def open(self, name: str) -> V2Cgroup:
        validate_name(name)
        group = V2Cgroup(name, self.root)
        if not os.path.isdir(group.path):
            raise NotFound(f"cgroup {name!r} does not exist under {self.root}")
        return group

    def remove_parent_if_empty(self, name: str) -> bool:
        """rmdir ``name`` unless child groups remain in it."""
        validate_name(name)
        return _fs.rmdir(os.path.join(self.root, name))
