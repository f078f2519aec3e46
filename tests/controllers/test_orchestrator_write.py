"""The orchestrator's writes: a big create goes out as a small first write
(the nodes start on it) and the rest, and the next pass waits for a cache
that holds whatever was written, also when a later part failed."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence
from typing import Any

import pytest
from controllers_helpers import service, task

from controlplane.orchestrator import Orchestrator
from controlplane.store import Op, StoreConflict, StoreObject


class FakeStore:
    def __init__(self, fail_call: int = 0, committed_before: int = 0) -> None:
        self.calls: list[int] = []
        self.revision = 10
        self.fail_call = fail_call  # which batch call (1-based) conflicts
        self.committed_before = committed_before  # ops its own chunks committed first

    def batch(self, ops: Sequence[Op], fence: Any = None) -> list[StoreObject | None]:
        self.calls.append(len(ops))
        if len(self.calls) == self.fail_call:
            conflict = StoreConflict(["tasks/x"])
            if self.committed_before:  # as Store.batch reports its earlier chunks
                self.revision += 1
                conflict.applied, conflict.revision = self.committed_before, self.revision
            raise conflict
        self.revision += 1
        return [dataclasses.replace(op.obj, version=self.revision) for op in ops]


class FakeInformer:
    def __init__(self) -> None:
        self.waited: list[int] = []

    def wait_revision(self, revision: int, timeout: float) -> None:
        self.waited.append(revision)


def orchestrator(store: FakeStore) -> tuple[Orchestrator, FakeInformer]:
    informer = FakeInformer()
    return Orchestrator(store, informer, None, threading.Event()), informer  # type: ignore[arg-type]


def creates(n: int) -> list[Op]:
    svc = service("s1", replicas=n)
    return [Op.create(task(f"t{i}", svc, slot=i + 1)) for i in range(n)]


@pytest.mark.parametrize(("first", "calls"), [(2, [2, 3]), (0, [5]), (5, [5]), (9, [5])])
def test_the_first_ops_go_in_a_write_of_their_own(first: int, calls: list[int]) -> None:
    store = FakeStore()
    orch, informer = orchestrator(store)
    orch._write(creates(5), first=first)
    assert store.calls == calls
    assert informer.waited == [store.revision]  # the next pass sees all of it


def test_a_conflict_after_the_first_write_still_waits_for_what_was_written() -> None:
    store = FakeStore(fail_call=2)
    orch, informer = orchestrator(store)
    with pytest.raises(StoreConflict):
        orch._write(creates(5), first=2)
    assert store.calls == [2, 3]
    assert informer.waited == [11]  # the first write's revision: no task is created twice


def test_a_conflict_in_the_first_write_waits_for_nothing() -> None:
    store = FakeStore(fail_call=1)
    orch, informer = orchestrator(store)
    with pytest.raises(StoreConflict):
        orch._write(creates(5), first=2)
    assert store.calls == [2] and informer.waited == []


def test_a_conflict_in_a_later_chunk_waits_for_the_chunks_before_it() -> None:
    store = FakeStore(fail_call=2, committed_before=1)
    orch, informer = orchestrator(store)
    with pytest.raises(StoreConflict):
        orch._write(creates(5), first=2)
    assert informer.waited == [12]  # the second batch's committed chunk, after the first's 11
