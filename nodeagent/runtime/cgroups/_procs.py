"""Emptying and removing cgroups: the bounded retry loops both versions share.

Invariants:
- Nothing here blocks for long: every loop has a deadline (about 1 s by
  default) and sleeps in short steps, because exiting processes leave a cgroup
  within milliseconds once killed.
- Only pids read from the group's own ``cgroup.procs`` are signalled.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterable

from common.errors import FailedPrecondition

from . import _fs

# Sleep steps while waiting: start short (processes usually exit at once),
# back off to 50 ms.
_FIRST_STEP = 0.002
_MAX_STEP = 0.05


def _steps(timeout: float) -> Iterable[None]:
    """Yield until ``timeout`` seconds have passed, sleeping between yields."""
    deadline = time.monotonic() + timeout
    step = _FIRST_STEP
    while True:
        yield None
        if time.monotonic() >= deadline:
            return
        time.sleep(step)
        step = min(step * 2, _MAX_STEP)


def kill_until_empty(
    procs: Callable[[], list[int]], timeout: float = 1.0, signal_each: bool = True
) -> list[int]:
    """SIGKILL whatever ``procs()`` lists until it is empty; return what remains.

    Re-reading in a loop catches processes forked between the read and the
    kill. With ``signal_each=False`` the loop only waits (cgroup.kill did it).
    """
    remaining: list[int] = []
    for _ in _steps(timeout):
        remaining = procs()
        if not remaining:
            return []
        if signal_each:
            for pid in remaining:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
    return remaining


def rmdir_all(dirs: list[str], procs: Callable[[], list[int]], timeout: float = 1.0) -> None:
    """rmdir every directory, retrying on EBUSY while processes finish exiting.

    Missing directories count as removed (idempotent). Raises
    FailedPrecondition naming the directories and processes still there.
    """
    pending = list(dirs)
    for _ in _steps(timeout):
        pending = [d for d in pending if not _fs.rmdir(d)]
        if not pending:
            return
    raise FailedPrecondition(
        f"cgroup directories {pending} are still busy after {timeout}s "
        f"(processes {procs()} or child groups remain); kill them first"
    )
