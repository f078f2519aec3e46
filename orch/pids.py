"""Whether a process started by orch (and since left to init) still runs."""

from __future__ import annotations


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
