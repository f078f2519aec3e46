"""cgroup v2: the driver plus one module per controller (cpu, memory, pids)."""

from .driver import V2Cgroup, V2Driver, enable_controllers

__all__ = ["V2Cgroup", "V2Driver", "enable_controllers"]
