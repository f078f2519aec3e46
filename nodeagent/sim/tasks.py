"""A simulated node's tasks: what the real reconciler and status reporter
do with an assignment set, without containers.

``SimTasks`` takes the session's assignments (the full set, then changes)
and answers as ``nodeagent.cluster.reconcile`` does, on timers instead of a
supervisor:
- a task to run is reported ``starting`` at once and ``running`` after the
  start delay (or ``failed``, "could not start", for the share of starts
  told to fail); ``starting`` goes through the real ``StatusQueue``, so it
  is held back and dropped as the real node's is when the start is quick;
- a task with a health check is ``running`` and ``healthy`` at once;
- a running task whose desired state is no longer running is stopped: it
  drains ``ENDPOINT_DRAIN`` first if it receives traffic, then reports
  ``shutdown``; one not yet started reports ``shutdown`` at once;
- a container whose task left the set is stopped and forgotten (no report);
- nothing starts before the first full set;
- ``reported`` keeps each task's last status until it is terminal and sent,
  or queued, and no longer assigned; a new session sends it all again
  (``attach``). (The real status reporter forgets an ended task only if it
  had left the set when its last batch went, which it has not when the node
  reports the end itself: it keeps those, and sends them on each new session.)

Timers go through ``later(delay, callback)`` (the simulator's event loop);
``on_ready`` hears that a status update may be due. Single-threaded: every
method runs on the caller's loop.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from model.health import HEALTHY
from model.objects import Task, TaskState, TaskStatus
from nodeagent.cluster.reconcile import ENDPOINT_DRAIN, _has_endpoints
from nodeagent.cluster.status import StatusQueue

__all__ = ["START_FAILURE", "Behaviour", "SimTasks", "Want"]

# The error of a start the simulation fails (``Behaviour.fail``).
START_FAILURE = "simulated start failure"


class Handle(Protocol):
    def cancel(self) -> Any: ...


@dataclass(frozen=True)
class Behaviour:
    """How a simulated node's tasks behave: ``start_delay`` seconds from
    assignment to running; ``fail``: the share of starts that fail."""

    start_delay: float = 0.0
    fail: float = 0.0


class Want(NamedTuple):
    """What the node keeps of an assigned task: all the simulation reads of it."""

    desired: TaskState
    endpoints: bool  # it receives traffic: drained before it stops
    health: bool  # it has a health check: reported healthy


def want(task: Task) -> Want:
    check = task.spec.healthcheck
    return Want(task.desired_state, _has_endpoints(task), check is not None and check.runs)


class SimTasks:
    def __init__(self, behaviour: Behaviour, later: Callable[[float, Callable[[], None]], Handle],
                 on_ready: Callable[[], None], rng: random.Random | None = None) -> None:
        self.behaviour = behaviour
        self.later = later
        self.on_ready = on_ready
        self.rng = rng or random.Random()
        self.assigned: dict[str, Want] = {}
        self.full_seen = False
        self.running: set[str] = set()  # task ids with a (simulated) container
        self.starting: dict[str, Handle] = {}  # task id -> its start's timer
        self.stopping: dict[str, Handle] = {}  # task id -> its stop's timer
        self.reported: dict[str, TaskStatus] = {}  # the last status sent or queued, per task
        self.queue = StatusQueue()

    # ---- from the session ------------------------------------------------

    def assign(self, tasks: dict[str, Task], removed: list[str], full: bool) -> None:
        wants = {tid: want(task) for tid, task in tasks.items()}
        if full:
            gone = list(self.assigned.keys() - wants.keys())
            self.assigned = wants
            self.full_seen = True
        else:
            self.assigned.update(wants)
            gone = [tid for tid in removed if self.assigned.pop(tid, None) is not None]
        for tid in gone:
            last = self.reported.get(tid)
            if last is not None and last.state.terminal:
                # Its end was sent (the control plane removes a task once it
                # has heard it end) or is queued: nothing to send again.
                del self.reported[tid]
        self.reconcile()

    def attach(self) -> None:
        """A session registered: everything reported goes again on it."""
        self.queue.replace(list(self.reported.items()))
        self.on_ready()

    def reset(self) -> None:
        """The node's machine went away: its containers and what it knew with it."""
        for handle in [*self.starting.values(), *self.stopping.values()]:
            handle.cancel()
        self.assigned, self.full_seen = {}, False
        self.running, self.starting, self.stopping = set(), {}, {}
        self.reported, self.queue = {}, StatusQueue()

    # ---- the reconciler's part -----------------------------------------

    def reconcile(self) -> None:
        if not self.full_seen:
            return  # until the whole set is known, nothing can be told to stop
        for tid, w in self.assigned.items():
            if w.desired == TaskState.RUNNING:
                if tid not in self.running and tid not in self.starting and tid not in self.reported:
                    self._start(tid, w)
            elif tid in self.starting:
                self.starting.pop(tid).cancel()
                self._report(tid, TaskState.SHUTDOWN, "shut down")
            elif tid in self.running:
                self._stop(tid, TaskState.SHUTDOWN, ENDPOINT_DRAIN if w.endpoints else 0.0)
            elif tid not in self.stopping:
                last = self.reported.get(tid)
                if last is None or last.state < TaskState.COMPLETE:
                    self._report(tid, TaskState.SHUTDOWN, "shut down")
        for tid in [t for t in self.starting if t not in self.assigned]:
            self.starting.pop(tid).cancel()
            self.reported.pop(tid, None)
        for tid in [t for t in self.running if t not in self.assigned]:
            self._stop(tid, None, 0.0)  # no longer wanted here: stopped, then forgotten

    def settled(self) -> bool:
        """Nothing starting or stopping: no update is on its way."""
        return not self.starting and not self.stopping

    def _start(self, tid: str, w: Want) -> None:
        self._report(tid, TaskState.STARTING, "starting")
        self.starting[tid] = self.later(self.behaviour.start_delay, lambda: self._started(tid, w))

    def _started(self, tid: str, w: Want) -> None:
        if self.starting.pop(tid, None) is None:
            return
        if self.behaviour.fail > 0 and self.rng.random() < self.behaviour.fail:
            self._report(tid, TaskState.FAILED, "could not start", error=START_FAILURE)
            return
        self.running.add(tid)
        self._report(tid, TaskState.RUNNING, "running", container_id=container_id(tid),
                     health=HEALTHY if w.health else "")

    def _stop(self, tid: str, final: TaskState | None, drain: float) -> None:
        self.running.discard(tid)

        def stopped() -> None:
            self.stopping.pop(tid, None)
            if final is not None:
                self._report(tid, final, "shut down", container_id=container_id(tid))
            else:
                self.reported.pop(tid, None)
                self.on_ready()  # settled now: a batch window waiting for it ends

        self.stopping[tid] = self.later(drain, stopped)

    def _report(self, tid: str, state: TaskState, message: str, error: str = "",
                container_id: str = "", health: str = "") -> None:
        status = TaskStatus(state=state, message=message, error=error, container_id=container_id,
                            timestamp=time.time(), health=health)
        self.reported[tid] = status
        if self.queue.add((tid, status)) or state == TaskState.STARTING:
            self.on_ready()

    # ---- the status reporter's part --------------------------------------

    def next_due(self) -> float | None:
        """When (``time.time()``) a held update falls due; None if none is held."""
        return self.queue.next_due()

    def take(self) -> list[tuple[str, TaskStatus]]:
        """The updates due now, for one batch; finished tasks the control
        plane will have heard of are forgotten."""
        batch = self.queue.take(time.time())
        for tid, status in batch:
            if status.state.terminal and tid not in self.assigned and self.reported.get(tid) is status:
                del self.reported[tid]
        return batch

    def counts(self) -> dict[str, int]:
        """How many tasks are in each last-reported state."""
        out: dict[str, int] = {}
        for status in self.reported.values():
            out[status.state.label()] = out.get(status.state.label(), 0) + 1
        return out


def container_id(tid: str) -> str:
    """A simulated container's id: fixed for its task, shaped as a real one (64 hex)."""
    return hashlib.sha256(tid.encode()).hexdigest()
