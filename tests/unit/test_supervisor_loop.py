"""The supervisor's loop as a real process (with the recording FakeRuntime,
so no kernel container is needed): a huge stop timeout does not end it, and
when it is killed, the agent's client reconnects to its successor, which
reports the container killed with it."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from common.errors import AgentError
from nodeagent.agent.events import EventHub
from nodeagent.runtime.spec import ContainerSpec, ProcessSpec, RootfsSpec
from nodeagent.supervisor import SupervisorClient

ROOT = Path(__file__).resolve().parents[2]
SERVE = """
import sys
from nodeagent.runtime import FakeRuntime
from nodeagent.supervisor.server import Supervisor
Supervisor(sys.argv[1], sys.argv[2], FakeRuntime()).serve()
"""


def wait_for(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


class Supervisors:
    """Supervisor processes on one state and run dir, started in turn."""

    def __init__(self, root: Path) -> None:
        self.state, self.run = root / "state", root / "run"
        self.log = root / "supervisor.log"
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def socket(self) -> str:
        return str(self.run / "supervisor.sock")

    def start(self) -> subprocess.Popen[bytes]:
        with open(self.log, "ab") as log:
            proc = subprocess.Popen([sys.executable, "-c", SERVE, str(self.state), str(self.run)],
                                    stdout=log, stderr=log, cwd=ROOT)
        self.procs.append(proc)

        def answers() -> bool:
            assert proc.poll() is None, self.log.read_text()
            pid_file = self.run / "supervisor.pid"
            return pid_file.exists() and pid_file.read_text() == str(proc.pid)

        wait_for(answers)
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


@pytest.fixture
def supervisors(tmp_path: Path) -> Iterator[Supervisors]:
    sups = Supervisors(tmp_path)
    try:
        yield sups
    finally:
        sups.stop()


def record(sups: Supervisors, name: str) -> dict[str, Any]:
    cid = hashlib.sha256(name.encode()).hexdigest()
    spec = ContainerSpec(id=cid, name=name, hostname=name,
                         bundle_dir=str(sups.state / "containers" / cid),
                         rootfs=RootfsSpec(lower_dirs=["/nonexistent"]),
                         process=ProcessSpec(args=["sleep", "300"]))
    return {"spec": spec.to_dict(), "image": "busybox"}


@pytest.mark.parametrize("timeout", [float("inf"), 99999999999999 * 3600.0, 1e308])
def test_a_huge_stop_timeout_does_not_end_the_loop(supervisors: Supervisors,
                                                   timeout: float) -> None:
    proc = supervisors.start()
    client = SupervisorClient(supervisors.socket)
    try:
        cid = client.call("run", record=record(supervisors, "huge"))["id"]
        answered = threading.Event()
        # The stop waits for an exit the fake never reports: no answer is due.
        client.call_async("stop", lambda *_: answered.set(), id=cid, timeout=timeout)
        client.call_async("stop", lambda *_: answered.set(), id=cid, timeout=-timeout)
        assert client.call("ping", wait_timeout=10)["pid"] == proc.pid
        assert client.call("get", id=cid, wait_timeout=10)["state"] == "running"
        assert proc.poll() is None
        assert not answered.is_set()
    finally:
        client.close()


def test_the_client_reconnects_to_the_next_supervisor(supervisors: Supervisors) -> None:
    first = supervisors.start()
    hub = EventHub()
    seen: list[tuple[str, dict[str, Any]]] = []
    hub.listeners.append(lambda event, data: seen.append((event, data)))
    client = SupervisorClient(supervisors.socket, on_event=hub)
    try:
        client.call("subscribe", events=["started", "exited"])
        cid = client.call("run", record=record(supervisors, "before"))["id"]
        os.kill(first.pid, signal.SIGKILL)
        wait_for(lambda: hub.disconnected)
        with pytest.raises(AgentError):
            client.call("ping")
        second = supervisors.start()
        client.reconnect()
        assert not hub.disconnected
        info = client.call("ping")
        assert info["pid"] == second.pid
        killed = {r["id"]: r for r in info["killed"]}
        assert killed[cid]["state"] == "exited"
        assert killed[cid]["exit_code"] == 137
        assert killed[cid]["error"] == f"killed: its supervisor (pid {first.pid}) died"
        # The subscription was made again: the new supervisor's events come.
        after = client.call("run", record=record(supervisors, "after"))["id"]
        wait_for(lambda: ("started", after) in [(e, d.get("id")) for e, d in seen])
        events = [e for e, _ in seen]
        assert events.index("disconnected") < events.index("connected")
    finally:
        client.close()
