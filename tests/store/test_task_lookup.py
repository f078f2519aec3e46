"""Finding the running task a request names (``orch exec web.1``): by id,
prefix or name; of a slot's several running tasks, the one meant to keep
running (a replaced or removed service's is still stopping)."""

from __future__ import annotations

import dataclasses
from typing import NoReturn

import grpc
import pytest

from controlplane.api.lookups import find_running_task
from controlplane.store import Informer, Store
from model.objects import Task, TaskState, TaskStatus
from tests.store.store_helpers import make_service, make_task


class Aborted(Exception):
    pass


class Context:
    def abort(self, code: grpc.StatusCode, details: str) -> NoReturn:
        raise Aborted(code, details)


def _put(store: Store, informer: Informer, task: Task, state: TaskState,
         desired: TaskState = TaskState.RUNNING) -> Task:
    stored = store.create(dataclasses.replace(task, desired_state=desired, status=TaskStatus(state=state)))
    informer.wait_revision(stored.version, 10)
    return stored


def test_the_task_meant_to_run_beats_one_being_stopped(store: Store, informer: Informer) -> None:
    ctx = Context()
    old = _put(store, informer, make_task(make_service("web"), 1, "n1"), TaskState.RUNNING,
               desired=TaskState.SHUTDOWN)
    new = _put(store, informer, make_task(make_service("web"), 1, "n2"), TaskState.RUNNING)
    assert find_running_task(informer, "web.1", ctx).id == new.id  # type: ignore[arg-type]
    assert find_running_task(informer, old.name, ctx).id == old.id  # type: ignore[arg-type]
    # Two meant to run (two services of one name, say): ambiguous, named.
    other = _put(store, informer, make_task(make_service("web"), 1, "n3"), TaskState.RUNNING)
    with pytest.raises(Aborted) as err:
        find_running_task(informer, "web.1", ctx)  # type: ignore[arg-type]
    assert err.value.args[0] == grpc.StatusCode.INVALID_ARGUMENT and other.name in err.value.args[1]
    with pytest.raises(Aborted) as err:
        find_running_task(informer, "nosuch.1", ctx)  # type: ignore[arg-type]
    assert err.value.args[0] == grpc.StatusCode.NOT_FOUND
