"""v2 ``memory`` controller: ``memory.max``, ``memory.swap.max``, usage and OOM kills.

With a limit, ``memory.swap.max`` is set to 0 when the file exists (no swap,
matching v1's memsw = limit); without one both go back to ``max``.
"""

from __future__ import annotations

import os

from .. import _fs


def apply(directory: str, memory_bytes: int | None) -> None:
    max_path = os.path.join(directory, "memory.max")
    swap_path = os.path.join(directory, "memory.swap.max")
    if memory_bytes is None:
        for path in (max_path, swap_path):
            if os.path.exists(path):
                _fs.write(path, "max")
        return
    _fs.write(max_path, str(memory_bytes))
    if os.path.exists(swap_path):
        _fs.write(swap_path, "0")


def usage_bytes(directory: str) -> int:
    return _fs.read_int(os.path.join(directory, "memory.current"))


def limit_bytes(directory: str) -> int | None:
    return _fs.read_max(os.path.join(directory, "memory.max"))


def oom_kills(directory: str) -> int:
    """``oom_kill`` from ``memory.events`` (hierarchical: includes sub-groups)."""
    return _fs.read_keyed(os.path.join(directory, "memory.events")).get("oom_kill", 0)
