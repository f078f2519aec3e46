"""Control-plane log lines name what they are about: a node's session lines
carry the node, a refused, failed or unreadable status report the task, the
API's lines the method and the service, task or node the call names, and
the orchestrator's the service or task it acts on. Real etcd, the real
informer, a real dispatcher behind a real gRPC server; ``capture_logs``
records the lines as structlog hands them to its processors. Also the
rendered shape of a line (``configure_logging``, in a process of its own:
it changes structlog's global configuration)."""

from __future__ import annotations

import dataclasses
import json
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from store_helpers import make_node, make_service, make_task
from structlog.testing import capture_logs
from structlog.typing import EventDict

from common.aioserver import LoopServer
from controlplane.api import ClusterAPI
from controlplane.dispatcher import Dispatcher
from controlplane.orchestrator import Orchestrator
from controlplane.store import Informer, Leadership, Store
from model.objects import Node, RestartPolicy, ServiceSpec, Task, TaskState, TaskStatus
from model.wire import availability_to_pb, spec_to_pb, status_update_to_pb
from proto import cluster_pb2 as cpb
from proto import cluster_pb2_grpc as cpb_grpc

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "join-token"
Logs = list[EventDict]


class Aborted(Exception):
    pass


class Context:
    def is_active(self) -> bool:
        return True

    def abort(self, code: grpc.StatusCode, message: str) -> None:
        raise Aborted(f"{code.name}: {message}")


