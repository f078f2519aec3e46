"""The leader gives addresses on a real etcd: every task its address on each of
its networks in the write that creates it (before any node sees it), every
service a VIP per network (none in dnsrr mode); no two living tasks share an
address; a task that ended gives its address back, for a later task."""

from __future__ import annotations

import dataclasses
import ipaddress
import threading
import time
from collections.abc import Iterator

import pytest

from controlplane.orchestrator import Orchestrator
from controlplane.store import Informer, Leadership, Store
from model.objects import (
    Network,
    NetworkAttachment,
    Node,
    NodeResources,
    RestartPolicy,
    Service,
    ServiceSpec,
    Task,
    TaskNetwork,
    TaskState,
    TaskStatus,
)


@pytest.fixture
def leadership(store: Store) -> Iterator[Leadership]:
    won = store.campaign("controllers", "cp-1", ttl=5)
    assert won is not None
    yield won
    won.resign()


def _nodes(store: Store, n: int) -> list[Node]:
    return [store.create(Node(id=f"node{i}", name=f"n{i}", address=f"10.89.0.{10 + i}:7701", state="ready",
                              last_heartbeat=time.time(), index=i,
                              resources=NodeResources(cpus=8, memory_bytes=1 << 33)))
            for i in range(1, n + 1)]


def _settle(orchestrator: Orchestrator, informer: Informer, store: Store, passes: int = 10) -> None:
    """Passes until one writes nothing (each waits for its own write)."""
    for _ in range(passes):
        before = store.revision()
        orchestrator.pass_once()
        if store.revision() == before:
            return
    raise AssertionError("the orchestrator kept writing")


def _living(store: Store) -> list[Task]:
    return [t for t in store.list_tasks() if not t.status.state.terminal]


def _addresses(tasks: list[Task], network_id: str) -> list[str]:
    return [n.address for t in tasks for n in t.networks if n.network_id == network_id]


def test_tasks_and_vips_get_distinct_addresses_before_any_node_sees_them(
        store: Store, informer: Informer, leadership: Leadership) -> None:
    _nodes(store, 3)
    front = store.create(Network(id="net-front", name="front", subnet="10.96.0.0/24", vni=4096))
    back = store.create(Network(id="net-back", name="back", subnet="10.96.1.0/24", vni=4097))
    web = store.create(Service(id="web", spec=ServiceSpec(
        name="web", image="busybox", replicas=6,
        networks=[NetworkAttachment("front"), NetworkAttachment("back", ["www"])])))
    dns = store.create(Service(id="dns", spec=ServiceSpec(
        name="dns", image="busybox", replicas=2, endpoint_mode="dnsrr",
        networks=[NetworkAttachment("back")])))
    informer.wait_revision(dns.version, 10)
    # Every task write the cache sees: none is ever placed without its addresses.
    seen: list[Task] = []
    informer.add_handler(lambda c: seen.append(c.obj) if isinstance(c.obj, Task) else None)
    orchestrator = Orchestrator(store, informer, leadership, threading.Event())
    _settle(orchestrator, informer, store)

    stored_web = store.get_service(web.id)
    assert stored_web is not None
    assert [v.network_id for v in stored_web.vips] == [front.id, back.id]
    assert store.get_service(dns.id).vips == []  # type: ignore[union-attr]
    tasks = _living(store)
    assert len(tasks) == 8 and all(t.node_id and t.status.state == TaskState.ASSIGNED for t in tasks)
    assert seen and all(len(t.networks) == len(t.spec.networks) for t in seen if t.node_id)
    for t in tasks:
        assert [n.network_id for n in t.networks] == [{"front": front.id, "back": back.id}[a.name]
                                                      for a in t.spec.networks]
    web_task = next(t for t in tasks if t.service_id == web.id)
    assert web_task.networks[1].aliases == ["www"] and web_task.networks[1].name == "back"
    for network in (front, back):
        vips = [v.address for v in stored_web.vips if v.network_id == network.id]
        held = _addresses(tasks, network.id) + vips
        assert len(held) == len(set(held)), held
        subnet = ipaddress.IPv4Network(network.subnet)
        for address in held:
            ip = ipaddress.IPv4Interface(address)
            assert ip.network == subnet and ip.ip not in (subnet[0], subnet[1], subnet[-1])


