"""The worker's starts: several out with the supervisor at once (one more
than it launches at once), never more, each task started once, and a
container's exit heard even when it comes right after the start's answer.

The worker runs its tasks through the real executor and engine, above a
supervisor client that holds each run until the test answers it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from common.errors import AgentError
from model.objects import ServiceSpec, Task, TaskState
from nodeagent.cluster.executor import TASK_LABEL, TaskExecutor
from nodeagent.cluster.worker import Worker
from nodeagent.supervisor import MAX_LAUNCHING
from tests.unit.engine_fakes import FakeSupervisor, engine


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path


def make_worker(max_starting: int, state_dir: Path) -> tuple[Worker, FakeSupervisor]:
    eng, sup = engine(state_dir)
    w = Worker(TaskExecutor(eng), "127.0.0.1:1", "t", "n1", "127.0.0.1:2", {}, str(state_dir),
               max_starting=max_starting)
    return w, sup


def tasks(n: int) -> dict[str, Task]:
    spec = ServiceSpec(name="web", image="busybox")
    return {f"t{i}": Task(id=f"t{i}", service_id="s", service_name="web", slot=i + 1, spec=spec)
            for i in range(n)}


def window_in_thread(w: Worker) -> threading.Event:
    """A 60 s batch window waited out on a thread; the event is set when it ends."""
    ended = threading.Event()

    def wait() -> None:
        w.status.rest_of_window(time.monotonic() + 60)
        ended.set()

    threading.Thread(target=wait, daemon=True).start()
    return ended


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def states(w: Worker) -> dict[str, TaskState]:
    return {tid: status.state for tid, status in w.status.reported.items()}


def test_starts_go_out_one_more_than_the_launch_limit_and_each_answer_lets_the_next_go(
        state_dir: Path) -> None:
    w, sup = make_worker(1, state_dir)  # one launch at once, one start waiting its turn
    r = w.reconciler
    assigned = tasks(5)
    r.reconcile(assigned)
    assert len(sup.runs) == 2 and r.starting == {"t0", "t1"}
    r.reconcile(assigned)  # nothing answered yet: nothing more, nothing twice
    assert len(sup.runs) == 2
    sup.answer(0)
    assert r.containers == {"t0": "c-web.1.t0"} and r.starting == {"t1"}
    assert r._wake.is_set()
    r.reconcile(assigned)
    assert len(sup.runs) == 3
    for i in (1, 2):
        sup.answer(i)
    r.reconcile(assigned)
    for i in (3, 4):
        sup.answer(i)
    r.reconcile(assigned)
    assert len(sup.runs) == 5 and len({sup.name(i) for i in range(5)}) == 5
    assert set(states(w).values()) == {TaskState.RUNNING} and not r.starting


def test_a_failed_start_is_reported_and_frees_its_place(state_dir: Path) -> None:
    w, sup = make_worker(1, state_dir)
    assigned = tasks(3)
    w.reconciler.reconcile(assigned)
    sup.answer(0, error=AgentError("exec: no such file"))
    assert states(w)["t0"] == TaskState.FAILED and w.status.reported["t0"].error == "exec: no such file"
    w.reconciler.reconcile(assigned)
    assert [sup.name(i) for i in range(3)] == ["web.1.t0", "web.2.t1", "web.3.t2"]


def test_a_task_whose_image_is_missing_is_rejected_without_a_supervisor_call(state_dir: Path) -> None:
    w, sup = make_worker(1, state_dir)
    spec = ServiceSpec(name="web", image="nosuch")
    w.reconciler.reconcile({"t0": Task(id="t0", service_id="s", service_name="web", slot=1, spec=spec)})
    assert states(w) == {"t0": TaskState.REJECTED} and "nosuch" in w.status.reported["t0"].error
    assert sup.runs == [] and not w.reconciler.starting


def test_an_exit_right_after_the_answer_is_heard(state_dir: Path) -> None:
    """The supervisor sends the run's answer, then the exit: the answer's
    callback has made the container known before the event is delivered."""
    w, sup = make_worker(1, state_dir)
    w.reconciler.reconcile(tasks(1))
    sup.answer(0, cid="c0")
    w.on_event("exited", {"id": "c0", "exit_code": 3, "labels": {TASK_LABEL: "t0"}})
    assert states(w)["t0"] == TaskState.FAILED and w.status.reported["t0"].exit_code == 3


def test_a_task_taken_away_while_starting_is_stopped_once_its_start_answers(state_dir: Path) -> None:
    w, sup = make_worker(1, state_dir)
    w.reconciler.reconcile(tasks(1))
    w.reconciler.reconcile({})  # gone from the set while its start is out: left alone
    assert sup.calls == []
    sup.answer(0, cid="c0")
    w.reconciler.reconcile({})
    calls = sup.wait_calls(2)  # on the stop's own thread
    assert calls == [("stop", {"id": "c0", "timeout": 10.0}), ("remove", {"id": "c0", "force": True})]


def test_a_task_shut_down_is_stopped_with_its_grace_period_and_reported(state_dir: Path) -> None:
    w, sup = make_worker(1, state_dir)
    assigned = tasks(1)
    w.reconciler.reconcile(assigned)
    sup.answer(0, cid="c0")
    task = assigned["t0"]
    task.desired_state = TaskState.SHUTDOWN
    task.spec = ServiceSpec(name="web", image="busybox", stop_grace_period=3.5)
    w.reconciler.reconcile(assigned)
    assert sup.wait_calls(2)[0] == ("stop", {"id": "c0", "timeout": 3.5})
    # Reported once its stop has ended.
    wait_until(lambda: states(w)["t0"] == TaskState.SHUTDOWN and w.reconciler.stopping == 0)
    assert not w.reconciler.containers


def test_the_default_limit_is_one_start_per_cpu_up_to_the_cap(state_dir: Path) -> None:
    w, _ = make_worker(0, state_dir)
    assert 2 <= w.reconciler.max_in_flight <= MAX_LAUNCHING + 1


def test_a_stopped_worker_reports_nothing_more(state_dir: Path) -> None:
    """A node shutdown stops the worker before its containers: their exits
    are the node going down, not task failures."""
    w, sup = make_worker(1, state_dir)
    w.reconciler.reconcile(tasks(1))
    sup.answer(0, cid="c0")
    assert states(w) == {"t0": TaskState.RUNNING}
    w.stop()
    w.on_event("exited", {"id": "c0", "exit_code": 137, "labels": {TASK_LABEL: "t0"}})
    assert states(w) == {"t0": TaskState.RUNNING}
    assert w.status.queue.take(float("inf")) == [("t0", w.status.reported["t0"])]  # only what came before


def test_a_batch_window_waits_while_starts_are_out_and_ends_once_the_node_settles(state_dir: Path) -> None:
    """Status waits for the rest of its window only while more updates are
    on their way: a start still out, or one waiting its turn. The last
    start's answer ends the window at once."""
    w, sup = make_worker(1, state_dir)
    r = w.reconciler
    r.reconcile(tasks(3))  # two out, one waiting its turn
    assert r.waiting == 1 and not r.settled()
    ended = window_in_thread(w)
    sup.answer(0)
    r.reconcile(tasks(3))  # the waiting one goes out
    sup.answer(1)
    assert r.waiting == 0 and r.starting == {"t2"}
    assert not ended.wait(0.05)  # still a start out: the window goes on
    sup.answer(2)
    assert ended.wait(10)  # settled: the window ends long before its 60 s
    assert w.status.rest_of_window(time.monotonic() + 60) is False  # and a new one does not wait


def test_a_stop_ends_a_batch_window(state_dir: Path) -> None:
    w, _ = make_worker(1, state_dir)
    w.reconciler.reconcile(tasks(1))
    w.stop()
    assert w.status.rest_of_window(time.monotonic() + 60) is True


def test_a_stop_out_keeps_a_batch_window_and_its_end_ends_it(state_dir: Path) -> None:
    """A scale-down's stops report as they end: while one is out, their
    reports still gather in a window."""
    w, sup = make_worker(1, state_dir)
    r = w.reconciler
    r.reconcile(tasks(1))
    sup.answer(0, cid="c0")
    assert r.settled()
    sup.hold = threading.Event()
    r.reconcile({})  # t0 is no longer assigned: its stop goes out
    assert r.stopping == 1 and not r.settled()
    ended = window_in_thread(w)
    assert not ended.wait(0.05)
    sup.hold.set()
    assert ended.wait(10) and sup.ops() == ["stop", "remove"] and r.stopping == 0
