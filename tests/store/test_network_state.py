"""What the dispatcher tells each node of service networking, over a real
session (a real dispatcher on loopback gRPC, real etcd and informer): the
full state first, then changes; a task's endpoint appears while it runs and
goes when it stops or moves; a node learns the networks of its tasks, and
those of every service with an ingress port; every node gets a small unique
index, kept when it registers again. The node folds the messages as its
session does (``nodeagent.cluster.netstate`` into a ``NetworkState``)."""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest

from common.aioserver import LoopServer
from controlplane.dispatcher import Dispatcher
from controlplane.store import Informer, Store
from model.objects import (
    Network,
    NetworkAttachment,
    PortConfig,
    Service,
    ServiceSpec,
    Task,
    TaskNetwork,
    TaskState,
    TaskStatus,
    VirtualIP,
)
from nodeagent.cluster.netstate import state_update_from_pb
from nodeagent.network.state import NetworkState, endpoint_key
from proto import cluster_pb2 as cpb
from proto import cluster_pb2_grpc as cpb_grpc

TOKEN = "join-token"


class Agent:
    """One node's session: registers, then folds every network state message."""

    def __init__(self, stub: cpb_grpc.DispatcherStub, name: str, address: str, node_id: str = "") -> None:
        self.outbox: queue.Queue[cpb.AgentMessage | None] = queue.Queue()
        self.registered: queue.Queue[str] = queue.Queue()
        self.state = NetworkState()
        self.kinds: list[str] = []  # the messages' kinds, in order, "full" for a full network state
        self.lock = threading.Lock()
        self.outbox.put(cpb.AgentMessage(register=cpb.Register(
            node_id=node_id, name=name, address=address, cpus=1, memory_bytes=1 << 30, token=TOKEN)))
        self.replies = stub.Session(iter(self.outbox.get, None))
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for reply in self.replies:
                kind = reply.WhichOneof("msg")
                with self.lock:
                    if kind == "registered":
                        self.registered.put(reply.registered.node_id)
                    elif kind == "network_state":
                        kind = "full" if reply.network_state.full else kind
                        self.state.apply(state_update_from_pb(reply.network_state))
                    self.kinds.append(str(kind))
        except grpc.RpcError:
            pass  # the session ended

    def wait(self, check: Callable[[NetworkState], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                if check(self.state):
                    return
                snapshot = (dict(self.state.networks), dict(self.state.services), dict(self.state.endpoints))
            assert time.monotonic() < deadline, f"not reached; the node has {snapshot}"
            time.sleep(0.01)

    def close(self) -> None:
        self.outbox.put(None)
        self.replies.cancel()


def _serve(store: Store, informer: Informer) -> tuple[cpb_grpc.DispatcherStub, Callable[[], None]]:
    servicer = Dispatcher(store, informer, TOKEN)
    server = LoopServer()
    cpb_grpc.add_DispatcherServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")

    def stop() -> None:
        channel.close()
        server.stop(grace=0).wait()
        servicer.stop()

    return cpb_grpc.DispatcherStub(channel), stop


@pytest.fixture
def stub(store: Store, informer: Informer) -> Iterator[cpb_grpc.DispatcherStub]:
    stub, stop = _serve(store, informer)
    yield stub
    stop()


@pytest.fixture
def agents(stub: cpb_grpc.DispatcherStub) -> Iterator[Callable[..., Agent]]:
    made: list[Agent] = []

    def agent(name: str, host: str, node_id: str = "") -> Agent:
        made.append(Agent(stub, name, f"{host}:7701", node_id))
        return made[-1]

    yield agent
    for a in made:
        a.close()


def _net(store: Store, name: str, subnet: str, vni: int) -> Network:
    return store.create(Network(id=f"id-{name}", name=name, subnet=subnet, vni=vni))


def _service(store: Store, name: str, network: Network, vip: str, **spec: Any) -> Service:
    return store.create(Service(id=f"svc-{name}", spec=ServiceSpec(
        name=name, image="busybox", networks=[NetworkAttachment(network.name, [f"{name}-alias"])], **spec),
        vips=[VirtualIP(network.id, vip)] if vip else []))


def _task(store: Store, service: Service, slot: int, node_id: str, network: Network, address: str,
          state: TaskState = TaskState.ASSIGNED) -> Task:
    return store.create(Task(
        id=f"{service.spec.name}-{slot}-{node_id}", service_id=service.id, service_name=service.spec.name,
        slot=slot, spec=service.spec, node_id=node_id, status=TaskStatus(state=state),
        networks=[TaskNetwork(network.id, network.name, address)]))


def _set(store: Store, task: Task, state: TaskState, desired: TaskState = TaskState.RUNNING) -> Task:
    current = store.get_task(task.id)
    assert current is not None
    return store.update(dataclasses.replace(current, desired_state=desired,
                                            status=TaskStatus(state=state, timestamp=time.time())))


def test_the_full_state_then_endpoints_while_tasks_run(store: Store, agents: Callable[..., Agent]) -> None:
    a, b = agents("a", "10.89.0.11"), agents("b", "10.89.0.12")
    a_id, b_id = a.registered.get(timeout=10), b.registered.get(timeout=10)
    net = _net(store, "back", "10.96.1.0/24", 4097)
    api = _service(store, "api", net, "10.96.1.2/24")
    t1 = _task(store, api, 1, a_id, net, "10.96.1.3/24")
    t2 = _task(store, api, 2, b_id, net, "10.96.1.4/24")
    # Each node learns the network and the service (with its VIP and aliases), and every peer.
    for agent in (a, b):
        agent.wait(lambda s: set(s.networks) == {net.id} and set(s.services) == {api.id})
        agent.wait(lambda s: {(p.node_id, p.address) for p in s.peers.values()} == {
            (a_id, "10.89.0.11"), (b_id, "10.89.0.12")})
    route = a.state.services[api.id]
    assert (route.name, route.endpoint_mode, route.ports) == ("api", "vip", ())
    assert [(n.network_id, n.vip, n.aliases) for n in route.networks] == [
        (net.id, "10.96.1.2", ("api-alias",))]
    assert a.state.networks[net.id].vni == 4097 and a.state.endpoints == {}  # nothing runs yet
    assert {p.index for p in a.state.peers.values()} == {1, 2}
    # t1 runs: its endpoint reaches both nodes.
    _set(store, t1, TaskState.RUNNING)
    key1 = endpoint_key(t1.id, net.id)
    for agent in (a, b):
        agent.wait(lambda s: set(s.endpoints) == {key1})
    ep = b.state.endpoints[key1]
    assert (ep.address, ep.node_id, ep.service_id, ep.name, ep.slot) == (
        "10.96.1.3", a_id, api.id, t1.name, 1)
    _set(store, t2, TaskState.RUNNING)
    a.wait(lambda s: len(s.endpoints) == 2)
    # t1 is stopped: it stops serving at once (desired shutdown), before it has even exited, and
    # stays routable (draining) while it runs: connections made to it end as they would.
    _set(store, t1, TaskState.RUNNING, desired=TaskState.SHUTDOWN)
    for agent in (a, b):
        agent.wait(lambda s: {k for k, e in s.endpoints.items() if not e.draining}
                   == {endpoint_key(t2.id, net.id)} and s.endpoints[key1].draining)
    # ... and once it has ended, a runs nothing on the network: it forgets it, and the service.
    _set(store, t1, TaskState.SHUTDOWN, desired=TaskState.SHUTDOWN)
    a.wait(lambda s: s.networks == {} and s.services == {} and s.endpoints == {})
    b.wait(lambda s: set(s.networks) == {net.id} and len(s.endpoints) == 1)
    # The first network message of each session was the full state, before the assignments.
    assert a.kinds[:3] == ["registered", "full", "assignments"]


def test_only_healthy_tasks_are_endpoints(store: Store, agents: Callable[..., Agent]) -> None:
    """A task with a health check gets traffic once healthy, none while
    starting or unhealthy (it is routable, draining, meanwhile); one without
    a check, once it runs."""
    a = agents("a", "10.89.0.11")
    a_id = a.registered.get(timeout=10)
    net = _net(store, "h", "10.96.3.0/24", 4099)
    svc = _service(store, "api", net, "10.96.3.2/24")
    checked = _task(store, svc, 1, a_id, net, "10.96.3.3/24")
    plain = _task(store, svc, 2, a_id, net, "10.96.3.4/24", TaskState.RUNNING)
    a.wait(lambda s: {e.address for e in s.endpoints.values() if not e.draining} == {"10.96.3.4"})

    def health(value: str) -> None:
        current = store.get_task(checked.id)
        assert current is not None
        store.update(dataclasses.replace(current, status=TaskStatus(state=TaskState.RUNNING, health=value)))

    for value, addresses in (("starting", {"10.96.3.4"}), ("healthy", {"10.96.3.3", "10.96.3.4"}),
                             ("unhealthy", {"10.96.3.4"}), ("healthy", {"10.96.3.3", "10.96.3.4"})):
        health(value)
        # Serving; the other runs, routable but drained of traffic.
        a.wait(lambda s, addresses=addresses: {e.address for e in s.endpoints.values()
                                               if not e.draining} == addresses
               and {e.address for e in s.endpoints.values()} == {"10.96.3.3", "10.96.3.4"})
    assert plain.status.health == ""


def test_a_moved_task_moves_its_endpoint(store: Store, agents: Callable[..., Agent]) -> None:
    a, b = agents("a", "10.89.0.11"), agents("b", "10.89.0.12")
    a_id, b_id = a.registered.get(timeout=10), b.registered.get(timeout=10)
    net = _net(store, "n", "10.96.2.0/24", 4098)
    svc = _service(store, "web", net, "10.96.2.2/24")
    old = _task(store, svc, 1, a_id, net, "10.96.2.3/24", TaskState.RUNNING)
    _task(store, svc, 2, b_id, net, "10.96.2.4/24", TaskState.RUNNING)
    b.wait(lambda s: len(s.endpoints) == 2)
    # Node a goes: its task is orphaned, a replacement runs on b.
    _set(store, old, TaskState.ORPHANED)
    new = _task(store, svc, 1, b_id, net, "10.96.2.5/24", TaskState.RUNNING)
    b.wait(lambda s: {e.address for e in s.endpoints.values()} == {"10.96.2.4", "10.96.2.5"})
    assert b.state.endpoints[endpoint_key(new.id, net.id)].node_id == b_id


def test_every_node_reaches_a_service_with_an_ingress_port(store: Store,
                                                           agents: Callable[..., Agent]) -> None:
    a, b = agents("a", "10.89.0.11"), agents("b", "10.89.0.12")
    a_id, _ = a.registered.get(timeout=10), b.registered.get(timeout=10)
    mesh = _net(store, "mesh", "10.96.3.0/24", 4099)
    private = _net(store, "private", "10.96.4.0/24", 4100)
    web = _service(store, "web", mesh, "10.96.3.2/24", ports=[PortConfig(8080, 80)])
    db = _service(store, "db", private, "10.96.4.2/24", ports=[PortConfig(5432, 5432, mode="host")])
    _task(store, web, 1, a_id, mesh, "10.96.3.3/24", TaskState.RUNNING)
    _task(store, db, 1, a_id, private, "10.96.4.3/24", TaskState.RUNNING)
    # b runs nothing, yet it has the ingress service's network, route and endpoint; not the other's.
    b.wait(lambda s: set(s.networks) == {mesh.id} and set(s.services) == {web.id} and len(s.endpoints) == 1)
    ports = b.state.services[web.id].ports
    assert [(p.published, p.target, p.mode) for p in ports] == [(8080, 80, "ingress")]
    a.wait(lambda s: set(s.networks) == {mesh.id, private.id} and set(s.services) == {web.id, db.id})
    assert a.state.services[db.id].ports[0].mode == "host"
    # A node that joins later gets it all in its full state.
    c = agents("c", "10.89.0.13")
    c.registered.get(timeout=10)
    c.wait(lambda s: set(s.networks) == {mesh.id} and len(s.endpoints) == 1 and len(s.peers) == 3)
    assert c.kinds[1] == "full"
    # The port becomes host-only: the others forget the network.
    current = store.get_service(web.id)
    assert current is not None
    store.update(dataclasses.replace(current, spec=dataclasses.replace(
        current.spec, ports=[PortConfig(8080, 80, mode="host")])))
    for agent in (b, c):
        agent.wait(lambda s: s.networks == {} and s.services == {} and s.endpoints == {})


def test_node_indexes_are_unique_and_kept(store: Store, stub: cpb_grpc.DispatcherStub,
                                          agents: Callable[..., Agent]) -> None:
    # Two replicas' dispatchers, each with its own cache, register nodes at once.
    other_informer = Informer(store).start()
    assert other_informer.wait_synced(10)
    other, stop = _serve(store, other_informer)
    sessions: list[Agent] = []
    try:
        sessions = [Agent(other if i % 2 else stub, f"n{i}", f"10.89.0.{20 + i}:7701") for i in range(6)]
        ids = [s.registered.get(timeout=20) for s in sessions]
        indexes = {n.id: n.index for n in store.list_nodes()}
        assert sorted(indexes[i] for i in ids) == [1, 2, 3, 4, 5, 6]
        sessions[0].close()
        again = agents("n0", "10.89.0.20", node_id=ids[0])  # the node comes back
        assert again.registered.get(timeout=10) == ids[0]
        node = store.get_node(ids[0])
        assert node is not None and node.index == indexes[ids[0]]
    finally:
        for s in sessions:
            s.close()
        stop()
        other_informer.stop()
