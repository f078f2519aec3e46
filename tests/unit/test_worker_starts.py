"""The worker's starts: several out with the supervisor at once (one more
than it launches at once), never more, each task started once, and a
container's exit heard even when it comes right after the start's answer."""

from __future__ import annotations

import threading
import time
from typing import Any

from common.errors import AgentError
from model.objects import ServiceSpec, Task, TaskState
from nodeagent.cluster import worker as worker_mod
from nodeagent.cluster.worker import Worker
from nodeagent.supervisor import MAX_LAUNCHING


class FakeService:
    def _record_request(self, cfg: Any) -> dict[str, Any]:
        return {"name": cfg.name}


class FakeSupervisor:
    """Holds each run's callback until the test answers it."""

    def __init__(self) -> None:
        self.runs: list[tuple[str, Any]] = []

    def call_async(self, op: str, callback: Any, **args: Any) -> None:
        assert op == "run"
        self.runs.append((args["record"]["name"], callback))

    def answer(self, index: int, cid: str = "", error: AgentError | None = None) -> str:
        name, callback = self.runs[index]
        callback(None if error else {"id": cid or f"c-{name}"}, error)
        return name


def make_worker(max_starting: int) -> tuple[Worker, FakeSupervisor]:
    sup = FakeSupervisor()
    w = Worker(FakeService(), sup, "127.0.0.1:1", "t", "n1", "127.0.0.1:2", {}, "/nonexistent",
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
        w._rest_of_window(time.monotonic() + 60)
        ended.set()

    threading.Thread(target=wait, daemon=True).start()
    return ended


def states(w: Worker) -> dict[str, TaskState]:
    return {tid: status.state for tid, status in w.reported.items()}


def test_starts_go_out_one_more_than_the_launch_limit_and_each_answer_lets_the_next_go() -> None:
    w, sup = make_worker(max_starting=1)  # one launch at once, one start waiting its turn
    assigned = tasks(5)
    w._reconcile(assigned)
    assert len(sup.runs) == 2 and w.starting == {"t0", "t1"}
    w._reconcile(assigned)  # nothing answered yet: nothing more, nothing twice
    assert len(sup.runs) == 2
    sup.answer(0)
    assert w.containers == {"t0": "c-web.1.t0"} and w.starting == {"t1"}
    assert w._wake.is_set()
    w._reconcile(assigned)
    assert len(sup.runs) == 3
    for i in (1, 2):
        sup.answer(i)
    w._reconcile(assigned)
    for i in (3, 4):
        sup.answer(i)
    w._reconcile(assigned)
    assert len(sup.runs) == 5 and len({name for name, _ in sup.runs}) == 5
    assert set(states(w).values()) == {TaskState.RUNNING} and not w.starting


def test_a_failed_start_is_reported_and_frees_its_place() -> None:
    w, sup = make_worker(max_starting=1)
    assigned = tasks(3)
    w._reconcile(assigned)
    sup.answer(0, error=AgentError("exec: no such file"))
    assert states(w)["t0"] == TaskState.FAILED and w.reported["t0"].error == "exec: no such file"
    w._reconcile(assigned)
    assert [name for name, _ in sup.runs] == ["web.1.t0", "web.2.t1", "web.3.t2"]


def test_an_exit_right_after_the_answer_is_heard() -> None:
    """The supervisor sends the run's answer, then the exit: the answer's
    callback has made the container known before the event is delivered."""
    w, sup = make_worker(max_starting=1)
    w._reconcile(tasks(1))
    sup.answer(0, cid="c0")
    w.on_event("exited", {"id": "c0", "exit_code": 3,
                          "labels": {worker_mod.TASK_LABEL: "t0"}})
    assert states(w)["t0"] == TaskState.FAILED and w.reported["t0"].exit_code == 3


def test_a_task_taken_away_while_starting_is_stopped_once_its_start_answers() -> None:
    w, sup = make_worker(max_starting=1)
    assigned = tasks(1)
    w._reconcile(assigned)
    stopped: list[str] = []
    w._stop_async = lambda tid, task, cid, final: stopped.append(cid)  # type: ignore[method-assign]
    w._reconcile({})  # gone from the set while its start is out: left alone
    assert stopped == []
    sup.answer(0, cid="c0")
    w._reconcile({})
    assert stopped == ["c0"]


def test_the_default_limit_is_one_start_per_cpu_up_to_the_cap() -> None:
    w, _ = make_worker(max_starting=0)
    assert 2 <= w.max_in_flight <= MAX_LAUNCHING + 1


def test_a_stopped_worker_reports_nothing_more() -> None:
    """A node shutdown stops the worker before its containers: their exits
    are the node going down, not task failures."""
    w, sup = make_worker(max_starting=1)
    w._reconcile(tasks(1))
    sup.answer(0, cid="c0")
    assert states(w) == {"t0": TaskState.RUNNING}
    w.stop()
    w.on_event("exited", {"id": "c0", "exit_code": 137, "labels": {worker_mod.TASK_LABEL: "t0"}})
    assert states(w) == {"t0": TaskState.RUNNING}
    assert w._status.take(float("inf")) == [("t0", w.reported["t0"])]  # only what came before


def test_a_batch_window_waits_while_starts_are_out_and_ends_once_the_node_settles() -> None:
    """Status waits for the rest of its window only while more updates are
    on their way: a start still out, or one waiting its turn. The last
    start's answer ends the window at once."""
    w, sup = make_worker(max_starting=1)
    w._reconcile(tasks(3))  # two out, one waiting its turn
    assert w.waiting == 1 and not w._settled()
    ended = window_in_thread(w)
    sup.answer(0)
    w._reconcile(tasks(3))  # the waiting one goes out
    sup.answer(1)
    assert w.waiting == 0 and w.starting == {"t2"}
    assert not ended.wait(0.05)  # still a start out: the window goes on
    sup.answer(2)
    assert ended.wait(10)  # settled: the window ends long before its 60 s
    assert w._rest_of_window(time.monotonic() + 60) is False  # and a new one does not wait


def test_a_stop_ends_a_batch_window() -> None:
    w, _ = make_worker(max_starting=1)
    w._reconcile(tasks(1))
    w.stop()
    assert w._rest_of_window(time.monotonic() + 60) is True


def test_a_stop_out_keeps_a_batch_window_and_its_end_ends_it() -> None:
    """A scale-down's stops report as they end: while one is out, their
    reports still gather in a window."""
    w, sup = make_worker(max_starting=1)
    w._reconcile(tasks(1))
    sup.answer(0, cid="c0")
    assert w._settled()
    release = threading.Event()
    calls: list[str] = []

    def call(op: str, **args: Any) -> None:
        calls.append(op)
        release.wait(10)

    sup.call = call  # type: ignore[attr-defined]
    w._reconcile({})  # t0 is no longer assigned: its stop goes out
    assert w.stopping == 1 and not w._settled()
    ended = window_in_thread(w)
    assert not ended.wait(0.05)
    release.set()
    assert ended.wait(10) and calls == ["stop", "remove"] and w.stopping == 0
