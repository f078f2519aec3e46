"""Resource limits and accounting for containers through Linux cgroups (v1 and v2).

Role: create a group per container (``orch/<id>``), write its limits, put
processes in it, read its statistics, kill and remove it. :func:`detect` picks
the driver for the host; both drivers take the cgroup root as a parameter so
tests can point them at a temp-dir fake cgroupfs.

Invariants:
- ``create`` is idempotent (mkdir with parents, then write every limit; None
  restores "unlimited"); ``remove`` is idempotent and retries briefly while
  killed processes finish exiting.
- Quantities: bytes; CPUs -> CFS quota over a 100 ms period (min 1 ms); pids.

Errors (common.errors)::

    InvalidArgument     bad resources or cgroup name (names the field)
    NotFound            open()/stats() of a group that does not exist
    SetupError          a control file write/mkdir failed (names file and value)
    FailedPrecondition  no cgroup hierarchy; a group still busy after remove's retries
"""

from ._base import Cgroup, CgroupDriver, CgroupStats, cpu_quota_us
from .detect import detect
from .v1 import V1Driver
from .v2 import V2Driver


def remove_parent_if_empty(driver: CgroupDriver, name: str = "orch") -> bool:
    """Remove the parent group ``name`` (e.g. at agent shutdown) if no child remains.

    True when it is gone from every hierarchy (or never existed).
    """
    return driver.remove_parent_if_empty(name)


__all__ = [
    "Cgroup",
    "CgroupDriver",
    "CgroupStats",
    "V1Driver",
    "V2Driver",
    "cpu_quota_us",
    "detect",
    "remove_parent_if_empty",
]
