"""v1 ``cpuacct`` controller: total CPU time used, in ns (``cpuacct.usage``)."""

from __future__ import annotations

import os

from .. import _fs


def usage_ns(directory: str) -> int:
    return _fs.read_int(os.path.join(directory, "cpuacct.usage"))
