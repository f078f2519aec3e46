"""TaskStats with a real etcd, informer and cluster API, and the nodes'
agents as small gRPC servers on loopback that answer like agents do
(mutual TLS with node certificates from a test CA, behind the node API's
guard): the running tasks are grouped by node, each
node is asked once, a node that cannot be read is named in ``unreachable``
(never an error of the call), an agent without StatsAll is read with Stats,
and an unknown service is NOT_FOUND with its name."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from store_helpers import make_node, make_service, make_task

from common import pki, tls
from controlplane.api import ClusterAPI
from controlplane.store import Store
from controlplane.trust import issue_local
from model.objects import TaskState, TaskStatus
from proto import agent_pb2 as pb
from proto import agent_pb2_grpc as pb_grpc
from proto import cluster_pb2 as cpb

PREFIX = "/orch.agent.v1.Agent/"
CA = pki.new_ca("c1", time.time())


class Aborted(Exception):
    def __init__(self, code: Any, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


class _Context:
    """What TaskStats uses of a servicer context."""

    def is_active(self) -> bool:
        return True

    def abort(self, code: Any, message: str) -> None:
        raise Aborted(code, message)


def Context() -> Any:  # a servicer context, as far as the API can tell
    return _Context()


class FakeAgent(pb_grpc.AgentServicer):
    """Answers for any container id: its figures say which id they are for."""

    def __init__(self, release: threading.Event | None = None) -> None:
        self.calls: list[tuple[str, list[str]]] = []
        self.release = release  # a node that hangs until the test ends

    def _stats(self, cid: str) -> pb.StatsResponse:
        return pb.StatsResponse(id=cid, cpu_usage_ns=len(cid), memory_usage_bytes=4096,
                                network_rx_bytes=10, time=1000.0)

    def StatsAll(self, request: pb.StatsAllRequest, context: Any) -> pb.StatsAllResponse:
        self.calls.append(("StatsAll", list(request.ids)))
        if self.release is not None:
            self.release.wait(30)
        return pb.StatsAllResponse(stats=[self._stats(c) for c in request.ids if c != "gone"])

    def Stats(self, request: pb.ContainerRef, context: Any) -> pb.StatsResponse:
        self.calls.append(("Stats", [request.id]))
        if request.id == "gone":
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, "container gone is not running")
        return self._stats(request.id)


def serve(agent: FakeAgent, methods: tuple[str, ...]) -> tuple[Any, str]:
    """The agent behind the node API's guard: ``methods`` only, for control planes."""
    guard = tls.PeerGuard("c1", {PREFIX + m: ("controlplane",) for m in methods})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), interceptors=[guard])
    pb_grpc.add_AgentServicer_to_server(agent, server)  # type: ignore[no-untyped-call]
    creds = tls.ServerTLS(CA.cert_pem, *issue_local(CA, "n", "node")).credentials()
    port = server.add_secure_port("127.0.0.1:0", creds)
    server.start()
    return server, f"127.0.0.1:{port}"


@pytest.fixture
def api(store: Store) -> Iterator[ClusterAPI]:
    from controlplane.store import Informer

    informer = Informer(store).start()
    assert informer.wait_synced(10)
    api = ClusterAPI(store, informer, "r1", is_leader=lambda: True, leader_id=lambda: "r1",
                     node_tls=tls.ServerTLS(CA.cert_pem, *issue_local(CA, "r1", "controlplane")))
    api.stats.timeout = 0.5  # the hanging node's deadline: the test need not wait 2 s for it
    yield api
    informer.stop()


def test_each_node_is_asked_once_and_failures_are_named(api: ClusterAPI, store: Store) -> None:
    release = threading.Event()
    current, old, hung = FakeAgent(), FakeAgent(), FakeAgent(release)
    servers = [serve(current, ("Logs", "Exec", "Stats", "StatsAll")),
               serve(old, ("Logs", "Exec", "Stats")),  # an agent from before StatsAll
               serve(hung, ("Stats", "StatsAll"))]
    try:
        nodes = [store.create(dataclasses.replace(make_node(name), address=address,
                                                  state="ready"))
                 for name, (_, address) in zip(("n1", "n2", "n3"), servers, strict=True)]
        nodes.append(store.create(dataclasses.replace(make_node("n4"), state="down")))  # no address
        web, db = store.create(make_service("web", 5)), store.create(make_service("db", 1))

        def running(service: Any, slot: int, node: Any, cid: str,
                    state: TaskState = TaskState.RUNNING) -> Any:
            task = dataclasses.replace(make_task(service, slot, node.id),
                                       status=TaskStatus(state=state, container_id=cid))
            return store.create(task)

        tasks = [running(web, 1, nodes[0], "c-one"), running(web, 2, nodes[0], "c-two"),
                 running(web, 3, nodes[1], "c-three"), running(web, 4, nodes[1], "gone"),
                 running(web, 5, nodes[2], "c-five"),
                 running(web, 6, nodes[0], "c-starting", TaskState.STARTING),  # not running yet
                 running(db, 1, nodes[3], "c-db")]
        api.informer.wait_revision(tasks[-1].version, 10)

        answer = api.TaskStats(cpb.TaskStatsRequest(services=["web"]), Context())
        got = {(t.task, t.node, t.service, t.stats.id) for t in answer.tasks}
        assert got == {(tasks[0].name, "n1", "web", "c-one"), (tasks[1].name, "n1", "web", "c-two"),
                       (tasks[2].name, "n2", "web", "c-three")}
        assert all(t.stats.cpu_usage_ns == len(t.stats.id) and t.stats.time == 1000.0 for t in answer.tasks)
        assert current.calls == [("StatsAll", ["c-one", "c-two"])]  # once, for both of its tasks
        # The old agent refused StatsAll before it ran; each task was read with Stats.
        assert old.calls == [("Stats", ["c-three"]), ("Stats", ["gone"])]
        assert [u.split(":")[0] for u in answer.unreachable] == ["n3"]
        assert "no answer" in answer.unreachable[0] or "deadline" in answer.unreachable[0].lower()

        everything = api.TaskStats(cpb.TaskStatsRequest(), Context())
        assert {t.service for t in everything.tasks} == {"web"}
        assert sorted(u.split(":")[0] for u in everything.unreachable) == ["n3", "n4"]
        assert "has no address" in next(u for u in everything.unreachable if u.startswith("n4"))

        with pytest.raises(Aborted) as aborted:
            api.TaskStats(cpb.TaskStatsRequest(services=["web", "nosuch"]), Context())
        assert aborted.value.code == grpc.StatusCode.NOT_FOUND and "nosuch" in aborted.value.message
    finally:
        release.set()
        for server, _ in servers:
            server.stop(None)


def test_no_running_task_is_an_empty_answer(api: ClusterAPI, store: Store) -> None:
    svc = store.create(make_service("idle", 0))
    api.informer.wait_revision(svc.version, 10)
    answer = api.TaskStats(cpb.TaskStatsRequest(services=["idle"]), Context())
    assert list(answer.tasks) == [] and list(answer.unreachable) == []
