"""Whether a process started by orch (and since left to init) still runs,
and waiting for it to end."""

from __future__ import annotations

import os


def alive(pid: int) -> bool:
    """Running: neither gone nor a zombie. A process whose parent exited (the
    daemons `orch up` and `orch agent --detach` start) is reaped by init
    whenever init gets to it; until then ``kill(pid, 0)`` still succeeds, and
    waiting on that waited ~1 s per process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    end = stat.rindex(b")")
    return stat[end + 2:end + 3] != b"Z"


def wait_exit(pid: int, timeout: float) -> bool:
    """Wait until ``pid`` has exited (a zombie counts), at most ``timeout``
    seconds, watching a pidfd rather than polling; True once it has."""
    import select

    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([fd], [], [], timeout)[0])
    finally:
        os.close(fd)
