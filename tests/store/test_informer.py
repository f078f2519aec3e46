"""Informer against a real etcd: convergence, indexes, handlers, surviving a restart."""

from __future__ import annotations

import dataclasses
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import TypeVar

from store_helpers import make_node, make_service, make_task

from controlplane.etcd import EmbeddedEtcd
from controlplane.store import Change, Informer, Kind, Op, Store, StoreUnavailable
from model.objects import Service, Task

T = TypeVar("T")


def _retry(write: Callable[[], T]) -> T:
    """Writes are not retried by the store (a caller decides again); here the decision is fixed."""
    for _ in range(50):
        try:
            return write()
        except StoreUnavailable:
            time.sleep(0.1)
    return write()


def _assert_matches_store(informer: Informer, store: Store) -> None:
    snapshot, revision = store.list_all()
    assert informer.wait_revision(revision, 10)
    for kind in Kind:
        assert {o.id: o for o in informer.list_kind(kind)} == snapshot[kind]
    by_service: dict[str, set[str]] = defaultdict(set)
    by_node: dict[str, set[str]] = defaultdict(set)
    for task in snapshot[Kind.TASK].values():
        assert isinstance(task, Task)
        by_service[task.service_id].add(task.id)
        by_node[task.node_id].add(task.id)
    for service_id, ids in by_service.items():
        assert {t.id for t in informer.tasks_of_service(service_id)} == ids
    for node_id, ids in by_node.items():
        assert {t.id for t in informer.tasks_of_node(node_id)} == ids
    assert set(informer._by_service.groups) == set(by_service)  # no empty groups left behind
    assert set(informer._by_node.groups) == set(by_node)


def test_informer_converges_after_a_burst_of_1000_writes(store: Store) -> None:
    rng = random.Random(7)
    nodes = store.batch([Op.create(make_node(f"n{i}")) for i in range(5)])
    services = store.batch([Op.create(make_service(f"s{i}", replicas=10)) for i in range(4)])
    seen: Counter[tuple[Kind, str]] = Counter()
    informer = Informer(store)
    informer.add_handler(lambda c: seen.update([(c.kind, c.type)]))
    with informer:
        assert informer.wait_synced(10)
        assert len(informer.nodes()) == 5 and len(informer.services()) == 4
        tasks: dict[str, Task] = {}
        writes = 0
        while writes < 1000:  # creates, node moves and deletes, in batches of varying size
            ops: list[Op] = []
            for _ in range(rng.randint(1, 40)):
                roll = rng.random()
                if roll < 0.5 or len(tasks) < 20:
                    svc = rng.choice(services)
                    assert isinstance(svc, Service)
                    ops.append(Op.create(make_task(svc, rng.randint(1, 10))))
                else:
                    task = tasks.pop(rng.choice(sorted(tasks)))
                    if any(op.obj.id == task.id for op in ops):
                        continue
                    if roll < 0.85:
                        node = rng.choice(nodes)
                        assert node is not None
                        ops.append(Op.update(dataclasses.replace(task, node_id=node.id)))
                    else:
                        ops.append(Op.delete(task))
            for result in store.batch(ops):
                if isinstance(result, Task):
                    tasks[result.id] = result
            writes += len(ops)
        _assert_matches_store(informer, store)
        assert informer.relists == 1
    assert seen[(Kind.TASK, "add")] >= 500
    assert seen[(Kind.TASK, "update")] > 0 and seen[(Kind.TASK, "delete")] > 0


def test_handlers_see_old_and_new_objects(store: Store) -> None:
    changes: list[Change] = []
    with Informer(store) as informer:
        informer.add_handler(changes.append)
        assert informer.wait_synced(10)
        node = store.create(make_node())
        ready = store.update(dataclasses.replace(node, state="ready"))
        store.delete(ready)
        assert informer.wait_revision(store.revision(), 10)
    assert [(c.type, c.old, c.obj) for c in changes] == [
        ("add", None, node), ("update", node, ready), ("delete", ready, ready)]


def test_informer_survives_an_etcd_restart_by_relisting(etcd: EmbeddedEtcd, store: Store) -> None:
    svc = store.create(make_service())
    kept = store.create(make_task(svc, 1, "n1"))
    with Informer(store, retry_delay=0.1) as informer:
        assert informer.wait_synced(10)
        etcd.stop()
        etcd.start()  # same data dir, same ports
        # Written while the informer re-lists; a write may find the connection still down.
        moved = _retry(lambda: store.update(dataclasses.replace(kept, node_id="n2")))
        added = _retry(lambda: store.create(make_task(svc, 2, "n1")))
        _assert_matches_store(informer, store)
        assert informer.relists >= 2
        assert [t.id for t in informer.tasks_of_node("n1")] == [added.id]
        assert informer.get(Kind.TASK, kept.id) == moved
        assert informer.tasks_of_node("n2") == [moved]
