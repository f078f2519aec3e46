"""cgroup v1: the driver plus one module per controller (cpu, cpuacct, memory, pids, devices)."""

from .driver import V1Cgroup, V1Driver, find_hierarchies

__all__ = ["V1Cgroup", "V1Driver", "find_hierarchies"]
