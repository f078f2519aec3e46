"""Reconcile: the node's containers made equal to its assignment set.

The session records what is assigned (:meth:`Reconciler.assign`); the
reconcile thread compares it with the containers that exist and starts or
stops containers through the executor's controllers. A few starts are out
at once (one more than the supervisor launches at once, see
``supervisor.MAX_LAUNCHING``): each answer wakes the thread again. Every
change of a task's state goes to the status reporter.

Invariants:
- nothing happens before the first *full* assignment set: until then the
  node cannot tell a container it should stop from one not yet assigned;
- a container not in the set is stopped and removed (swarmkit's rule);
- a task is started at most once: a task with a start out, a container, or
  a status already reported is never started again (a restart is a new task);
- a task's container carries the labels ``orch.task``/``orch.service``; after
  an agent restart the existing containers are found by label and adopted,
  not restarted;
- a running task's status carries its container's health-check status
  (``TaskStatus.health``: "", "starting", "healthy", "unhealthy"), reported
  at its start and on every change (the supervisor's ``health_status``
  events); the control plane routes to healthy tasks only. A task whose
  container turns unhealthy is reported so at once, then stopped and
  reported FAILED ("unhealthy container"), as Swarm does: the control plane
  replaces it under its restart policy;
- a task that receives traffic (on a network, or publishing ports) and is
  to stop keeps running ``ENDPOINT_DRAIN`` more seconds, while every node
  takes it out of its VIPs and DNS;
- the values of secrets and configs an assignment brings (by version id)
  are kept in memory only until the tasks granted them have started (their
  files are then on the task's tmpfs, see ``executor``): a value no task
  still to start is granted is dropped; a task's files go when its
  container exits or is removed, and, after an agent restart, those of
  tasks without a container here.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from common.errors import AgentError, NotFound
from model.objects import Task, TaskState
from nodeagent.cluster.executor import SERVICE_LABEL, TASK_LABEL, Executor
from nodeagent.cluster.status import StatusReporter

# The supervisor's event for a health-check status change (nodeagent.supervisor.health).
HEALTH_STATUS = "health_status"
UNHEALTHY = "unhealthy"
# A task replaced for failing its health check: its status's error (Swarm's words).
UNHEALTHY_ERROR = "unhealthy container"
# Seconds a task that receives traffic keeps running once it is to stop:
# the same write that stops it takes it out of its service's VIPs and DNS
# on every node, and those nodes apply that while this one would already
# be stopping it; connections they sent it meanwhile would be refused (a
# rollout's start-first replacement is ready before this, so nothing is
# lost). Kubernetes users put a preStop sleep for the same reason.
ENDPOINT_DRAIN = 1.0

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger

__all__ = ["Reconciler"]


class Reconciler:
    def __init__(self, executor: Executor, status: StatusReporter, max_in_flight: int,
                 stopped: threading.Event, logger: FilteringBoundLogger) -> None:
        self.executor = executor
        self.status = status
        self.max_in_flight = max_in_flight  # starts out with the supervisor at once, at most
        self.log = logger  # bound with the node
        self._stopped = stopped
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self.assigned: dict[str, Task] = {}
        # Secret and config values by version id, for the tasks still to start (never logged).
        self.payloads: dict[str, bytes] = {}
        self.full_seen = False
        self.containers: dict[str, str] = {}  # task id -> container id
        self.starting: set[str] = set()  # task ids whose start awaits the supervisor
        self.waiting = 0  # starts the last pass left for later (in-flight limit)
        self.stopping = 0  # stops out with the supervisor

    # ---- what the others tell it ------------------------------------------

    def assign(self, tasks: dict[str, Task], removed: list[str], full: bool,
               payloads: Mapping[str, bytes] | None = None) -> None:
        """The session's assignments: the full set, or changes to it, and the
        values of the secrets and configs those tasks are granted."""
        with self._lock:
            if full:
                self.assigned = tasks
                self.full_seen = True
            else:
                self.assigned.update(tasks)
                for tid in removed:
                    self.assigned.pop(tid, None)
            self.payloads.update(payloads or {})
            self._drop_payloads()
        self._wake.set()

    def _drop_payloads(self) -> None:  # the caller holds the lock
        """Forget the values no task still to start is granted."""
        if not self.payloads:
            return
        wanted = {ref.secret_id for tid, task in self.assigned.items()
                  if task.desired_state == TaskState.RUNNING and tid not in self.containers
                  and self.status.last(tid) is None
                  for ref in (*task.spec.secrets, *task.spec.configs)}
        for vid in [vid for vid in self.payloads if vid not in wanted]:
            del self.payloads[vid]

    def _payloads_for(self, task: Task) -> dict[str, bytes]:
        refs = (*task.spec.secrets, *task.spec.configs)
        with self._lock:
            return {r.secret_id: self.payloads[r.secret_id] for r in refs if r.secret_id in self.payloads}

    def is_assigned(self, tid: str) -> bool:
        with self._lock:
            return tid in self.assigned

    def settled(self) -> bool:
        """Nothing starting or stopping and nothing left to start: no status
        update is on its way, so none is worth waiting for."""
        with self._lock:
            return self._settled()

    def _settled(self) -> bool:  # the caller holds the lock
        return not self.starting and not self.waiting and not self.stopping

    def wake(self) -> None:
        self._wake.set()

    def adopt(self) -> None:
        """Map the node's task containers to their tasks: at start (after an
        agent restart) and after a new supervisor replaced a dead one. A
        container newly mapped and found exited had its exit go unseen (it
        was killed with its supervisor): reported now."""
        records = self.executor.task_containers()
        for rec in records:
            tid = rec["labels"][TASK_LABEL]
            with self._lock:
                new = tid not in self.containers and tid not in self.starting
                if new:
                    self.containers[tid] = rec["id"]
            if new and rec["state"] == "exited":
                self.on_event("exited", rec)
            elif new and rec["state"] == "running" and _health_status(rec):
                # Its health may have changed while no agent listened.
                self.on_event(HEALTH_STATUS, {**rec, "status": _health_status(rec)})
        with self._lock:
            keep = {rec["labels"][TASK_LABEL] for rec in records if rec["state"] != "exited"} | self.starting
        self.executor.prune(keep)  # secrets of tasks whose container is gone, or ended

    def on_event(self, event: str, data: dict[str, Any]) -> None:
        """Supervisor events: a task's container exited, or its health changed."""
        if event == HEALTH_STATUS:
            self._on_health(data)
            return
        if event != "exited":
            return
        labels = data.get("labels", {})
        tid = labels.get(TASK_LABEL)
        if not tid or self.containers.get(tid) != data["id"]:
            return  # not a task, or stopped on purpose (reported by the stopper)
        code = int(data["exit_code"])
        self.executor.release(tid)  # its secrets and configs: the container that saw them is gone
        state = TaskState.COMPLETE if code == 0 else TaskState.FAILED
        error = "OOMKilled" if data.get("oom_killed") else (f"exit code {code}" if code else "")
        # The supervisor's word on why, if it has one ("killed: its supervisor ... died").
        error = str(data.get("error") or "") or error
        self.log.bind(service=labels.get(SERVICE_LABEL, ""), task=tid, container=data["id"]).info(
            "task's container exited", exit_code=code, error=error)
        self._report(tid, state, "exited", error=error, exit_code=code, container_id=data["id"])

    def _on_health(self, data: dict[str, Any]) -> None:
        """A task's container changed health (an engine-mode container is
        only marked, by the supervisor, as Docker does)."""
        tid = (data.get("labels") or {}).get(TASK_LABEL)
        cid = data.get("id")
        with self._lock:
            if not tid or not cid or self.containers.get(tid) != cid:
                return  # not a task's, or being stopped already
            task = self.assigned.get(tid)
        status = str(data.get("status") or "")
        last = self.status.last(tid)
        if last is not None and last.state != TaskState.RUNNING:
            return
        self._report(tid, TaskState.RUNNING, "running", container_id=cid, health=status)
        if status == UNHEALTHY:
            self._task_log(tid, task).warning("task's container is unhealthy: replacing it",
                                              container=cid,
                                              failing_streak=data.get("failing_streak", 0))
            self._stop_async(tid, task, cid, TaskState.FAILED, error=UNHEALTHY_ERROR)

    # ---- the reconcile thread ---------------------------------------------

    def run(self) -> None:
        while not self._stopped.is_set():
            self._wake.wait(1.0)
            self._wake.clear()
            with self._lock:
                if not self.full_seen:
                    continue
                assigned = dict(self.assigned)
            try:
                self.reconcile(assigned)
            except Exception:
                self.log.exception("reconcile failed")

    def reconcile(self, assigned: dict[str, Task]) -> None:
        waiting = 0
        for tid, task in assigned.items():
            if tid in self.starting:
                continue  # decided again once its start has answered
            cid = self.containers.get(tid)
            last = self.status.last(tid)
            if task.desired_state == TaskState.RUNNING:
                if cid is None and last is None:
                    if len(self.starting) < self.max_in_flight:
                        self._start(task)
                    else:
                        waiting += 1
            elif cid is not None:
                self._stop_async(tid, task, cid, TaskState.SHUTDOWN,
                                 drain=ENDPOINT_DRAIN if _has_endpoints(task) else 0.0)
            elif last is None or last.state < TaskState.COMPLETE:
                self._report(task.id, TaskState.SHUTDOWN, "shut down")
        with self._lock:
            gone = [(t, cid) for t, cid in self.containers.items() if t not in assigned]
        for tid, cid in gone:
            # Not in the set: the control plane no longer wants it here.
            self._stop_async(tid, None, cid, None)
        with self._lock:
            self.waiting = waiting
            self._drop_payloads()

    def _task_log(self, tid: str, task: Task | None) -> FilteringBoundLogger:
        if task is None:
            return self.log.bind(task=tid)
        return self.log.bind(service=task.service_name, task=tid)

    def _start(self, task: Task) -> None:
        """Prepare the task's container and start it without waiting: its
        answer comes to :meth:`_started` (the supervisor sets up several
        containers at once)."""
        # Its secrets' values first: once it is reported starting, an assignment
        # that comes meanwhile finds it started and drops them.
        payloads = self._payloads_for(task)
        self._report(task.id, TaskState.STARTING, "starting")
        ctl = self.executor.controller(task, self._task_log(task.id, task), payloads)
        try:
            ctl.prepare()
            with self._lock:
                self.starting.add(task.id)
            ctl.start(lambda rec, err: self._started(task, rec, err))
        except AgentError as err:
            self._started(task, None, err)

    def _started(self, task: Task, rec: dict[str, Any] | None, err: AgentError | None) -> None:
        """The supervisor's answer to a start (on its reader thread, before
        any later event of the container: an exit finds it in containers)."""
        tid = task.id
        if err is not None or rec is None:
            err = err or AgentError("the supervisor answered a start without a container")
            state = TaskState.REJECTED if isinstance(err, NotFound) else TaskState.FAILED
            self._task_log(tid, task).warning("task did not start", state=state.name.lower(),
                                              error=err.message)
            self._report(tid, state, "could not start", error=err.message)
        else:
            with self._lock:
                self.containers[tid] = rec["id"]
            self._report(tid, TaskState.RUNNING, "running", container_id=rec["id"],
                         health=_health_status(rec))
        with self._lock:
            self.starting.discard(tid)
        self._done_one()

    def _done_one(self, stop: bool = False) -> None:
        """A start (or a stop) has answered: wake the reconcile pass, and end
        a batch window if that was the last one out."""
        with self._lock:
            if stop:
                self.stopping -= 1
            settled = self._settled()
        if settled:
            self.status.node_settled()
        self._wake.set()

    def _stop_async(self, tid: str, task: Task | None, cid: str, final: TaskState | None,
                    error: str = "", drain: float = 0.0) -> None:
        """Stop and remove the container on a thread of its own, ``drain``
        seconds from now; then report ``final`` (with ``error``, why), or (no
        final state: the task is no longer assigned) forget it."""
        ctl = self.executor.found(tid, cid, self._task_log(tid, task), task)
        with self._lock:
            self.containers.pop(tid, None)
            self.stopping += 1

        def stop() -> None:
            try:
                if drain > 0:
                    self._stopped.wait(drain)  # cut short when the agent stops
                with contextlib.suppress(AgentError):
                    ctl.shutdown()
                with contextlib.suppress(AgentError):
                    ctl.remove()
                if final is not None:
                    self._report(tid, final, error or "shut down", error=error, container_id=cid)
                else:
                    self.status.forget(tid)
            finally:
                self._done_one(stop=True)

        threading.Thread(target=stop, name="worker-stop", daemon=True).start()

    def _report(self, tid: str, state: TaskState, message: str, error: str = "",
                exit_code: int = 0, container_id: str = "", health: str = "") -> None:
        self.status.report(tid, state, message, error=error, exit_code=exit_code,
                           container_id=container_id or self.containers.get(tid, ""), health=health)


def _has_endpoints(task: Task) -> bool:
    """Whether other nodes may send the task traffic: it is on a network
    (its service's VIP and DNS there) or its service publishes ports."""
    return bool(task.networks or task.spec.ports)


def _health_status(rec: dict[str, Any]) -> str:
    """A container record's health-check status; "" without a check."""
    return str((rec.get("health") or {}).get("status") or "")
