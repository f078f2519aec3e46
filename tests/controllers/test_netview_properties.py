"""The dispatcher's network view (controlplane.netview), as a property: after
any sequence of store changes, what a node folded from its session's messages
(the full state, then the changes) equals the full state a fresh session would
get. The view is fed the informer's ``Change`` objects directly; its informer
is a real one that was never started (an empty cache)."""

from __future__ import annotations

import queue
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from controlplane.netview import NetworkView
from controlplane.store import Change, Informer, Kind, kind_of
from model.objects import (
    Network,
    NetworkAttachment,
    Node,
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
from nodeagent.network.state import NetworkState
from proto import cluster_pb2 as cpb

NODES = ["n1", "n2", "n3"]
NETS = {"A": ("net-a", "10.96.0.0/24", 4096), "B": ("net-b", "10.96.1.0/24", 4097)}


def _network(name: str) -> Network:
    ident, subnet, vni = NETS[name]
    return Network(id=ident, name=name, subnet=subnet, vni=vni)


def _service(ident: str, nets: list[str], ingress: bool, dnsrr: bool) -> Service:
    spec = ServiceSpec(name=ident, image="busybox",
                       networks=[NetworkAttachment(n, [f"{ident}-{n}"]) for n in nets],
                       ports=[PortConfig(80, 80, mode="ingress" if ingress else "host")],
                       endpoint_mode="dnsrr" if dnsrr else "vip")
    vips = [] if dnsrr else [VirtualIP(NETS[n][0], f"10.96.{i}.2/24") for i, n in enumerate(nets)]
    return Service(id=ident, spec=spec, vips=vips)


def _task(ident: str, service: str, node: str, nets: list[str], state: TaskState, desired: TaskState) -> Task:
    return Task(id=ident, service_id=service, service_name=service, slot=1,
                spec=ServiceSpec(name=service, image="busybox"), node_id=node, desired_state=desired,
                status=TaskStatus(state=state),
                networks=[TaskNetwork(NETS[n][0], n, f"10.96.{i}.{10 + int(ident[1:])}/24") for i, n in
                          enumerate(nets)])


nets = st.lists(st.sampled_from(sorted(NETS)), unique=True, max_size=2)
TASKS = {"t1": ("s1", "n1", ["A"]), "t2": ("s1", "n2", ["A", "B"]), "t3": ("s2", "n1", ["B"]),
         "t4": ("s2", "n3", ["B"])}
states = st.sampled_from([TaskState.PENDING, TaskState.ASSIGNED, TaskState.RUNNING, TaskState.RUNNING,
                          TaskState.FAILED])
desired = st.sampled_from([TaskState.RUNNING, TaskState.RUNNING, TaskState.SHUTDOWN])
# Tasks first: one_of favours its first strategies.
objects = st.one_of(
    # A task keeps its service, node and networks for life: only its states vary
    # (and, before it is placed, its node is not set).
    st.builds(lambda t, placed, state, want: _task(t, *TASKS[t][:1], TASKS[t][1] if placed else "",
                                                   TASKS[t][2], state, want),
              st.sampled_from(sorted(TASKS)), st.booleans(), states, desired),
    st.builds(_service, st.sampled_from(["s1", "s2"]), nets, st.booleans(), st.booleans()),
    st.builds(_network, st.sampled_from(sorted(NETS))),
    st.builds(lambda n, i: Node(id=n, name=n, address=f"10.89.0.{i}:7701", index=i),
              st.sampled_from(NODES), st.integers(1, 3)),
)
steps = st.lists(st.one_of(
    st.tuples(st.just("put"), objects),
    st.tuples(st.just("delete"), objects),
    st.tuples(st.just("session"), st.sampled_from(NODES)),
), max_size=40)


def _fold(state: NetworkState, out: queue.Queue[Any]) -> None:
    while not out.empty():
        msg: cpb.DispatcherMessage = out.get_nowait()
        state.apply(state_update_from_pb(msg.network_state))


def _full(view: NetworkView, node: str) -> NetworkState:
    state = NetworkState()
    state.apply(state_update_from_pb(view.start(node, queue.Queue())))
    return state


@settings(max_examples=1000, deadline=None)
@given(steps)
def test_a_node_folds_its_messages_into_what_a_fresh_session_gets(ops: list[tuple[str, Any]]) -> None:
    view = NetworkView(Informer(None))  # type: ignore[arg-type]
    store: dict[tuple[Kind, str], Any] = {}
    sessions: dict[str, tuple[NetworkState, queue.Queue[Any]]] = {}
    nodes = [Node(id=n, name=n, address=f"10.89.0.{i}:7701", index=i) for i, n in enumerate(NODES, 1)]
    start = [("put", _network("A")), ("put", _network("B")), *(("put", n) for n in nodes),
             ("session", "n1"), ("session", "n2")]
    for op, arg in [*start, *ops]:
        if op == "session":  # (re)connects: the full state, then changes
            out: queue.Queue[Any] = queue.Queue()
            state = NetworkState()
            state.apply(state_update_from_pb(view.start(arg, out)))
            sessions[arg] = (state, out)
            continue
        key = (kind_of(arg), arg.id)
        old = store.get(key)
        if op == "put":
            store[key] = arg
            view.on_change(Change(key[0], "add" if old is None else "update", arg, old))
        elif old is not None:
            del store[key]
            view.on_change(Change(key[0], "delete", old, old))
        for state, out in sessions.values():
            _fold(state, out)
    # What each node has equals a fresh view's full state for it, built from the final objects.
    fresh = NetworkView(Informer(None))  # type: ignore[arg-type]
    for kind in (Kind.NETWORK, Kind.NODE, Kind.SERVICE, Kind.TASK):
        for (k, _), obj in store.items():
            if k == kind:
                fresh.on_change(Change(kind, "add", obj, None))
    for node, (state, _) in sessions.items():
        assert state == _full(fresh, node), node


def test_a_task_being_stopped_or_starting_is_routable_but_does_not_serve() -> None:
    """Endpoints follow a running task: serving while it receives traffic,
    draining while it is being stopped (or its health check has not passed),
    gone once it has stopped."""
    view = NetworkView(Informer(None))  # type: ignore[arg-type]
    for obj in (_network("A"), *(Node(id=n, name=n, address=f"10.89.0.{i}:7701", index=i)
                                  for i, n in enumerate(NODES, 1)), _service("s1", ["A"], False, False)):
        view.on_change(Change(kind_of(obj), "add", obj, None))
    old = None
    for state, want, health, expected in [
            (TaskState.RUNNING, TaskState.RUNNING, "starting", [True]),
            (TaskState.RUNNING, TaskState.RUNNING, "healthy", [False]),
            (TaskState.RUNNING, TaskState.SHUTDOWN, "healthy", [True]),
            (TaskState.SHUTDOWN, TaskState.SHUTDOWN, "", [])]:
        task = _task("t1", "s1", "n1", ["A"], state, want)
        task.status.health = health
        view.on_change(Change(Kind.TASK, "add" if old is None else "update", task, old))
        old = task
        assert [e.draining for e in _full(view, "n1").endpoints.values()] == expected, (state, want, health)
