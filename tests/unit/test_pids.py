"""orch.pids.alive: a zombie (exited, not reaped yet) no longer runs."""

from __future__ import annotations

import os
import subprocess
import time

from orch.pids import alive


def test_running_zombie_and_gone() -> None:
    sleeper = subprocess.Popen(["sleep", "30"])
    quick = subprocess.Popen(["true"])
    try:
        assert alive(sleeper.pid)
        deadline = time.monotonic() + 10
        while alive(quick.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        # Exited but not reaped: kill(pid, 0) would still say it exists.
        os.kill(quick.pid, 0)
        assert not alive(quick.pid)
    finally:
        sleeper.kill()
        sleeper.wait()
        quick.wait()
    assert not alive(quick.pid)
