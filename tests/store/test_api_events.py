"""The Events stream: list + watch in one stream, filtered by service, with
keepalives (real etcd, the real informer and API)."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from store_helpers import make_service, make_task

from controlplane.api import ClusterAPI
from controlplane.store import Informer, Store
from model.objects import to_dict
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


def _until(out: queue.Queue[cpb.Event], action: str) -> list[cpb.Event]:
    seen = []
    while True:
        event = out.get(timeout=10)
        seen.append(event)
        if event.action == action:
            return seen


def test_initial_state_then_changes_of_the_named_services_only(api: ClusterAPI, store: Store) -> None:
    web, db = store.create(make_service("web", 2)), store.create(make_service("db", 1))
    t1 = store.create(make_task(web, 1))
    store.create(make_task(db, 1))
    api.informer.wait_revision(store.revision(), 10)
    out, ctx = _pump(api, cpb.EventsRequest(services=["web"], initial=True))
    try:
        listed = _until(out, "synced")
        assert {(e.kind, e.id) for e in listed[:-1]} == {("services", web.id), ("tasks", t1.id)}
        first = next(e for e in listed if e.id == t1.id)
        assert first.version == t1.version
        assert json.loads(first.json) == {**to_dict(t1), "version": t1.version}
        store.create(make_task(db, 2))  # another service's: not sent
        t2 = store.create(make_task(web, 2))
        event = out.get(timeout=10)
        assert (event.action, event.id, event.version) == ("put", t2.id, t2.version)
        store.delete(t2)
        event = out.get(timeout=10)
        assert (event.action, event.id) == ("delete", t2.id)
    finally:
        ctx.active = False


def test_an_idle_stream_sends_keepalives(api: ClusterAPI) -> None:
    out, ctx = _pump(api, cpb.EventsRequest(keepalive=0.05))
    try:
        assert [out.get(timeout=10).action for _ in range(2)] == ["keepalive", "keepalive"]
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
        assert [(e.action, e.id) for e in first.events] == [
            ("put", web.id), *(("put", t.id) for t in tasks), ("synced", "")]
        t3 = store.create(make_task(web, 3))
        batch = out.get(timeout=10)
        assert [(e.action, e.id, e.version) for e in batch.events] == [("put", t3.id, t3.version)]
    finally:
        ctx.active = False
