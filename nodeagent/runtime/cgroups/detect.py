"""Choose the cgroup driver for this host at run time.

Rules, in order (checked on the files under ``root`` so a temp-dir fake works
the same as /sys/fs/cgroup):

1. ``root/cgroup.controllers`` exists: ``root`` is a unified (v2) mount -> v2.
2. A v1 controller hierarchy (cpu, cpuacct, memory, pids; possibly co-mounted
   as ``cpu,cpuacct``) exists under ``root`` -> v1. This covers hybrid hosts
   whose ``root/unified`` carries no controllers (systemd's hybrid layout).
3. ``root/unified/cgroup.controllers`` lists controllers -> v2 at ``root/unified``.
4. Otherwise FailedPrecondition.
"""

from __future__ import annotations

import os

from common.errors import FailedPrecondition

from . import _fs
from ._base import CgroupDriver
from .v1 import V1Driver, find_hierarchies
from .v2 import V2Driver


def detect(root: str = "/sys/fs/cgroup") -> CgroupDriver:
    if os.path.exists(os.path.join(root, "cgroup.controllers")):
        return V2Driver(root)
    if find_hierarchies(root):
        return V1Driver(root)
    unified = os.path.join(root, "unified")
    if (_fs.read_optional(os.path.join(unified, "cgroup.controllers")) or "").split():
        return V2Driver(unified)
    raise FailedPrecondition(
        f"no usable cgroup hierarchy under {root}: neither a cgroup v2 mount "
        "(cgroup.controllers) nor v1 controller directories (cpu, memory, pids)"
    )
