"""The worker's side of secrets and configs: the values an assignment
brings become the task's files on a tmpfs of their own, bound into its
container by path (the record the supervisor saves holds no value); the
worker forgets the values once the task has started; a task whose value
did not come is rejected, naming it; the files go with the container.

The real worker, executor and engine, above a supervisor client that holds
each run until the test answers it; the tmpfs mounts are real (root)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.errors import AgentError
from model.objects import SecretRef, ServiceSpec, Task, TaskState
from nodeagent.cluster.executor import SERVICE_LABEL, TASK_LABEL, TaskExecutor
from nodeagent.cluster.worker import Worker
from tests.unit.engine_fakes import FakeSupervisor, engine

VALUE = b"value-" + os.urandom(6).hex().encode()

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the files' tmpfs needs root")


def _task(tid: str = "t0", version: str = "v1") -> Task:
    spec = ServiceSpec(name="web", image="busybox", command=["sleep", "1"],
                       secrets=[SecretRef("db", "/run/secrets/db", 1000, 1000, 0o400, version)],
                       configs=[SecretRef("app", "/etc/app.conf", secret_id="c1")])
    return Task(id=tid, service_id="s", service_name="web", slot=1, spec=spec)


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[tuple[Worker, FakeSupervisor, TaskExecutor]]:
    eng, sup = engine(tmp_path / "state")
    executor = TaskExecutor(eng, secrets_dir=str(tmp_path / "run" / "secrets"))
    w = Worker(executor, "127.0.0.1:1", "t", "n1", "127.0.0.1:2", {}, str(tmp_path / "state"))
    yield w, sup, executor
    executor.prune(set())


def _start(w: Worker, task: Task, payloads: dict[str, bytes]) -> None:
    w.reconciler.assign({task.id: task}, [], True, payloads)
    w.reconciler.reconcile(dict(w.reconciler.assigned))


def test_the_values_become_files_bound_by_path_and_are_forgotten(
        worker: tuple[Worker, FakeSupervisor, TaskExecutor]) -> None:
    w, sup, executor = worker
    _start(w, _task(), {"v1": VALUE, "c1": b"level=info", "unrelated": b"x"})
    [(record, _)] = sup.runs
    mounts = record["spec"]["mounts"]
    assert [(m["target"], m["readonly"]) for m in mounts] == [("/run/secrets/db", True),
                                                               ("/etc/app.conf", True)]
    assert all(m["source"].startswith(executor.files.path("t0") + "/") for m in mounts)
    assert Path(mounts[0]["source"]).read_bytes() == VALUE
    st = os.stat(mounts[0]["source"])
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (1000, 1000, 0o400)
    assert VALUE.decode() not in json.dumps(record)  # what the supervisor saves: paths only
    assert w.reconciler.payloads == {}  # started: the values live in the tmpfs only
    sup.answer(0, cid="c0")
    w.on_event("exited", {"id": "c0", "exit_code": 0, "labels": {TASK_LABEL: "t0", SERVICE_LABEL: "web"}})
    assert executor.files.tasks() == []  # gone with the container


def test_a_failed_start_drops_the_files(worker: tuple[Worker, FakeSupervisor, TaskExecutor]) -> None:
    w, sup, executor = worker
    _start(w, _task(), {"v1": VALUE, "c1": b""})
    assert executor.files.tasks() == ["t0"]
    sup.answer(0, error=AgentError("no"))
    assert executor.files.tasks() == []
    assert w.status.last("t0").state == TaskState.FAILED  # type: ignore[union-attr]


def test_a_task_whose_value_did_not_come_is_rejected_naming_it(
        worker: tuple[Worker, FakeSupervisor, TaskExecutor]) -> None:
    w, sup, executor = worker
    _start(w, _task(), {"c1": b"level=info"})
    status = w.status.last("t0")
    assert status is not None and status.state == TaskState.REJECTED
    assert "secret db (version v1) did not come with the task" in status.error
    assert sup.runs == [] and executor.files.tasks() == []


def test_values_no_task_still_to_start_needs_are_dropped(
        worker: tuple[Worker, FakeSupervisor, TaskExecutor]) -> None:
    w, _, _ = worker
    waiting = _task("t1", "v2")
    w.reconciler.assign({"t1": waiting}, [], True, {"v2": VALUE, "c1": b"", "other": b"y"})
    assert set(w.reconciler.payloads) == {"v2", "c1"}
    w.reconciler.assign({}, ["t1"], False)
    assert w.reconciler.payloads == {}


def test_an_agent_restart_drops_the_files_of_tasks_without_a_container(
        worker: tuple[Worker, FakeSupervisor, TaskExecutor]) -> None:
    w, sup, executor = worker
    for tid in ("kept", "gone", "ended"):
        executor.files.make(tid, [])
    sup.listed = [{"id": "c1", "state": "running", "labels": {TASK_LABEL: "kept"}},
                  {"id": "c2", "state": "exited", "exit_code": 0, "labels": {TASK_LABEL: "ended"}}]
    w.reconciler.adopt()
    assert executor.files.tasks() == ["kept"]
