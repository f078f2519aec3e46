"""Store against a real etcd: versions, conflicts, batches, consistent lists."""

from __future__ import annotations

import dataclasses
import time

import pytest
from store_helpers import make_node, make_service, make_task

from controlplane.store import Kind, NotLeader, Op, Store, StoreConflict, StoreUnavailable
from model.objects import TaskState


def test_create_get_update_round_trip(store: Store) -> None:
    svc = store.create(make_service("web", replicas=3))
    assert svc.version > 0
    assert store.get_service(svc.id) == svc
    task = store.create(make_task(svc, 1))
    assigned = dataclasses.replace(task.status, state=TaskState.ASSIGNED)
    moved = store.update(dataclasses.replace(task, node_id="n1", status=assigned))
    assert moved.version > task.version
    got = store.get_task(task.id)
    assert got == moved and got is not None and got.status.state is TaskState.ASSIGNED
    assert store.get_node("missing") is None


def test_create_twice_conflicts(store: Store) -> None:
    svc = store.create(make_service())
    expected = f"services/{svc.id}: create expected version 0, found {svc.version}"
    with pytest.raises(StoreConflict, match=expected):
        store.create(dataclasses.replace(svc, version=0))


def test_update_with_stale_version_conflicts(store: Store) -> None:
    node = store.create(make_node())
    store.update(dataclasses.replace(node, state="ready"))
    with pytest.raises(StoreConflict) as err:
        store.update(dataclasses.replace(node, state="down"))  # read before the first update
    assert err.value.conflicts == [f"nodes/{node.id}: update expected version {node.version}, "
                                   f"found {node.version + 1}"]
    current = store.get_node(node.id)
    assert current is not None and current.state == "ready"


def test_update_of_unstored_object_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="needs the version"):
        store.update(make_node())


def test_delete_compares_version(store: Store) -> None:
    svc = store.create(make_service())
    newer = store.update(dataclasses.replace(svc, updated_at=1.0))
    with pytest.raises(StoreConflict):
        store.delete(svc)
    assert store.get_service(svc.id) is not None
    store.delete(newer)
    assert store.get_service(svc.id) is None
    with pytest.raises(StoreConflict, match="found 0"):
        store.delete(newer)


def test_batch_is_all_or_nothing(store: Store) -> None:
    svc = store.create(make_service(replicas=3))
    stale = store.create(make_task(svc, 1))
    store.update(dataclasses.replace(stale, node_id="elsewhere"))
    before = store.revision()
    fresh = [make_task(svc, slot) for slot in (2, 3)]
    ops = [Op.create(fresh[0]), Op.update(dataclasses.replace(stale, node_id="n1")), Op.create(fresh[1])]
    with pytest.raises(StoreConflict) as err:
        store.batch(ops)
    assert len(err.value.conflicts) == 1 and stale.id in err.value.conflicts[0]
    assert store.revision() == before  # nothing written
    assert [t.id for t in store.list_tasks()] == [stale.id]


def test_batch_of_500_is_chunked_and_returns_versions(store: Store) -> None:
    svc = store.create(make_service(replicas=500))
    created = store.batch([Op.create(make_task(svc, i + 1)) for i in range(500)])
    assert len(created) == 500 and all(t is not None and t.version > 0 for t in created)
    assert len({t.version for t in created if t is not None}) == 4  # 128 + 128 + 128 + 116
    stored = {t.id: t for t in store.list_tasks(service_id=svc.id)}
    assert stored == {t.id: t for t in created if t is not None}
    store.batch([Op.delete(t) for t in created if t is not None])
    assert store.list_tasks() == []


def test_chunked_batch_stops_at_the_failing_chunk(store: Store) -> None:
    small = Store(store.endpoints, max_txn_ops=2)
    try:
        svc = small.create(make_service())
        taken = small.create(make_task(svc, 9))
        ops = [Op.create(make_task(svc, 1)), Op.create(make_task(svc, 2)),
               Op.create(dataclasses.replace(taken, version=0)), Op.create(make_task(svc, 3))]
        with pytest.raises(StoreConflict) as err:
            small.batch(ops)
        assert err.value.applied == 2
        assert "2 earlier ops were committed" in str(err.value)
        stored = small.list_tasks()
        assert len(stored) == 3  # the first chunk, plus the task that was there
        first_chunk = {t.version for t in stored if t.id != taken.id}
        assert first_chunk == {err.value.revision}  # a cache at it holds the first chunk
    finally:
        small.close()


def test_batch_rejects_one_key_twice(store: Store) -> None:
    svc = make_service()
    with pytest.raises(ValueError, match="twice"):
        store.batch([Op.create(svc), Op.create(svc)])


def test_list_all_is_one_consistent_revision(store: Store) -> None:
    svc = store.create(make_service())
    node = store.create(make_node())
    small_pages = Store(store.endpoints, page_size=7)
    try:
        tasks = small_pages.batch([Op.create(make_task(svc, i, node.id)) for i in range(30)])
        snapshot, revision = small_pages.list_all()
    finally:
        small_pages.close()
    assert revision == store.revision()
    assert set(snapshot) == set(Kind)
    assert snapshot[Kind.SERVICE] == {svc.id: svc}
    assert snapshot[Kind.NODE] == {node.id: node}
    assert snapshot[Kind.TASK] == {t.id: t for t in tasks if t is not None}
    assert all(o.version <= revision for objs in snapshot.values() for o in objs.values())


def test_meta_first_writer_wins(store: Store) -> None:
    assert store.get_meta("join-token") is None
    assert store.create_meta("join-token", "abc") == "abc"
    assert store.create_meta("join-token", "xyz") == "abc"
    store.put_meta("join-token", "rotated")
    assert store.get_meta("join-token") == "rotated"


def test_fenced_batch_fails_after_leadership_is_lost(store: Store) -> None:
    leadership = store.campaign("controllers", "cp-1", ttl=5)
    assert leadership is not None
    svc = store.batch([Op.create(make_service())], fence=leadership)[0]
    assert svc is not None
    leadership.resign()
    with pytest.raises(NotLeader, match="cp-1 is no longer the leader"):
        store.batch([Op.update(svc)], fence=leadership)


def test_unreachable_etcd_is_store_unavailable(store: Store) -> None:
    dead = Store(["http://127.0.0.1:1"], timeout=1.0)
    try:
        start = time.monotonic()
        with pytest.raises(StoreUnavailable):
            dead.get_service("x")
        assert time.monotonic() - start < 5
    finally:
        dead.close()


def test_batched_task_writes_per_second(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    svc = store.create(make_service(replicas=2000))
    tasks = [make_task(svc, i + 1) for i in range(2000)]
    start = time.perf_counter()
    created = store.batch([Op.create(t) for t in tasks])
    elapsed = time.perf_counter() - start
    with capsys.disabled():
        print(f"\nbatched task writes: {len(created) / elapsed:,.0f} tasks/s "
              f"({len(created)} in {elapsed:.2f}s, {store.max_txn_ops} per txn)")
    assert len(store.list_tasks(service_id=svc.id)) == 2000
