"""Interactive use, as `docker run -it`, `docker exec -it` and `docker
attach`: the real CLI in a real terminal (a tmux pane on a tmux server of
the test's own), the agent, the supervisor and a pty in the container.

Every step waits for what the pane shows, never for a fixed time. What is
typed never contains what is waited for (``echo $((6*7))`` shows 42 only
when it ran)."""

from __future__ import annotations

import json
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.agent.conftest import Engine

ROOT = Path(__file__).resolve().parents[2]
ORCH = f"{shlex.quote(sys.executable)} -m orch"


class Pane:
    """A shell in a tmux pane, 80x24, on a tmux server of its own."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.server = f"orch-tty-{secrets.token_hex(3)}"
        self.env = dict(env)
        self.run("new-session", "-d", "-s", "t", "-x", "80", "-y", "24", "-c", str(ROOT),
                 "env PS1='$ ' sh")

    def run(self, *args: str) -> str:
        proc = subprocess.run(["tmux", "-L", self.server, *args], env=self.env, text=True,
                              capture_output=True, timeout=10, check=True)
        return proc.stdout

    def type(self, text: str) -> None:
        self.run("send-keys", "-t", "t", "-l", text)
        self.run("send-keys", "-t", "t", "Enter")

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", "t", *keys)

    def text(self) -> str:
        return self.run("capture-pane", "-p", "-t", "t", "-S", "-200").rstrip()

    def wait(self, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        """The first match of ``pattern`` in the pane, once it shows."""
        deadline = time.monotonic() + timeout
        while True:
            found = re.search(pattern, self.text())
            if found:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"{pattern!r} did not show within {timeout} s:\n{self.text()}")
            time.sleep(0.05)

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.server, "kill-server"], env=self.env,
                       capture_output=True, timeout=10, check=False)


@contextmanager
def pane(engine: Engine) -> Iterator[Pane]:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    p = Pane(engine.env)
    try:
        p.wait(r"\A\$\Z")
        yield p
    finally:
        p.kill()


def exit_code(p: Pane) -> int:
    """The last command's exit code, from the outer shell once its prompt
    is back (what is typed before goes to the command still ending)."""
    p.wait(r"\n\$\s*\Z")
    mark = secrets.token_hex(2)
    p.type(f"echo {mark}=$?")
    return int(p.wait(rf"{mark}=(\d+)").group(1))


def test_run_it_shell_resize_ctrl_c_and_exit_code(engine: Engine) -> None:
    name = f"tty-{secrets.token_hex(3)}"
    with pane(engine) as p:
        p.type(f"{ORCH} run -it --rm --name {name} busybox sh")
        p.wait(r"/ #")
        p.type("echo $((6*7))")
        p.wait(r"\n42\r?\n")
        p.run("resize-window", "-t", "t", "-x", "100", "-y", "30")
        p.type("stty size")
        p.wait(r"30 100")
        # Ctrl-C is a 0x03 byte through the raw terminal: the pty makes it
        # a SIGINT for sleep (the foreground group), and the shell lives on.
        # (Once the job has printed, it is the foreground group.)
        p.type("sh -c 'echo $((3+4))-go; exec sleep 100'")
        p.wait(r"\n7-go")
        p.keys("C-c")
        p.type("echo alive-$((1+1))")
        p.wait(r"\nalive-2", timeout=5)
        p.type("exit 7")
        assert exit_code(p) == 7
    assert engine.orch("inspect", name, check=False).returncode != 0  # --rm: gone


def test_exec_it_then_attach_and_detach(engine: Engine) -> None:
    name = f"tty-{secrets.token_hex(3)}"
    engine.orch("run", "-d", "-it", "--name", name, "busybox", "sh")
    try:
        with pane(engine) as p:
            p.type(f"{ORCH} exec -it {name} sh")
            p.wait(r"/ #")
            p.type("tty; echo $((2*3))")
            found = p.wait(r"(/dev/pts/\d+)\r?\n6")
            assert found.group(1) != "/dev/pts/0"  # the container's own process has that one
            p.type("exit 4")
            assert exit_code(p) == 4

            p.type(f"{ORCH} attach {name}")
            p.type("echo att-$((2+3))")
            p.wait(r"\natt-5")
            p.keys("C-p", "C-q")
            assert exit_code(p) == 0

            p.type(f"{ORCH} attach --detach-keys ctrl-x,x {name}")
            p.type("echo again-$((3+3))")
            p.wait(r"\nagain-6")
            p.keys("C-x", "x")
            assert exit_code(p) == 0
        assert json.loads(engine.orch("inspect", name).stdout)[0]["state"] == "running"  # detached
    finally:
        engine.orch("rm", "-f", name, check=False)


def test_stdin_without_a_tty(engine: Engine) -> None:
    run = engine.orch("run", "-i", "--rm", "busybox", "sh", "-c", "cat; exit 3",
                      input="line one\nline two\n", check=False)
    assert run.returncode == 3 and run.stdout == "line one\nline two\n", run.stderr
    name = f"tty-{secrets.token_hex(3)}"
    engine.orch("run", "-d", "--name", name, "busybox", "sleep", "60")
    try:
        ex = engine.orch("exec", "-i", name, "sh", "-c", "wc -l; echo bye >&2", input="a\nb\nc\n")
        assert ex.stdout.strip() == "3" and ex.stderr == "bye\n"
        refused = engine.orch("exec", "-it", name, "sh", input="", check=False)
        assert refused.returncode == 1 and "not a TTY" in refused.stderr
    finally:
        engine.orch("rm", "-f", name, check=False)
