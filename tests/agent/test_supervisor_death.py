"""A supervisor killed with -9 takes its containers with it, and the agent
starts a new one that reports them killed, leaves nothing of them behind,
restarts what its restart policy brings back, and serves on.

Container processes are found by their cgroup (``orch/<id>`` in
/proc/PID/cgroup), not only by the pids the records hold. Zombies are dead
processes waiting for their reaper: they count as gone."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.agent.conftest import Engine, busybox_rootfs
from tests.agent.test_engine import wait_for


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """An agent of this test's own: its supervisor is killed."""
    if os.geteuid() != 0:
        pytest.skip("the agent needs root")
    tag = os.urandom(2).hex()
    eng = Engine(state=tmp_path / "state", run=tmp_path / "run", bridge=f"orchk{tag}",
                 subnet=f"10.218.{int(tag[:2], 16)}.0/24",
                 env={**os.environ, "ORCH_HOST": f"unix://{tmp_path}/run/agent.sock"})
    eng.start()
    try:
        eng.orch("image", "import", str(busybox_rootfs(tmp_path / "bb")), "busybox")
        yield eng
    finally:
        eng.stop_all()


def stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a live process; None if gone or a zombie."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return None if fields[0] == "Z" else (fields[0], int(fields[1]))


def processes_of(*cids: str) -> list[int]:
    """Live processes in the cgroup of any of ``cids`` (or of a path part)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or stat(int(entry)) is None:
            continue
        with contextlib.suppress(OSError):
            groups = Path(f"/proc/{entry}/cgroup").read_text()
            if any(f"/{cid}" in groups for cid in cids):
                found.append(int(entry))
    return found


def mounts_of(cid: str) -> list[str]:
    """Mounts of ``cid``'s bundle in any process's mount namespace."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                found += [line for line in Path(f"/proc/{entry}/mountinfo").read_text().splitlines()
                          if f"containers/{cid}" in line]
    return found


def cgroup_dirs(cid: str) -> list[str]:
    found = []
    for root, dirs, _ in os.walk("/sys/fs/cgroup"):
        if cid in dirs:
            found.append(f"{root}/{cid}")
        if root.count("/") > 5:
            dirs.clear()
    return found


def inspect(engine: Engine, ref: str) -> dict[str, Any]:
    return json.loads(engine.orch("inspect", ref).stdout)[0]


def supervisor_after(engine: Engine, old: int) -> int:
    """The pid of the supervisor that replaced ``old``, once the agent says so."""
    def new() -> int:
        with contextlib.suppress(Exception):
            pid = engine.info()["supervisor_pid"]
            if pid != old and stat(pid) is not None:
                return pid
        return 0

    return int(wait_for(new, timeout=30))


