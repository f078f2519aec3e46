"""One supervisor per run dir: a second one (an agent restarting while it
replaces a dead supervisor can start two) exits at once with
ALREADY_RUNNING, before it touches any container, and the first goes on."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nodeagent.supervisor import ALREADY_RUNNING
from orch.pids import wait_exit


def _start(tmp: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "nodeagent.supervisor", "--state-dir",
                             str(tmp / "state"), "--run-dir", str(tmp / "run"), "--bridge", "orchlock0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_second_supervisor_on_the_same_run_dir_exits_already_running(tmp_path: Path) -> None:
    import os

    if os.geteuid() != 0:
        pytest.skip("the supervisor needs root")
    first = _start(tmp_path)
    try:
        deadline = time.monotonic() + 20
        while not (tmp_path / "run" / "supervisor.sock").exists():
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.02)
        second = _start(tmp_path)
        _, err = second.communicate(timeout=30)
        assert second.returncode == ALREADY_RUNNING
        assert f"another supervisor already serves {tmp_path / 'run'}" in err
        assert first.poll() is None
        assert (tmp_path / "run" / "supervisor.pid").read_text() == str(first.pid)
    finally:
        first.send_signal(signal.SIGTERM)
        if not wait_exit(first.pid, 30):
            first.kill()
        first.communicate()
