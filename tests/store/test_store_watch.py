"""Store.watch against a real etcd: order, types, compaction, cancel."""

from __future__ import annotations

import dataclasses

import pytest
from store_helpers import make_node, make_service, make_task

from controlplane.store import Kind, Op, Store, StoreCompacted, StoreEvent


def _drain(watch_events: object, want: int) -> list[StoreEvent]:
    out: list[StoreEvent] = []
    for _ in range(100):
        out.extend(watch_events.next(timeout=0.1))  # type: ignore[attr-defined]
        if len(out) >= want:
            break
    return out


def test_watch_delivers_puts_and_deletes_in_order(store: Store) -> None:
    start = store.revision() + 1
    watch = store.watch(start)
    try:
        svc = store.create(make_service())
        node = store.create(make_node())
        store.put_meta("join-token", "t")  # not an object: not delivered
        updated = store.update(dataclasses.replace(node, state="ready"))
        tasks = store.batch([Op.create(make_task(svc, 1)), Op.create(make_task(svc, 2))])
        store.delete(updated)
        events = _drain(watch, 6)
    finally:
        watch.cancel()
    assert [(e.kind, e.type, e.id) for e in events] == [
        (Kind.SERVICE, "put", svc.id), (Kind.NODE, "put", node.id), (Kind.NODE, "put", node.id),
        (Kind.TASK, "put", tasks[0].id), (Kind.TASK, "put", tasks[1].id),  # type: ignore[union-attr]
        (Kind.NODE, "delete", node.id)]
    assert events[0].obj == svc and events[2].obj == updated
    assert events[3].revision == events[4].revision  # one transaction, one revision
    assert [e.revision for e in events] == sorted(e.revision for e in events)
    assert events[-1].obj is None


def test_watch_from_the_past_replays_history(store: Store) -> None:
    svc = store.create(make_service())
    watch = store.watch(svc.version)
    try:
        events = _drain(watch, 1)
    finally:
        watch.cancel()
    assert events[0].obj == svc


def test_watch_from_a_compacted_revision_is_refused(store: Store) -> None:
    svc = store.create(make_service())
    store.update(dataclasses.replace(svc, updated_at=2.0))
    store._kv.compact(store.revision())  # the test reaches past the API to compact
    with pytest.raises(StoreCompacted) as err:  # etcd creates the watch, then cancels it
        watch = store.watch(svc.version)
        for _ in range(20):
            watch.next(timeout=0.1)
    assert err.value.revision == svc.version


def test_cancelled_watch_delivers_nothing_more(store: Store) -> None:
    watch = store.watch(store.revision() + 1)
    watch.cancel()
    store.create(make_service())
    assert list(watch) == []
