"""orch.pids.alive: a zombie (exited, not reaped yet) no longer runs."""

from __future__ import annotations

import os
import subprocess
import time

from orch.pids import alive, wait_exit


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


def test_wait_exit_sees_an_exit_without_reaping_it() -> None:
    sleeper = subprocess.Popen(["sleep", "30"])
    quick = subprocess.Popen(["true"])
    try:
        assert wait_exit(quick.pid, 10)  # a zombie: exited, not reaped
        assert not alive(quick.pid)
        assert not wait_exit(sleeper.pid, 0.05)
        sleeper.terminate()
        assert wait_exit(sleeper.pid, 10)
    finally:
        sleeper.kill()
        sleeper.wait()
        quick.wait()
    assert wait_exit(quick.pid, 0)  # gone altogether
