"""The worker: keeps this node's containers equal to its assignment set.

Three threads, each with one job:
- the session thread holds the gRPC stream to the control plane, reconnecting
  with backoff; it only records what is assigned;
- the reconcile thread compares assignments with the containers that exist
  and starts or stops containers through the supervisor (a few starts
  out at once, see ``supervisor.MAX_LAUNCHING``; each answer wakes it again);
- the status thread sends task status in batches, at most one message per
  ``BATCH_WINDOW``: an update after a quiet spell goes at once, one in a busy
  spell with the rest of its window, unless the node has settled (nothing
  starting or stopping, nothing left to start): then no more updates are on
  their way to join it, and it goes at once. A "starting" update waits
  ``STARTING_QUIET`` first (see :class:`StatusQueue`).

A task's container carries the labels ``orch.task``/``orch.service``; after an
agent restart the existing containers are found by label and adopted, not
restarted.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

# json_format (the agent records each task's request with it) and the
# registry check load with the worker, not on a node's first task.
from google.protobuf import json_format  # noqa: F401

from common.errors import AgentError, NotFound
from common.logging import JsonLogger
from model.objects import Task, TaskState, TaskStatus
from model.wire import status_update_to_pb, task_from_pb
from nodeagent.supervisor import default_max_launching
from proto import agent_pb2 as pb
from proto import cluster_pb2 as cpb
from registry.reference import names_registry

log = JsonLogger("orch.worker")

TASK_LABEL = "orch.task"
SERVICE_LABEL = "orch.service"
BATCH_WINDOW = 0.02
STARTING_QUIET = 0.25
RECONNECT_MAX = 2.0
# Until it first joins, a node retries faster: `orch up` starts the agents
# with the control plane, and a retry that just missed its start would make
# the cluster wait up to RECONNECT_MAX more. A refused connect costs little.
JOIN_RETRY_MAX = 0.2
JOIN_LOG_EVERY = 10.0


def next_retry(delay: float, joined: bool) -> float:
    """The wait before the next session attempt: doubling, up to
    RECONNECT_MAX once the node has joined and JOIN_RETRY_MAX before."""
    return min(delay * 2, RECONNECT_MAX if joined else JOIN_RETRY_MAX)


class StatusQueue:
    """Task status updates, (task id, status), waiting to be sent (the caller holds a lock).

    "starting" is held back for ``quiet`` seconds and dropped if a later
    update for the task comes first: most starts end within that, and their
    "starting" would be one more write per task, for the control plane, etcd
    and every watcher, just before "running". A start that takes longer
    (a pull, a slow disk) is still shown as starting.
    """

    def __init__(self, quiet: float = STARTING_QUIET) -> None:
        self.quiet = quiet
        self._pending: list[tuple[str, TaskStatus]] = []
        self._held: dict[str, tuple[str, TaskStatus]] = {}

    def add(self, update: tuple[str, TaskStatus]) -> bool:
        """Queue ``update``; False when it is held back (nothing to send yet)."""
        tid, status = update
        if status.state == TaskState.STARTING:
            self._held[tid] = update
            return False
        self._held.pop(tid, None)
        self._pending.append(update)
        return True

    def replace(self, updates: list[tuple[str, TaskStatus]]) -> None:
        """Send ``updates`` (all of them: a new session's resend) instead."""
        self._held.clear()
        self._pending = list(updates)

    def next_due(self) -> float | None:
        """When the oldest held update falls due; None if none is held."""
        if not self._held:
            return None
        return min(status.timestamp for _, status in self._held.values()) + self.quiet

    def take(self, now: float) -> list[tuple[str, TaskStatus]]:
        """Everything due by ``now``, oldest first; the queue keeps the rest."""
        for tid, (_, status) in list(self._held.items()):
            if status.timestamp + self.quiet <= now:
                self._pending.append(self._held.pop(tid))
        batch, self._pending = self._pending, []
        return batch


class Worker:
    def __init__(self, service: Any, supervisor: Any, join: str, token: str, name: str,
                 address: str, labels: dict[str, str], state_dir: str,
                 max_starting: int = 0, api_token: str = "",
                 on_fatal: Callable[[str], None] | None = None) -> None:
        self.service = service  # AgentService: builds container requests from images
        self.sup = supervisor
        self.join = join
        self.token = token
        self.api_token = api_token  # the control plane presents it to this node's API
        # Called when this node can never join (a wrong token): the agent exits.
        self.on_fatal = on_fatal
        self.name = name
        self.address = address
        self.labels = labels
        self.node_id_path = os.path.join(state_dir, "node_id")
        self.node_id = _read(self.node_id_path)
        self.assigned: dict[str, Task] = {}
        self.containers: dict[str, str] = {}  # task id -> container id
        self.starting: set[str] = set()  # task ids whose start awaits the supervisor
        self.waiting = 0  # starts the last reconcile pass left for later (in-flight limit)
        self.stopping = 0  # stops out with the supervisor
        # One start more than the supervisor launches at once: the next is
        # there the moment a launch ends.
        self.max_in_flight = (max_starting or default_max_launching()) + 1
        self.reported: dict[str, TaskStatus] = {}  # task id -> the last status sent or queued
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._outbox: queue.Queue[cpb.AgentMessage | None] | None = None
        self._status = StatusQueue()
        self._status_ready = threading.Event()
        self._settled_event = threading.Event()  # cuts a batch window short (or stop)
        self._full_seen = False
        self._joined = False  # registered with a control plane at least once
        self._attempt = -1  # which control-plane address the next session tries
        self.state_dir = state_dir
        self._pulls: dict[str, threading.Lock] = {}
        self._pulled: dict[str, str] = {}  # registry ref -> local image id

    # ---- lifecycle -------------------------------------------------------

    def start(self) -> None:
        self._adopt()
        for target, name in ((self._session_loop, "session"), (self._reconcile_loop, "reconcile"),
                             (self._status_loop, "status")):
            threading.Thread(target=target, name=f"worker-{name}", daemon=True).start()

    def stop(self) -> None:
        """Leave the cluster: no more starts, and no more status. Called
        before a node shutdown stops its containers: those exits are the
        node going down, not task failures; the control plane sees the node
        go and decides (its tasks are orphaned and replaced, or, when the
        whole cluster comes back up, the node starts them again)."""
        self._stopped.set()
        self._wake.set()
        self._settled_event.set()
        with self._lock:
            if self._outbox is not None:
                self._outbox.put(None)

    def _adopt(self) -> None:
        """Map the supervisor's task containers to their tasks: at start
        (after an agent restart) and after a new supervisor replaced a dead
        one. A container newly mapped and found exited had its exit go
        unseen (it was killed with its supervisor): reported now."""
        for rec in self.sup.call("list", all=True):
            tid = rec.get("labels", {}).get(TASK_LABEL)
            if not tid:
                continue
            with self._lock:
                new = tid not in self.containers and tid not in self.starting
                if new:
                    self.containers[tid] = rec["id"]
            if new and rec["state"] == "exited":
                self.on_event("exited", rec)

    def resync(self) -> None:
        """A new supervisor replaced a dead one (see the agent's
        SupervisorWatch): pick up the containers of starts that were out
        then, which its predecessor's death ended, and report them."""
        self._adopt()
        self._wake.set()

    # ---- session ---------------------------------------------------------

    def _session_loop(self) -> None:
        delay = 0.05
        quiet_until = 0.0  # a node still joining says why at most every JOIN_LOG_EVERY
        while not self._stopped.is_set():
            started = time.monotonic()
            try:
                self._session()
            except Exception as err:
                if _refused(err):
                    self._refused(err)
                    return
                if self._joined or started >= quiet_until:
                    log.warning("control plane session ended", error=str(err), join=self.join)
                    quiet_until = started + JOIN_LOG_EVERY
            if time.monotonic() - started > 10:
                delay = 0.05
            self._stopped.wait(delay)
            delay = next_retry(delay, self._joined)

    def _session(self) -> None:
        import grpc

        from proto import cluster_pb2_grpc

        outbox: queue.Queue[cpb.AgentMessage | None] = queue.Queue()
        register = cpb.Register(node_id=self.node_id, name=self.name, address=self.address,
                                labels=self.labels, cpus=float(os.cpu_count() or 1),
                                memory_bytes=_memory_bytes(), token=self.token,
                                api_token=self.api_token)
        outbox.put(cpb.AgentMessage(register=register))

        def requests() -> Iterator[cpb.AgentMessage]:
            while True:
                msg = outbox.get()
                if msg is None:
                    return
                yield msg

        # Several control-plane replicas: try them in turn, one per attempt.
        addresses = [a for a in self.join.split(",") if a]
        self._attempt += 1
        target = addresses[self._attempt % len(addresses)]
        with grpc.insecure_channel(target) as channel:
            stub = cluster_pb2_grpc.DispatcherStub(channel)
            responses = stub.Session(requests())
            heartbeat: threading.Thread | None = None
            try:
                for msg in responses:
                    kind = msg.WhichOneof("msg")
                    if kind == "registered":
                        self._registered(msg.registered)
                        with self._lock:
                            self._outbox = outbox
                            # Resend what we know: the control plane may have
                            # missed updates while we were apart.
                            self._status.replace(list(self.reported.items()))
                        self._status_ready.set()
                        heartbeat = threading.Thread(
                            target=self._heartbeat, args=(outbox, msg.registered.heartbeat_interval),
                            daemon=True)
                        heartbeat.start()
                    elif kind == "assignments":
                        self._assignments(msg.assignments)
            finally:
                with self._lock:
                    self._outbox = None
                outbox.put(None)
                with contextlib.suppress(Exception):
                    responses.cancel()

    def _refused(self, err: Exception) -> None:
        """The control plane will not have this node: retrying cannot help."""
        reason = (f"the control plane at {self.join} refused this node: "
                  f"{getattr(err, 'details', lambda: str(err))()}; check the join token "
                  "(--token-file or $ORCH_JOIN_TOKEN)")
        log.error("cannot join the cluster", error=reason)
        self.stop()
        if self.on_fatal is not None:
            self.on_fatal(reason)

    def _registered(self, reg: cpb.Registered) -> None:
        if self.address:
            # Before the assignments are read: no task starts before the
            # control plane's and etcd's ports are fenced off from containers.
            own = int(self.address.rpartition(":")[2])
            self.sup.call("protect", ports=sorted({own, *reg.protected_ports}))
        self._joined = True
        if reg.node_id != self.node_id:
            self.node_id = reg.node_id
            with open(self.node_id_path, "w") as f:
                f.write(reg.node_id)
        log.info("joined the cluster", node_id=self.node_id, join=self.join)

    def _heartbeat(self, outbox: queue.Queue[cpb.AgentMessage | None], interval: float) -> None:
        while not self._stopped.wait(interval or 1.0):
            with self._lock:
                if self._outbox is not outbox:
                    return
            outbox.put(cpb.AgentMessage(heartbeat=True))

    def _assignments(self, msg: cpb.Assignments) -> None:
        tasks = {t.id: task_from_pb(t) for t in msg.tasks}
        with self._lock:
            if msg.full:
                self.assigned = tasks
                self._full_seen = True
            else:
                self.assigned.update(tasks)
                for tid in msg.removed:
                    self.assigned.pop(tid, None)
        self._wake.set()

    # ---- reconcile -------------------------------------------------------

    def _reconcile_loop(self) -> None:
        while not self._stopped.is_set():
            self._wake.wait(1.0)
            self._wake.clear()
            if not self._full_seen:
                continue
            with self._lock:
                assigned = dict(self.assigned)
            try:
                self._reconcile(assigned)
            except Exception:
                log.exception("reconcile failed")

    def _reconcile(self, assigned: dict[str, Task]) -> None:
        waiting = 0
        for tid, task in assigned.items():
            if tid in self.starting:
                continue  # decided again once its start has answered
            cid = self.containers.get(tid)
            if task.desired_state == TaskState.RUNNING:
                if cid is None and tid not in self.reported:
                    if len(self.starting) < self.max_in_flight:
                        self._start(task)
                    else:
                        waiting += 1
            elif cid is not None:
                self._stop_async(tid, task, cid, TaskState.SHUTDOWN)
            elif tid not in self.reported or self.reported[tid].state < TaskState.COMPLETE:
                self._report(task.id, TaskState.SHUTDOWN, "shut down")
        with self._lock:
            gone = [(t, cid) for t, cid in self.containers.items() if t not in assigned]
        for tid, cid in gone:
            # Not in the set: the control plane no longer wants it here.
            self._stop_async(tid, None, cid, None)
        with self._lock:
            self.waiting = waiting

    def _image(self, ref: str) -> str:
        """A local image for ``ref``; registry images are pulled on demand,
        one pull per reference at a time (concurrent tasks wait for it)."""
        if not names_registry(ref):
            return ref
        from nodeagent.images.job import run_job

        with self._lock:
            lock = self._pulls.setdefault(ref, threading.Lock())
        with lock:
            if ref not in self._pulled:
                self._pulled[ref] = run_job(self.state_dir, "pull", ref)
        return self._pulled[ref]

    def _start(self, task: Task) -> None:
        """Ask the supervisor to run the task's container, without waiting:
        its answer comes to :meth:`_started` (the supervisor sets up several
        containers at once)."""
        self._report(task.id, TaskState.STARTING, "starting")
        try:
            cfg = container_config(task)
            cfg.image = self._image(task.spec.image)
            record = self.service._record_request(cfg)
            with self._lock:
                self.starting.add(task.id)
            self.sup.call_async("run", lambda rec, err: self._started(task.id, rec, err),
                                record=record)
        except AgentError as err:
            self._started(task.id, None, err)

    def _started(self, tid: str, rec: dict[str, Any] | None, err: AgentError | None) -> None:
        """The supervisor's answer to a start (on its reader thread, before
        any later event of the container: an exit finds it in containers)."""
        if err is not None or rec is None:
            err = err or AgentError("the supervisor answered a start without a container")
            state = TaskState.REJECTED if isinstance(err, NotFound) else TaskState.FAILED
            self._report(tid, state, "could not start", error=err.message)
        else:
            with self._lock:
                self.containers[tid] = rec["id"]
            self._report(tid, TaskState.RUNNING, "running", container_id=rec["id"])
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
            self._settled_event.set()
        self._wake.set()

    def _stop_async(self, tid: str, task: Task | None, cid: str, final: TaskState | None) -> None:
        self.containers.pop(tid, None)
        with self._lock:
            self.stopping += 1

        def stop() -> None:
            try:
                with contextlib.suppress(AgentError):
                    grace = task.spec.stop_grace_period if task is not None else 10.0
                    self.sup.call("stop", id=cid, timeout=grace)
                with contextlib.suppress(AgentError):
                    self.sup.call("remove", id=cid, force=True)
                if final is not None:
                    self._report(tid, final, "shut down")
                else:
                    self.reported.pop(tid, None)
            finally:
                self._done_one(stop=True)

        threading.Thread(target=stop, name="worker-stop", daemon=True).start()

    def on_event(self, event: str, data: dict[str, Any]) -> None:
        """Supervisor events: a task's container exited."""
        if event != "exited":
            return
        tid = data.get("labels", {}).get(TASK_LABEL)
        if not tid or self.containers.get(tid) != data["id"]:
            return  # not a task, or stopped on purpose (reported by the stopper)
        code = int(data["exit_code"])
        state = TaskState.COMPLETE if code == 0 else TaskState.FAILED
        error = "OOMKilled" if data.get("oom_killed") else (f"exit code {code}" if code else "")
        # The supervisor's word on why, if it has one ("killed: its supervisor ... died").
        error = str(data.get("error") or "") or error
        self._report(tid, state, "exited", error=error, exit_code=code, container_id=data["id"])

    # ---- status ----------------------------------------------------------

    def _report(self, tid: str, state: TaskState, message: str, error: str = "",
                exit_code: int = 0, container_id: str = "") -> None:
        if self._stopped.is_set():
            return
        status = TaskStatus(state=state, message=message, error=error,
                            container_id=container_id or self.containers.get(tid, ""),
                            exit_code=exit_code, timestamp=time.time())
        with self._lock:
            self.reported[tid] = status
            ready = self._status.add((tid, status))
        if ready:
            self._status_ready.set()

    def _status_loop(self) -> None:
        last_sent = 0.0  # monotonic time of the last batch
        while not self._stopped.is_set():
            # Updates wait here while no session is up; a new session's
            # registration sends them all anyway (see _session).
            with self._lock:
                due = self._status.next_due()
            self._status_ready.wait(1.0 if due is None else min(1.0, max(0.0, due - time.time())))
            self._status_ready.clear()
            if self._rest_of_window(last_sent + BATCH_WINDOW):
                return
            with self._lock:
                if self._outbox is None:
                    continue
                batch = self._status.take(time.time())
                if not batch:
                    continue
                updates = [status_update_to_pb(tid, status) for tid, status in batch]
                self._outbox.put(cpb.AgentMessage(status=cpb.StatusBatch(updates=updates)))
                last_sent = time.monotonic()
            # Forget finished tasks the control plane has been told about.
            with self._lock:
                for tid, status in batch:
                    if status.state.terminal and tid not in self.assigned:
                        self.reported.pop(tid, None)

    def _settled(self) -> bool:
        """Nothing starting or stopping and nothing left to start (the caller
        holds the lock): no status update is on its way, so none is worth
        waiting for."""
        return not self.starting and not self.waiting and not self.stopping

    def _rest_of_window(self, end: float) -> bool:
        """Wait until ``end`` (monotonic), or less once the node has settled;
        True if the worker stopped meanwhile."""
        while not self._stopped.is_set():
            rest = end - time.monotonic()
            with self._lock:
                if rest <= 0 or self._settled():
                    return False
            self._settled_event.wait(rest)
            self._settled_event.clear()
        return True


def container_config(task: Task) -> pb.ContainerConfig:
    """The engine request for ``task``: its spec's values, pids 0 = the node's default."""
    spec = task.spec
    cfg = pb.ContainerConfig(
        image=spec.image, name=task.name, env=spec.env,
        ports=[pb.PortMapping(host_port=p.published, container_port=p.target, protocol=p.protocol)
               for p in spec.ports],
        memory_bytes=spec.limits.memory_bytes, cpus=spec.limits.cpus, pids_limit=spec.limits.pids,
        restart_policy="no", network="bridge",
        labels={**spec.labels, TASK_LABEL: task.id, SERVICE_LABEL: task.service_name},
        # A hostname label may not end in '.' or '-', where a cut can fall.
        stop_timeout=spec.stop_grace_period, hostname=task.name[:63].rstrip(".-"),
        storage_size_bytes=spec.storage_size,
        volatile_rootfs=True,  # a task's container runs once; a new task replaces it
    )
    if spec.command is not None:
        cfg.command.values.extend(spec.command)
    if spec.entrypoint is not None:
        cfg.entrypoint.values.extend(spec.entrypoint)
    return cfg


def _refused(err: Exception) -> bool:
    """A session error that says this node is not accepted (wrong token)."""
    code = getattr(err, "code", None)
    if not callable(code):
        return False
    import grpc

    return bool(code() == grpc.StatusCode.UNAUTHENTICATED)


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def _memory_bytes() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