def wait_for(logs: Logs, event: str, timeout: float = 10.0, **fields: Any) -> EventDict:
    """The first captured line of ``event`` with ``fields``, waiting up to ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        for line in list(logs):
            if line["event"] == event and all(line.get(k) == v for k, v in fields.items()):
                return line
        assert time.monotonic() < deadline, f"no {event!r} line with {fields} in {logs}"
        time.sleep(0.01)


class Agent:
    """One agent session against a dispatcher served over gRPC on loopback."""

    def __init__(self, stub: cpb_grpc.DispatcherStub, name: str) -> None:
        self.outbox: queue.Queue[cpb.AgentMessage | None] = queue.Queue()
        self.registered: queue.Queue[str] = queue.Queue()
        self.outbox.put(cpb.AgentMessage(register=cpb.Register(name=name, address="127.0.0.1:9", cpus=1,
                                                               memory_bytes=1 << 30, token=TOKEN)))
        self.replies = stub.Session(iter(self.outbox.get, None))
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for reply in self.replies:
                if reply.WhichOneof("msg") == "registered":
                    self.registered.put(reply.registered.node_id)
        except grpc.RpcError:
            pass  # the session ended (cancelled by close)

    def report(self, *updates: cpb.TaskStatusUpdate) -> None:
        self.outbox.put(cpb.AgentMessage(status=cpb.StatusBatch(updates=list(updates))))

    def close(self) -> None:
        self.outbox.put(None)
        self.replies.cancel()


@pytest.fixture
def dispatcher(store: Store, informer: Informer) -> Iterator[cpb_grpc.DispatcherStub]:
    servicer = Dispatcher(store, informer, TOKEN)
    server = LoopServer()
    cpb_grpc.add_DispatcherServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield cpb_grpc.DispatcherStub(channel)
    finally:
        channel.close()
        server.stop(grace=0).wait()
        servicer.stop()


def _task_on(store: Store, informer: Informer, node_id: str, state: TaskState) -> Task:
    service = store.create(make_service("web"))
    task = make_task(service, 1, node_id=node_id)
    task = store.create(dataclasses.replace(task, status=TaskStatus(state=state)))
    informer.wait_revision(task.version, 10)
    return task


def test_a_session_logs_with_its_node_and_a_refused_report_names_the_task(
        store: Store, informer: Informer, dispatcher: cpb_grpc.DispatcherStub) -> None:
    with capture_logs() as logs:
        agent = Agent(dispatcher, "node-a")
        try:
            node_id = agent.registered.get(timeout=10)
            started = wait_for(logs, "node session", node="node-a", node_id=node_id)
            assert started["log_level"] == "info"
            task = _task_on(store, informer, node_id, TaskState.RUNNING)
            # A late report (starting, after running) is refused, and said so with the task.
            agent.report(status_update_to_pb(task.id, TaskStatus(state=TaskState.STARTING)))
            refused = wait_for(logs, "task status refused: a task's state never moves back", task_id=task.id)
            assert (refused["task"], refused["service"], refused["node_id"]) == (task.name, "web", node_id)
            assert (refused["state"], refused["reported"]) == ("running", "starting")
            stored = store.get_task(task.id)
            assert stored is not None and stored.status.state == TaskState.RUNNING
            # A state this version cannot read is dropped, on the session's logger.
            unknown = cpb.TaskStatusUpdate(task_id=task.id, status=cpb.TaskStatus(state=99))  # type: ignore[arg-type]
            agent.report(unknown)
            unreadable = wait_for(logs, "unreadable task status", task_id=task.id)
            assert (unreadable["node"], unreadable["node_id"]) == ("node-a", node_id)
            # A failure is written and named.
            agent.report(status_update_to_pb(task.id, TaskStatus(state=TaskState.FAILED, exit_code=3,
                                                                 error="exit status 3")))
            failed = wait_for(logs, "task failed", task_id=task.id)
            assert (failed["task"], failed["exit_code"], failed["log_level"]) == (task.name, 3, "warning")
        finally:
            agent.close()
        wait_for(logs, "node session ended", node="node-a", node_id=node_id)


def test_a_wrong_join_token_is_logged_with_the_node_it_claims(dispatcher: cpb_grpc.DispatcherStub) -> None:
    with capture_logs() as logs:
        replies = dispatcher.Session(iter([cpb.AgentMessage(register=cpb.Register(name="intruder",
                                                                                  token="wrong"))]))
        with pytest.raises(grpc.RpcError) as err:
            next(replies)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    [line] = [e for e in logs if e["event"] == "session refused: wrong join token"]
    assert line["node"] == "intruder" and line["peer"]


def test_api_lines_name_the_method_and_the_object(store: Store, informer: Informer) -> None:
    api = ClusterAPI(store, informer, "r1", is_leader=lambda: True, leader_id=lambda: "r1")
    node = store.create(make_node("n1"))  # registered without an address: unreachable
    informer.wait_revision(node.version, 10)
    spec = ServiceSpec(name="web", image="busybox", replicas=1)
    with capture_logs() as logs:
        [created] = api.Deploy(cpb.DeployRequest(services=[spec_to_pb(spec)]), Context()).services
        api.Deploy(cpb.DeployRequest(services=[spec_to_pb(spec)]), Context())  # unchanged: no line
        api.Scale(cpb.ScaleRequest(service="web", replicas=2), Context())
        api.UpdateNode(cpb.UpdateNodeRequest(node="n1", availability=availability_to_pb("drain")), Context())
        service = store.get_service(created.id)
        assert service is not None
        running = TaskStatus(state=TaskState.RUNNING, container_id="c1")
        task = store.create(dataclasses.replace(make_task(service, 1, node_id=node.id), status=running))
        informer.wait_revision(task.version, 10)
        with pytest.raises(Aborted, match="UNAVAILABLE"):
            list(api.Exec(cpb.TaskExecRequest(task=task.name, command=["sh", "-c", "secret"]), Context()))
        api.RemoveService(cpb.ServiceRef(name="web"), Context())
    lines = [(e["event"], e.get("method"), e.get("service")) for e in logs]
    assert lines == [("service created", "Deploy", "web"), ("service updated", "Scale", "web"),
                     ("node updated", "UpdateNode", None),
                     ("exec refused: the task's node cannot be reached", "Exec", "web"),
                     ("service removed", "RemoveService", "web")]
    assert logs[1]["replicas"] == 2 and logs[0]["service_id"] == created.id
    assert (logs[2]["node"], logs[2]["node_id"], logs[2]["availability"]) == ("n1", node.id, "drain")
    assert (logs[3]["task"], logs[3]["task_id"]) == (task.name, task.id)
    assert "secret" not in json.dumps(logs)


@pytest.fixture
def leadership(store: Store) -> Iterator[Leadership]:
    leadership = store.campaign("controllers", "cp-1", ttl=5)
    assert leadership is not None
    yield leadership
    leadership.resign()


NOW = 1_000_000.0  # the orchestrator's clock: a node that beat at NOW is fresh however slow the test


def test_the_orchestrator_names_the_tasks_it_acts_on(store: Store, informer: Informer,
                                                     leadership: Leadership) -> None:
    up = store.create(dataclasses.replace(make_node("up"), state="ready", last_heartbeat=NOW))
    down = store.create(dataclasses.replace(make_node("down"), state="down"))
    spec = ServiceSpec(name="web", image="busybox", replicas=2,
                       restart_policy=RestartPolicy(condition="any", delay=0.0))
    service = store.create(dataclasses.replace(make_service("web"), spec=spec))
    dead = store.create(dataclasses.replace(make_task(service, 1, node_id=up.id), status=TaskStatus(
        state=TaskState.FAILED, exit_code=1, error="exit status 1")))
    lost = store.create(dataclasses.replace(make_task(service, 2, node_id=down.id),
                                            status=TaskStatus(state=TaskState.RUNNING)))
    informer.wait_revision(lost.version, 10)
    orchestrator = Orchestrator(store, informer, leadership, threading.Event(), clock=lambda: NOW)
    with capture_logs() as logs:
        orchestrator.pass_once()
    orphaned = wait_for(logs, "task orphaned: its node is down", timeout=0, task_id=lost.id)
    assert (orphaned["task"], orphaned["service"], orphaned["node_id"]) == (lost.name, "web", down.id)
    restarted = wait_for(logs, "task replaced after it ended", timeout=0, task_id=dead.id)
    assert (restarted["task"], restarted["state"], restarted["exit_code"]) == (dead.name, "failed", 1)
    assert restarted["attempt"] == 1 and restarted["replacement"].startswith("web.1.")
    summary = wait_for(logs, "service reconciled", timeout=0, service="web")
    assert summary["created"] == 2  # slot 1's restart and slot 2's replacement, both on the live node


def test_a_line_is_one_json_object_with_event_level_logger_and_timestamp() -> None:
    code = ("from common.logging import configure_logging\n"
            "import structlog\n"
            "configure_logging()\n"
            "structlog.get_logger('orch.dispatcher').bind(node='n1').info('node session', address='a')\n"
            "structlog.get_logger('orch.dispatcher').debug('not at info')\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=30,
                         check=True)
    [line] = out.stderr.splitlines()
    record = json.loads(line)
    assert list(record) == ["node", "address", "event", "level", "logger", "timestamp"]
    assert (record["event"], record["level"], record["logger"]) == ("node session", "info", "orch.dispatcher")
    assert record["timestamp"].endswith("Z")


def test_node_fields_are_name_and_id() -> None:
    from controlplane.logctx import object_fields

    node = Node(id="abc", name="n1")
    assert object_fields(node) == {"node": "n1", "node_id": "abc"}
    assert object_fields(object()) == {}


def test_a_running_tasks_health_is_written_though_its_state_stays(
        store: Store, informer: Informer, dispatcher: cpb_grpc.DispatcherStub) -> None:
    agent = Agent(dispatcher, "node-h")
    try:
        node_id = agent.registered.get(timeout=10)
        task = _task_on(store, informer, node_id, TaskState.RUNNING)

        def health() -> str | None:
            stored = store.get_task(task.id)
            assert stored is not None and stored.status.state == TaskState.RUNNING
            return stored.status.health

        for value in ("starting", "healthy", "unhealthy", "healthy"):
            agent.report(status_update_to_pb(task.id, TaskStatus(state=TaskState.RUNNING, health=value)))
            deadline = time.monotonic() + 10
            while health() != value:
                assert time.monotonic() < deadline, f"health {value!r} never written"
                time.sleep(0.01)
        # A failure carries its last word on health too.
        agent.report(status_update_to_pb(task.id, TaskStatus(state=TaskState.FAILED, health="unhealthy",
                                                             error="unhealthy container")))
        deadline = time.monotonic() + 10
        while (stored := store.get_task(task.id)) is None or stored.status.state != TaskState.FAILED:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert (stored.status.health, stored.status.error) == ("unhealthy", "unhealthy container")
    finally:
        agent.close()


def test_a_status_write_that_keeps_conflicting_is_retried_not_dropped(
        store: Store, informer: Informer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Three conflicts in a row (another writer ahead of the informer):
    the report goes back on the queue and the next flush writes it. A node
    reports each change once, so a dropped one would stay lost."""
    from controlplane.store import StoreConflict

    servicer = Dispatcher(store, informer, TOKEN)
    try:
        task = _task_on(store, informer, "node-c", TaskState.ASSIGNED)
        real, calls = store.batch, []

        def conflicting(ops: Any) -> Any:
            calls.append(len(ops))
            if len(calls) <= 3:
                raise StoreConflict("changed since read (injected)")
            return real(ops)

        monkeypatch.setattr(store, "batch", conflicting)
        with capture_logs() as logs:
            with servicer._lock:
                servicer.status.append((task.id, TaskStatus(state=TaskState.RUNNING, timestamp=time.time())))
            servicer._flush_status()
        stored = store.get_task(task.id)
        assert stored is not None and stored.status.state == TaskState.ASSIGNED
        assert [e["event"] for e in logs if e["log_level"] == "warning"] == [
            "task status write conflicted; retrying with the next flush"]
        deadline = time.monotonic() + 10  # the flush loop takes it up again
        while (stored := store.get_task(task.id)) is None or stored.status.state != TaskState.RUNNING:
            assert time.monotonic() < deadline, "the re-queued report was never written"
            time.sleep(0.01)
        assert calls == [1, 1, 1, 1]
    finally:
        servicer.stop()
