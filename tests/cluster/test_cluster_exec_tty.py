"""`orch exec -it TASK` in a cluster: the CLI's terminal, through the
control plane's ExecAttach, to the node agent's, to a pty in the task's
container (a tmux pane drives it, as in tests/agent/test_interactive_tty.py)."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from tests.agent.test_interactive_tty import ORCH, Pane, exit_code
from tests.cluster.conftest import LocalCluster, wait_for

LOOP = "trap 'exit 0' TERM; while true; do sleep 1; done"


def test_exec_it_reaches_a_task_on_its_node(cluster: LocalCluster, tmp_path: Path) -> None:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    path = tmp_path / "m.yaml"
    path.write_text(textwrap.dedent(f"""
        services:
          ttyexec:
            image: busybox
            command: ["sh", "-c", "{LOOP}"]
            stop_grace_period: 1s
    """))
    cluster.orch("deploy", "-f", str(path))
    p = Pane(cluster.env)
    try:
        task = wait_for(lambda: cluster.running("ttyexec"), timeout=30)[0]
        p.wait(r"\A\$\Z")
        p.type(f"{ORCH} exec -it {task['id']} sh")
        p.wait(r"/ #", timeout=15)
        p.type("echo $((6*7)); stty size")
        p.wait(r"\n42\r?\n24 80")
        p.type("exit 3")
        assert exit_code(p) == 3
    finally:
        p.kill()
        cluster.orch("rm", "ttyexec", check=False)
