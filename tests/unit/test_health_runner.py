"""Health checks on the node, without a kernel container: the supervisor's
runner on the recording FakeRuntime with an injected clock (probes are
scheduled, results recorded, timeouts kill, exits stop them), the HTTP
verdict, the CLI's flags and wire form, and the worker's reaction to a
task's health."""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from model.health import HealthCheck
from model.objects import ServiceSpec, Task, TaskState
from nodeagent.cluster.executor import TASK_LABEL, TaskExecutor
from nodeagent.cluster.worker import Worker
from nodeagent.runtime import FakeRuntime
from nodeagent.runtime.spec import ContainerSpec, ProcessSpec, RootfsSpec
from nodeagent.supervisor import wire
from nodeagent.supervisor.health import http_verdict
from nodeagent.supervisor.loop import Conn
from nodeagent.supervisor.records import RUNNING, Record
from nodeagent.supervisor.server import Supervisor
from orch.cli import runcmd
from orch.cli.client import CLIError
from proto import agent_pb2 as pb
from tests.unit.engine_fakes import engine

FAIL = 1 << 8  # a wait status: exited 1


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Runner:
    """A supervisor on the fake runtime, its clock, and a subscriber's socket."""

    def __init__(self, tmp: Path) -> None:
        self.clock = Clock()
        self.runtime = FakeRuntime(clock=self.clock)
        self.sup = Supervisor(str(tmp / "state"), str(tmp / "run"), self.runtime,
                              clock=self.clock, wallclock=self.clock)
        self.sup.containers_dir.mkdir(parents=True)
        self.events_sock, theirs = socket.socketpair()
        self.sup.conns.append(Conn(theirs, subscribed=True))
        self.events_sock.setblocking(False)
        self.reader = wire.Reader()

    def run(self, check: HealthCheck, name: str = "c1") -> Record:
        cid = hashlib.sha256(name.encode()).hexdigest()
        spec = ContainerSpec(id=cid, name=name, hostname=name,
                             bundle_dir=str(self.sup.containers_dir / cid),
                             rootfs=RootfsSpec(lower_dirs=["/nonexistent"]),
                             process=ProcessSpec(args=["sleep", "300"], env=["A=1"]))
        rec = self.sup._create({"spec": spec.to_dict(), "image": "busybox",
                                "healthcheck": check.to_dict()})
        self.start(rec)
        return rec

    def start(self, rec: Record) -> None:
        errors: list[Any] = []
        self.sup._start(rec, errors.append)
        self.sup._on_launch(rec.id)
        assert errors == [None] and rec.state == RUNNING

    def advance(self, seconds: float) -> None:
        self.clock.now += seconds
        self.sup._run_timers()

    def next_due(self) -> float:
        """Seconds from now to the earliest live timer."""
        live = [t for t, seq, _ in self.sup.timers if seq not in self.sup.cancelled]
        return min(live) - self.clock.now

    def execs(self, rec: Record) -> int:
        return self.runtime.calls.count(("exec", rec.id))

    def finish_probe(self, rec: Record, wait_status: int) -> None:
        probe = self.sup.monitors[rec.id].probe
        assert probe is not None
        self.sup.by_pid.pop(probe.pid)(wait_status)  # type: ignore[operator,union-attr]

    def events(self) -> list[dict[str, Any]]:
        try:
            data = self.events_sock.recv(1 << 20)
        except BlockingIOError:
            return []
        return [msg for msg, _ in self.reader.feed(data, []) if msg["event"] == "health_status"]

    def close(self) -> None:
        self.events_sock.close()
        for conn in self.sup.conns:
            conn.sock.close()
        for mon in list(self.sup.monitors.values()):
            self.sup._abort(mon)
        self.sup.sel.close()


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[Runner]:
    r = Runner(tmp_path)
    yield r
    r.close()


