"""``pids`` controller (same files in v1 and v2): ``pids.max`` and ``pids.current``."""

from __future__ import annotations

import os

from .. import _fs


def apply(directory: str, pids_limit: int | None) -> None:
    """Set the limit (None = ``"max"``); a missing file is fine only for None."""
    path = os.path.join(directory, "pids.max")
    if pids_limit is None and not os.path.exists(path):
        return
    _fs.write(path, "max" if pids_limit is None else str(pids_limit))


def current(directory: str) -> int:
    return _fs.read_int(os.path.join(directory, "pids.current"))


def limit(directory: str) -> int | None:
    return _fs.read_max(os.path.join(directory, "pids.max"))