def test_a_killed_supervisor_takes_its_containers_and_is_replaced(engine: Engine) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cids = {
        "web": engine.orch("run", "-d", "--name", "web", "-p", f"{port}:80", "busybox",
                           "httpd", "-f", "-p", "80", "-h", "/www").stdout.strip(),
        "quiet": engine.orch("run", "-d", "--name", "quiet", "--network", "none", "busybox",
                             "sleep", "300").stdout.strip(),
        "always": engine.orch("run", "-d", "--name", "always", "--restart", "always", "busybox",
                              "sleep", "300").stdout.strip(),
        # su changes its uid, which clears the parent-death signal: this one
        # outlives the supervisor until the next one kills its cgroup.
        "setuid": engine.orch("run", "-d", "--name", "setuid", "busybox", "su", "app", "-c",
                              "exec sleep 300").stdout.strip(),
    }
    cli = [sys.executable, "-m", "orch"]
    foreground = subprocess.Popen([*cli, "run", "--rm", "--name", "fg", "--network", "none",
                                   "busybox", "sleep", "300"], env=engine.env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    execd = subprocess.Popen([*cli, "exec", "quiet", "sleep", "300"], env=engine.env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        cids["fg"] = wait_for(lambda: next((c["id"] for c in json.loads(
            engine.orch("ps", "-o", "json").stdout) if c["name"] == "fg"), ""))
        wait_for(lambda: len(processes_of(cids["quiet"])) == 2)  # PID 1 and the exec
        before = {name: inspect(engine, cid)["pid"] for name, cid in cids.items()}
        info = engine.info()
        os.kill(info["supervisor_pid"], signal.SIGKILL)

        new = supervisor_after(engine, info["supervisor_pid"])
        error = f"killed: its supervisor (pid {info['supervisor_pid']}) died"

        def settled() -> dict[str, dict[str, Any]]:
            ps = {c["name"]: c for c in json.loads(engine.orch("ps", "-a", "-o", "json").stdout)}
            down = all(ps[n]["state"] == "exited" for n in ("web", "quiet", "setuid"))
            up = ps["always"]["state"] == "running" and ps["always"]["pid"] != before["always"]
            return ps if down and up and "fg" not in ps else {}

        ps = wait_for(settled, timeout=30)
        for name in ("web", "quiet", "setuid"):
            assert (ps[name]["exit_code"], ps[name]["error"]) == (137, error), ps[name]
        assert ps["always"]["restart_count"] == 1
        # The foreground run and the exec end: their container is gone.
        assert foreground.wait(timeout=30) == 137
        execd.wait(timeout=30)

        # The host's process table: nothing of the killed containers, nothing
        # with parent 1, and the restarted one is the new supervisor's child.
        gone = [cids[n] for n in ("web", "quiet", "setuid", "fg")]
        assert processes_of(*gone) == []
        # A killed container's PID 1 leaves its cgroup at once, but lives on
        # until every process of its pid namespace is reaped, and an exec'd
        # one was the supervisor's child: orphaned, the host's init reaps it
        # (a lazy init takes its time).
        wait_for(lambda: all(stat(pid) is None for pid in before.values()), timeout=90)
        running = processes_of(cids["always"])
        assert running == [ps["always"]["pid"]]
        assert (stat(running[0]) or ("", 0))[1] == new
        assert [p for p in processes_of(*cids.values()) if (stat(p) or ("", 0))[1] == 1] == []
        # Nothing else of them either: cgroup, mounts, veth, published port.
        for cid in gone:
            assert cgroup_dirs(cid) == []
            assert mounts_of(cid) == []
        links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
        assert f"vo{cids['web'][:10]}" not in links
        rules = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True).stdout
        assert f"dport {port}" not in rules

        # The agent served on, and still does.
        assert engine.info()["agent_pid"] == info["agent_pid"]
        out = engine.orch("run", "--rm", "--network", "none", "busybox", "echo", "still here")
        assert out.stdout == "still here\n"
    finally:
        for proc in (foreground, execd):
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
        engine.orch("rm", "-f", *cids.values(), check=False)


def test_an_agent_that_cannot_start_a_new_supervisor_exits_saying_why(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the agent needs root")
    tag = os.urandom(2).hex()
    eng = Engine(state=tmp_path / "state", run=tmp_path / "run", bridge=f"orchk{tag}",
                 subnet=f"10.218.{int(tag[:2], 16)}.0/24",
                 env={**os.environ, "ORCH_HOST": f"unix://{tmp_path}/run/agent.sock"})
    eng.start()
    info = eng.info()
    containers = eng.state / "containers"
    try:
        # What a new supervisor needs first, its containers directory, is a file now.
        containers.rename(eng.state / "containers.away")
        containers.write_text("not a directory")
        os.kill(info["supervisor_pid"], signal.SIGKILL)
        wait_for(lambda: stat(info["agent_pid"]) is None, timeout=90)
        log = (eng.state / "agent.log").read_text()
        assert "cannot replace the supervisor; the agent exits" in log
        reason = f"could not start a new supervisor: the supervisor failed to start: " \
                 f"orch-supervisor: cannot start: [Errno 17] File exists: '{containers}'"
        assert f"orch: error: {reason}" in log, log  # its last words, the new supervisor's own
    finally:
        containers.unlink(missing_ok=True)
        if (eng.state / "containers.away").exists():
            (eng.state / "containers.away").rename(containers)
        (eng.run / "supervisor.pid").unlink(missing_ok=True)  # the killed one's
        eng.stop_all()