def test_probes_follow_the_start_period_then_the_interval(runner: Runner) -> None:
    rec = runner.run(HealthCheck(test=("CMD", "true"), interval=10, start_period=30,
                                 start_interval=1, retries=2))
    assert rec.health == {"status": "starting", "failing_streak": 0, "log": []}
    assert runner.next_due() == pytest.approx(1)  # the first probe after start_interval
    runner.advance(1)
    assert runner.execs(rec) == 1
    runner.advance(0.5)
    runner.finish_probe(rec, FAIL)  # inside the start period: does not count
    assert rec.health is not None
    assert (rec.health["status"], rec.health["failing_streak"]) == ("starting", 0)
    assert runner.next_due() == pytest.approx(1)
    assert runner.events() == []
    runner.advance(1)
    runner.finish_probe(rec, 0)
    assert rec.health["status"] == "healthy"
    assert runner.next_due() == pytest.approx(10)  # after the first success: the interval
    assert runner.events() == [{"event": "health_status", "data": {
        "id": rec.id, "name": "c1", "labels": {}, "status": "healthy", "failing_streak": 0}}]
    for streak in (1, 2):
        runner.advance(10)
        assert runner.execs(rec) == 2 + streak
        runner.finish_probe(rec, FAIL)
        assert rec.health["failing_streak"] == streak
    assert rec.health["status"] == "unhealthy"
    assert [e["data"]["status"] for e in runner.events()] == ["unhealthy"]
    # Every probe's exec runs the check's command with the container's environment.
    assert [r["exit_code"] for r in rec.health["log"]] == [1, 0, 1, 1]
    # Saved on each change: the record on disk says unhealthy.
    saved = (Path(rec.spec.bundle_dir) / "record.json").read_text().splitlines()
    assert '"status": "unhealthy"' in saved[-1]


def test_a_probe_past_its_timeout_is_killed_and_fails(runner: Runner) -> None:
    rec = runner.run(HealthCheck(test=("CMD-SHELL", "sleep 100"), interval=5, timeout=2, retries=1))
    runner.advance(5)
    probe = runner.sup.monitors[rec.id].probe
    assert probe is not None
    assert runner.next_due() == pytest.approx(2)
    runner.advance(2)
    assert ("kill_exec", rec.id) in runner.runtime.calls
    assert rec.health is not None and rec.health["status"] == "unhealthy"
    assert rec.health["log"][-1]["output"] == "Health check exceeded timeout (2s)"
    assert rec.health["log"][-1]["exit_code"] == -1
    # Its late exit is reaped and forgotten: no second result.
    runner.sup.by_pid.pop(probe.pid)(9)  # type: ignore[operator,union-attr]
    assert len(rec.health["log"]) == 1
    assert ("exec_reaped", rec.id) in runner.runtime.calls
    assert runner.next_due() == pytest.approx(5)


def test_an_exit_stops_the_probes_and_a_start_begins_again(runner: Runner) -> None:
    rec = runner.run(HealthCheck(test=("CMD", "true"), interval=1))
    runner.advance(1)
    runner.finish_probe(rec, 0)
    assert rec.health is not None and rec.health["status"] == "healthy"
    runner.advance(1)  # a probe under way when the container exits
    runner.sup._on_exit(rec.id, 0)
    assert rec.id not in runner.sup.monitors
    execs = runner.execs(rec)
    runner.advance(100)
    assert runner.execs(rec) == execs
    runner.start(rec)
    assert rec.health == {"status": "starting", "failing_streak": 0, "log": []}
    runner.advance(1)
    assert runner.execs(rec) == execs + 1


def test_no_address_fails_the_socket_probes(runner: Runner) -> None:
    from model.health import TcpProbe

    rec = runner.run(HealthCheck(tcp=TcpProbe(port=80), interval=1, retries=1))  # network none
    runner.advance(1)
    assert rec.health is not None and rec.health["status"] == "unhealthy"
    assert rec.health["log"][-1]["output"].startswith("no address to probe port 80")
    assert runner.execs(rec) == 0


def test_a_container_without_a_check_has_no_health(runner: Runner) -> None:
    rec = runner.run(HealthCheck(test=("NONE",)))
    assert rec.health is None and not runner.sup.monitors and not runner.sup.timers


@pytest.mark.parametrize(("line", "expected", "ok"), [
    ("HTTP/1.0 200 OK", 0, True), ("HTTP/1.1 302 Found", 0, True), ("HTTP/1.0 404 Not Found", 0, False),
    ("HTTP/1.0 500 Oops", 0, False), ("HTTP/1.0 204 No Content", 204, True),
    ("HTTP/1.0 200 OK", 204, False), ("SSH-2.0-OpenSSH", 0, False), ("", 0, False),
])
def test_http_verdict(line: str, expected: int, ok: bool) -> None:
    code, output = http_verdict(line, expected, "GET http://10.0.0.2:80/")
    assert code == (0 if ok else 1)
    assert output.startswith("GET http://10.0.0.2:80/: ")


