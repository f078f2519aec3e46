"""The Events stream: list + watch in one stream, filtered by service, with
keepalives (real etcd, the real informer and API)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from store_helpers import make_service, make_task

from controlplane.api import ClusterAPI
from controlplane.store import Informer, Store
from model.wire import event_from_pb
from proto import cluster_pb2 as cpb


class Context:
    def __init__(self) -> None:
        self.active = True

    def is_active(self) -> bool:
        return self.active

    def abort(self, code: Any, message: str) -> None:
        raise AssertionError(f"{code}: {message}")


@pytest.fixture
def api(store: Store) -> Iterator[ClusterAPI]:
    informer = Informer(store).start()
    assert informer.wait_synced(10)
    yield ClusterAPI(store, informer, "r1", is_leader=lambda: True, leader_id=lambda: "r1")
    informer.stop()


def _pump(api: ClusterAPI, request: cpb.EventsRequest) -> tuple[queue.Queue[cpb.Event], Context]:
    out: queue.Queue[cpb.Event] = queue.Queue()
    ctx = Context()

    def run() -> None:
        for event in api.Events(request, ctx):  # type: ignore[arg-type]
            out.put(event)

    threading.Thread(target=run, daemon=True).start()
    return out, ctx


def _until(out: queue.Queue[cpb.Event], action: str) -> list[tuple[str, Any]]:
    """The events up to the first of ``action``, as (action, model object)."""
    seen = []
    while True:
        event = event_from_pb(out.get(timeout=10))
        seen.append(event)
        if event[0] == action:
            return seen


def _next(out: queue.Queue[cpb.Event]) -> tuple[str, Any]:
    return event_from_pb(out.get(timeout=10))


def test_initial_state_then_changes_of_the_named_services_only(api: ClusterAPI, store: Store) -> None:
    web, db = store.create(make_service("web", 2)), store.create(make_service("db", 1))
    t1 = store.create(make_task(web, 1))
    store.create(make_task(db, 1))
    api.informer.wait_revision(store.revision(), 10)
    out, ctx = _pump(api, cpb.EventsRequest(services=["web"], initial=True))
    try:
        listed = _until(out, "synced")
        assert sorted(listed[:-1], key=lambda e: e[1].id) == sorted(
            [("put", web), ("put", t1)], key=lambda e: e[1].id)  # whole objects, versions included
        assert listed[-1] == ("synced", None)
        store.create(make_task(db, 2))  # another service's: not sent
        t2 = store.create(make_task(web, 2))
        assert _next(out) == ("put", t2)
        store.delete(t2)
        action, gone = _next(out)
        assert (action, gone.id) == ("delete", t2.id)
    finally:
        ctx.active = False


def test_an_idle_stream_sends_keepalives(api: ClusterAPI) -> None:
    out, ctx = _pump(api, cpb.EventsRequest(keepalive=0.05))
    try:
        assert [_next(out) for _ in range(2)] == [("keepalive", None), ("keepalive", None)]
    finally:
        ctx.active = False


def test_batches_carry_the_same_events_as_they_become_ready(api: ClusterAPI,
                                                            store: Store) -> None:
    """EventBatches: the snapshot and "synced" in one message, then each
    change as it comes; flattened, the same events Events sends."""
    web = store.create(make_service("web", 3))
    tasks = [store.create(make_task(web, i)) for i in (1, 2)]
    api.informer.wait_revision(store.revision(), 10)
    out: queue.Queue[cpb.EventBatch] = queue.Queue()
    ctx = Context()
    request = cpb.EventsRequest(services=["web"], initial=True)

    def run() -> None:
        for batch in api.EventBatches(request, ctx):  # type: ignore[arg-type]
            out.put(batch)

    threading.Thread(target=run, daemon=True).start()
    try:
        first = out.get(timeout=10)
        assert [event_from_pb(e) for e in first.events] == [
            ("put", web), *(("put", t) for t in tasks), ("synced", None)]
        t3 = store.create(make_task(web, 3))
        batch = out.get(timeout=10)
        assert [event_from_pb(e) for e in batch.events] == [("put", t3)]
    finally:
        ctx.active = False


def test_since_replays_the_kept_changes_with_their_times_and_bases(api: ClusterAPI,
                                                                    store: Store) -> None:
    import dataclasses
    import time

    web = store.create(make_service("web", 2))
    api.informer.wait_revision(store.revision(), 10)
    cut = time.time()
    task = store.create(make_task(web, 1))
    moved = store.update(dataclasses.replace(task, node_id="n9"))
    api.informer.wait_revision(store.revision(), 10)
    out, ctx = _pump(api, cpb.EventsRequest(initial=True, since=cut))
    try:
        raw = [out.get(timeout=10) for _ in range(3)]
        # The task's creation (no base: it had no version before), then its
        # move, after the version it moved from; web's creation was earlier.
        assert [(e.base, event_from_pb(e)) for e in raw] == [
            (False, ("put", task)), (True, ("put", task)), (False, ("put", moved))]
        assert cut <= raw[0].time <= raw[2].time <= time.time()
        assert raw[1].time == 0  # a base is not a change
        listed = _until(out, "synced")  # then the state as it is, as without since
        assert ("put", moved) in listed and ("put", web) in listed
    finally:
        ctx.active = False


def test_heartbeats_alone_are_not_kept_for_since(api: ClusterAPI) -> None:
    import dataclasses

    from controlplane.store import Change, Kind
    from model.objects import Node

    hub = api.hub
    node = Node(id="n1", name="n1", state="ready", last_heartbeat=1.0, version=3)
    kept = len(hub._recent)
    hub.fan_out(Change(Kind.NODE, "update", dataclasses.replace(node, last_heartbeat=2.0, version=4), node))
    assert len(hub._recent) == kept
    hub.fan_out(Change(Kind.NODE, "update", dataclasses.replace(node, state="down", version=5), node))
    assert len(hub._recent) == kept + 1
