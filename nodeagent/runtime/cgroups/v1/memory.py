"""v1 ``memory`` controller: limit (with swap pinned to the same value), usage, OOM kills.

Invariant kept by :func:`apply`: the kernel requires ``memory.limit_in_bytes <=
memory.memsw.limit_in_bytes`` at every moment, so when the new limit is above
the current memsw limit, memsw is written first; otherwise the memory limit is.
Setting memsw equal to the memory limit means the group gets no swap.
"""

from __future__ import annotations

import os

from .. import _fs
from .._base import UNLIMITED_THRESHOLD

LIMIT = "memory.limit_in_bytes"
MEMSW_LIMIT = "memory.memsw.limit_in_bytes"


def _as_limit(value: int) -> int | None:
    return None if value >= UNLIMITED_THRESHOLD or value < 0 else value


def apply(directory: str, memory_bytes: int | None) -> None:
    """Set the limit (None = unlimited, written as -1)."""
    limit_path = os.path.join(directory, LIMIT)
    memsw_path = os.path.join(directory, MEMSW_LIMIT)
    if memory_bytes is None and not os.path.exists(limit_path):
        return
    value = -1 if memory_bytes is None else memory_bytes
    if not os.path.exists(memsw_path):
        # Swap accounting disabled (swapaccount=0): only the memory limit exists.
        _fs.write(limit_path, str(value))
        return
    current_memsw = _as_limit(_fs.read_int(memsw_path, default=-1))
    raising = memory_bytes is None or (current_memsw is not None and memory_bytes > current_memsw)
    order = (memsw_path, limit_path) if raising else (limit_path, memsw_path)
    for path in order:
        _fs.write(path, str(value))


def usage_bytes(directory: str) -> int:
    return _fs.read_int(os.path.join(directory, "memory.usage_in_bytes"))


def limit_bytes(directory: str) -> int | None:
    path = os.path.join(directory, LIMIT)
    if not os.path.exists(path):
        return None
    return _as_limit(_fs.read_int(path, default=-1))


def oom_kills(directory: str) -> int:
    """The ``oom_kill`` line of ``memory.oom_control`` (kernels >= 4.13; else 0)."""
    return _fs.read_keyed(os.path.join(directory, "memory.oom_control")).get("oom_kill", 0)