def flags(**given: Any) -> dict[str, Any]:
    values: dict[str, Any] = {opt.dest: None for opt in runcmd.OPTIONS}
    values["no_healthcheck"] = False
    values.update(given)
    return values


def test_health_flags_make_the_check() -> None:
    assert runcmd.healthcheck(flags()) is None
    assert runcmd.healthcheck(flags(no_healthcheck=True)) == {"test": ["NONE"]}
    assert runcmd.healthcheck(flags(health_cmd="curl -f localhost", health_interval="1m30s",
                                    health_timeout="500ms", health_retries="4",
                                    health_start_period="0", health_start_interval="2")) == {
        "test": ["CMD-SHELL", "curl -f localhost"], "interval": 90.0, "timeout": 0.5, "retries": 4,
        "start_interval": 2.0}
    # Fields without a command: over the image's.
    assert runcmd.healthcheck(flags(health_retries="5")) == {"test": [], "retries": 5}
    for bad in ({"health_interval": "1d"}, {"health_interval": "10us"}, {"health_retries": "-1"},
                {"no_healthcheck": True, "health_retries": "1"}):
        with pytest.raises(CLIError):
            runcmd.healthcheck(flags(**bad))


@pytest.mark.parametrize("check", [
    {"test": ["NONE"]}, {"test": [], "retries": 5},
    {"test": ["CMD-SHELL", "true"], "interval": 0.2, "timeout": 1.5, "retries": 0, "start_period": 0.0,
     "start_interval": 3.0},
])
def test_encoded_healthcheck_is_what_protobuf_reads(check: dict[str, Any]) -> None:
    got = pb.HealthCheck.FromString(runcmd.encode_healthcheck(check))
    assert list(got.test) == check["test"]
    for key in ("interval", "timeout", "retries", "start_period", "start_interval"):
        assert got.HasField(key) == (key in check), key
        if key in check:
            assert getattr(got, key) == check[key]


def test_the_worker_reports_health_and_replaces_an_unhealthy_task(tmp_path: Path) -> None:
    eng, sup = engine(tmp_path)
    w = Worker(TaskExecutor(eng), "127.0.0.1:1", "t", "n1", "127.0.0.1:2", {}, str(tmp_path))
    task = Task(id="t1", service_id="s", service_name="web", slot=1,
                spec=ServiceSpec(name="web", image="busybox"), desired_state=TaskState.RUNNING)
    w.reconciler.assign({"t1": task}, [], full=True)
    w.reconciler.reconcile({"t1": task})
    _, callback = sup.runs[0]
    callback({"id": "c1", "name": "web.1", "image": "busybox",
              "health": {"status": "starting", "failing_streak": 0, "log": []}}, None)
    status = w.status.last("t1")
    assert status is not None and (status.state, status.health) == (TaskState.RUNNING, "starting")

    event = {"id": "c1", "name": "web.1", "labels": {TASK_LABEL: "t1"}, "failing_streak": 0}
    w.on_event("health_status", {**event, "status": "healthy"})
    status = w.status.last("t1")
    assert status is not None and (status.state, status.health) == (TaskState.RUNNING, "healthy")
    # Another container's, or an engine-mode container's: not this task's.
    w.on_event("health_status", {**event, "id": "c2", "status": "unhealthy"})
    w.on_event("health_status", {**event, "labels": {}, "status": "unhealthy"})
    assert w.status.last("t1").health == "healthy"  # type: ignore[union-attr]

    w.on_event("health_status", {**event, "status": "unhealthy", "failing_streak": 3})

    def failed() -> bool:
        last = w.status.last("t1")
        return last is not None and last.state == TaskState.FAILED

    import time

    deadline = time.monotonic() + 10
    while not failed():
        assert time.monotonic() < deadline, w.status.last("t1")
        time.sleep(0.01)
    last = w.status.last("t1")
    assert last is not None and last.error == "unhealthy container"
    assert [op for op in sup.ops() if op in ("stop", "remove")] == ["stop", "remove"]
    # Its exit, heard after, is not a second failure; nor is it started again.
    w.on_event("exited", {"id": "c1", "labels": {TASK_LABEL: "t1"}, "exit_code": 137})
    w.reconciler.reconcile({"t1": task})
    assert len(sup.runs) == 1 and w.status.last("t1").error == "unhealthy container"  # type: ignore[union-attr]