def test_a_full_network_holds_tasks_back_and_an_ended_task_gives_its_address_back(
        store: Store, informer: Informer, leadership: Leadership) -> None:
    _nodes(store, 2)
    # A /29: five addresses (.2 to .6); the VIP takes one, four tasks the rest.
    net = store.create(Network(id="net-small", name="small", subnet="10.96.9.0/29", vni=4100))
    policy = RestartPolicy(condition="none")
    svc = store.create(Service(id="svc", spec=ServiceSpec(
        name="svc", image="busybox", replicas=4, networks=[NetworkAttachment("small")],
        restart_policy=policy)))
    informer.wait_revision(svc.version, 10)
    orchestrator = Orchestrator(store, informer, leadership, threading.Event())
    _settle(orchestrator, informer, store)
    stored = store.get_service(svc.id)
    assert stored is not None and len(stored.vips) == 1
    first = _living(store)
    held = [*_addresses(first, net.id), stored.vips[0].address]
    assert sorted(held) == [f"10.96.9.{i}/29" for i in range(2, 7)]

    # A fifth replica has no address to take: it waits, saying why, and is not placed.
    scaled = store.update(dataclasses.replace(stored, spec=dataclasses.replace(stored.spec, replicas=5)))
    informer.wait_revision(scaled.version, 10)
    _settle(orchestrator, informer, store)
    [waiting] = [t for t in _living(store) if t.slot == 5]
    assert waiting.status.state == TaskState.PENDING and not waiting.node_id and not waiting.networks
    assert waiting.status.message == "network small (10.96.9.0/29) has no free address"

    # Slot 2's task ends (and, restart condition none, is not replaced): its
    # address is free again, and the waiting task takes it.
    ended = next(t for t in first if t.slot == 2)
    freed = ended.networks[0].address
    done = store.update(dataclasses.replace(ended, status=TaskStatus(TaskState.COMPLETE, timestamp=1.0)))
    informer.wait_revision(done.version, 10)
    _settle(orchestrator, informer, store)
    living = _living(store)
    addresses = _addresses(living, net.id)
    assert len(addresses) == len(set(addresses)) == 4
    took = next(t for t in living if t.slot == 5)
    assert took.networks[0].address == freed and took.node_id and took.status.state == TaskState.ASSIGNED


def test_deleted_tasks_free_their_addresses_and_a_new_leader_never_gives_one_in_use(
        store: Store, informer: Informer, leadership: Leadership) -> None:
    _nodes(store, 1)
    # A /29: .2 to .6.
    net = store.create(Network(id="net-a", name="a", subnet="10.96.3.0/29", vni=4101))
    svc = store.create(Service(id="svc", spec=ServiceSpec(
        name="svc", image="busybox", replicas=3, endpoint_mode="dnsrr", networks=[NetworkAttachment("a")])))
    informer.wait_revision(svc.version, 10)
    orchestrator = Orchestrator(store, informer, leadership, threading.Event())
    _settle(orchestrator, informer, store)
    assert sorted(_addresses(_living(store), net.id)) == ["10.96.3.2/29", "10.96.3.3/29", "10.96.3.4/29"]
    # The service goes: its tasks are stopped, end, and the leader deletes them.
    store.delete(store.get_service(svc.id))  # type: ignore[arg-type]
    informer.wait_revision(store.revision(), 10)
    _settle(orchestrator, informer, store)
    for task in store.list_tasks():
        store.update(dataclasses.replace(task, status=TaskStatus(state=TaskState.SHUTDOWN, timestamp=1.0)))
    informer.wait_revision(store.revision(), 10)
    _settle(orchestrator, informer, store)
    assert store.list_tasks() == [] and informer.addresses_in_use(net.id) == {}
    # Another task holds .5; a new leader (a new allocator) starts after the highest
    # address in use, so it gives .6, then wraps round to .2, a deleted task's; never .5.
    other = ServiceSpec(name="other", image="busybox", networks=[NetworkAttachment("a")])
    keep = store.create(Task(id="keep", service_id="other", service_name="other", slot=1, spec=other,
                             networks=[TaskNetwork(net.id, "a", "10.96.3.5/29")],
                             status=TaskStatus(state=TaskState.RUNNING), node_id="node1"))
    svc2 = store.create(Service(id="svc2", spec=ServiceSpec(
        name="svc2", image="busybox", replicas=2, endpoint_mode="dnsrr", networks=[NetworkAttachment("a")])))
    informer.wait_revision(max(keep.version, svc2.version), 10)
    _settle(Orchestrator(store, informer, leadership, threading.Event()), informer, store)
    got = sorted(t.networks[0].address for t in _living(store) if t.service_id == svc2.id)
    assert got == ["10.96.3.2/29", "10.96.3.6/29"]


def test_a_task_of_a_network_that_does_not_exist_waits_for_it(
        store: Store, informer: Informer, leadership: Leadership) -> None:
    _nodes(store, 1)
    svc = store.create(Service(id="svc", spec=ServiceSpec(
        name="svc", image="busybox", networks=[NetworkAttachment("later")])))
    informer.wait_revision(svc.version, 10)
    orchestrator = Orchestrator(store, informer, leadership, threading.Event())
    _settle(orchestrator, informer, store)
    [task] = _living(store)
    assert (task.status.state, task.node_id) == (TaskState.PENDING, "")
    assert task.status.message == "waiting for network later, which does not exist"
    net = store.create(Network(id="net-later", name="later", subnet="10.96.4.0/24", vni=4102))
    informer.wait_revision(net.version, 10)
    _settle(orchestrator, informer, store)
    [task] = _living(store)
    assert task.status.state == TaskState.ASSIGNED and task.networks[0].network_id == net.id
    assert [v.network_id for v in store.get_service(svc.id).vips] == [net.id]  # type: ignore[union-attr]
