"""Agent sessions: register, heartbeats, assignments, network state, task status.

No business logic: the dispatcher moves assignments and network state down
and status up.
- Register creates or refreshes the Node object (state ready). A node gets a
  small unique ``index`` the first time (the lowest free one, claimed in the
  store with the node's write, so two replicas never give one twice) and
  keeps it.
- Heartbeats (each message on a node's stream, and each of its liveness
  beacons, ``controlplane.beacon``, every 0.1 s) are kept in memory; a
  node's is written to the store as ``Node.last_heartbeat`` once the stored
  one is ``WRITE_AGE`` old (``LEADER_WRITE_AGE`` on the leader, whose
  monitor reads them in memory), checked every ``BEAT_TICK`` and at once
  when a beacon finds it so (a node heard again after a blip is stored
  within milliseconds), in one batch for all nodes due; the leader's node
  monitor decides when a node is down.
- Sessions run on the server's event loop (``common.aioserver``): a node's
  session is a task, not threads.
- Assignments: first the *full* set of the node's tasks, then changes, fed by
  the informer (O(changes) per event). A task is assigned while its status is
  between ASSIGNED and RUNNING; once terminal it is sent as removed.
- Secrets and configs: an assignments message carries the values of the
  versions its tasks are granted (``Assignments.secrets``), opened with the
  cluster's key (``controlplane.envelope``) as the message is made: only
  for tasks the node is to run (desired running), only on that node's
  session, never logged. A node that runs no task granted a secret never
  receives it.
- Network state (``netview``): the full state the node needs for service
  networking when its session starts (before its full assignment set), then
  changes, queued with the assignments; a batch drained from the queue goes
  out as one network message, then one assignments message.
- Status arrives in batches and is written in batches, at most one
  transaction per ``STATUS_WINDOW``: an update after a quiet spell is written
  at once, one in a busy spell with the rest of its window; a state never
  moves backwards (``controllers.can_advance``); a refused report is logged
  with the task it names.

Logs: each session's lines carry its node (``node``, ``node_id``), bound when
it registers; a line about a task carries the task (``controlplane.logctx``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import hmac
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import structlog
from structlog.typing import FilteringBoundLogger

from common.beacon import INTERVAL as BEACON_INTERVAL
from common.tls import REVOKED, peer_identity
from controlplane.beacon import BeaconListener
from controlplane.controllers import HEARTBEAT_INTERVAL, can_advance
from controlplane.envelope import EnvelopeError, Kek, binding, open_value
from controlplane.logctx import node_fields, task_fields
from controlplane.netview import NetworkView, assigned, merge_network_states
from controlplane.store import Change, Informer, Kind, Op, Store, StoreConflict, StoreError, node_index_claim
from controlplane.trust import Trust, TrustError
from model.objects import Node, NodeResources, Secret, Task, TaskState, TaskStatus
from model.wire import WireError, status_update_from_pb, task_to_pb
from proto import cluster_pb2 as cpb
from proto import cluster_pb2_grpc as cpb_grpc

_log = structlog.get_logger("orch.dispatcher")

FLUSH_INTERVAL = 1.0  # the published ports' refresh
# A node's stored heartbeat is rewritten once it is this old (seconds) and a
# newer one is in memory: with beacons every 0.1 s it lags the node by at
# most ~0.6 s, well inside the monitor's grace (1.5 s).
WRITE_AGE = 0.5
# On the leader, whose monitor reads its own sessions' heartbeats from
# memory (``heard``), this old: a node's write every 5 s instead of two a
# second (at 1,000 nodes, 2,000 etcd writes a second fewer, and as many
# events fewer for every replica's informer). A new leader gives every
# node a full grace from its start, so a stale stored beat marks none down.
LEADER_WRITE_AGE = 5.0
# ...once it holds this many sessions: below, the writes cost little, and
# stored beats stay as fresh as a follower's (what `orch nodes` shows).
LAZY_SESSIONS = 100
HEARD_KEPT = 60.0  # seconds a node's last heartbeat is kept after its session ends
LAG_TICK = 0.1  # how often the loop's lag is sampled
LAG_MEMORY = 3.0  # seconds a late tick counts in ``LoopLag.allowance``
LAG_LOGGED = 1.0  # a tick this late is logged
BEAT_TICK = 0.1
STATUS_WINDOW = 0.02
# Assignment changes queued for a node go out as one message, up to this
# many: a rollout's burst is a few messages, not one per task.
MAX_DELTAS = 500
MAX_NODE_INDEX = 65535  # two bytes of a node's overlay MAC
# Threads that open sessions (a node's write, its full state) at once: a
# session then holds none (it runs on the server's loop).
OPEN_THREADS = 8


class LoopLag:
    """How far behind the server's event loop runs, where the sessions read
    the nodes' heartbeats. A loop kept from running (its process busy: a
    pass over a big cluster holding the GIL) reads them late, and a monitor
    reading them then would mark live nodes down: at 1,000 nodes, a
    rollout's passes made 17,000 ready/down flips in 10 minutes. The
    monitor allows this much more (``allowance``): the current stall, or
    the worst lateness in the last LAG_MEMORY seconds (the backlog a loop
    reads after a stall is not read at once)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._last: float | None = None  # when the last tick ran
        self._late: collections.deque[tuple[float, float]] = collections.deque()  # (when, seconds late)

    async def run(self) -> None:
        while True:
            start = self.clock()
            await asyncio.sleep(LAG_TICK)
            self.record(start, self.clock())

    def record(self, start: float, end: float) -> None:
        """A tick that began at ``start`` (to sleep LAG_TICK) ran at ``end``."""
        late = max(0.0, end - start - LAG_TICK)
        with self._lock:
            self._last = end
            if late > LAG_TICK:
                self._late.append((end, late))
            while self._late and end - self._late[0][0] > LAG_MEMORY:
                self._late.popleft()
        if late >= LAG_LOGGED:
            _log.warning("dispatcher loop ran late: heartbeats were read late", seconds=round(late, 2))

    def allowance(self) -> float:
        """Seconds the heartbeats read on the loop may be behind the nodes."""
        now = self.clock()
        with self._lock:
            if self._last is None:
                return 0.0
            stall = max(0.0, now - self._last - LAG_TICK)
            recent = max((late for when, late in self._late if now - when <= LAG_MEMORY), default=0.0)
        return max(stall, recent)


class Outbox:
    """A session's messages to its node, in order: put from any thread (the
    informer's, the network view's), taken in batches on the server's loop.
    A put wakes the loop once per batch, not once per message."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._items: collections.deque[cpb.DispatcherMessage | None] = collections.deque()
        self._lock = threading.Lock()
        self._waiter: asyncio.Future[None] | None = None

    def put(self, msg: cpb.DispatcherMessage | None) -> None:
        with self._lock:
            self._items.append(msg)
            waiter, self._waiter = self._waiter, None
        if waiter is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: the session is over
                self._loop.call_soon_threadsafe(_wake, waiter)

    async def take(self, timeout: float, limit: int = MAX_DELTAS) -> list[cpb.DispatcherMessage | None]:
        """Up to ``limit`` messages, waiting up to ``timeout`` for the first ([]: none came)."""
        with self._lock:
            waiter = None
            if not self._items:
                waiter = self._waiter = self._loop.create_future()
        if waiter is not None:
            await asyncio.wait([waiter], timeout=timeout)
            with self._lock:
                self._waiter = None
        with self._lock:
            return [self._items.popleft() for _ in range(min(limit, len(self._items)))]


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class _Session:
    def __init__(self, node_id: str, out: Outbox, log: FilteringBoundLogger | None = None) -> None:
        self.node_id = node_id
        self.log = log if log is not None else _log.bind(node_id=node_id)
        self.out = out
        self.sent: set[str] = set()
        self.lock = threading.Lock()
        self.beacon_key = b""


class _Refused(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code, self.details = code, details


class Dispatcher(cpb_grpc.DispatcherServicer):
    def __init__(self, store: Store, informer: Informer, token: str,
                 clock: Any = time.time, protected_ports: list[int] | None = None,
                 on_running: Callable[[float, float], None] | None = None, kek: Kek | None = None,
                 trust: Trust | None = None,
                 ports_source: Callable[[], list[int] | None] | None = None,
                 leading: Callable[[], bool] | None = None) -> None:
        self.store = store
        self.leading = leading  # whether this replica leads (None: never; see LEADER_WRITE_AGE)
        # Every control plane's and etcd's ports, which the nodes fence off
        # from containers: this replica's, and (``ports_source``, read on
        # each flush) those the other replicas published. A change reaches
        # each session within about a second.
        self.ports_source = ports_source
        # The cluster's CA: over mutual TLS a node is who its certificate
        # says (its CN), and renews it here. None: plaintext, ``token`` checked.
        self.trust = trust
        self.kek = kek  # opens the secret values a node's tasks are granted (None: none can be sent)
        # Hears (created_at, now) of each task that turns running: the scheduling delay's metric.
        self.on_running = on_running
        self.informer = informer
        self.token = token
        self.own_ports = sorted(set(protected_ports or []))
        self.protected_ports = list(self.own_ports)
        self.clock = clock
        self.sessions: dict[str, _Session] = {}
        self.heartbeats: dict[str, float] = {}
        self.status: list[tuple[str, TaskStatus]] = []  # (task id, status), as they came
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._status_ready = threading.Event()
        self._pool = ThreadPoolExecutor(OPEN_THREADS, thread_name_prefix="dispatcher-open")
        self._age = WRITE_AGE  # a stored beat's age that calls for a write: _write_age, once a tick
        self.lag = LoopLag()
        self._lag_task: asyncio.Task[None] | None = None  # started with the first session, on its loop
        # Set by the server: the ear for the nodes' liveness beacons (None: streams only).
        self.beacon: BeaconListener | None = None
        # Before the assignments' handler: a change's network state is queued first.
        self.netview = NetworkView(informer)
        informer.add_handler(self._on_change)
        threading.Thread(target=self._flush_loop, name="dispatcher-flush", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        self._status_ready.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            for s in self.sessions.values():
                s.out.put(None)

    # ---- the session RPC -------------------------------------------------

    async def Session(self, request_iterator: AsyncIterator[cpb.AgentMessage],
                      context: grpc.aio.ServicerContext) -> None:
        """A node's session, on the server's event loop (``common.aioserver``):
        it holds no thread. Its blocking steps (the node's write, the full
        state) run on the dispatcher's pool."""
        loop = asyncio.get_running_loop()
        if self._lag_task is None:
            self._lag_task = loop.create_task(self.lag.run())
        requests = aiter(request_iterator)
        first = await anext(requests, None)
        if first is None or first.WhichOneof("msg") != "register":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "a session starts with Register")
        assert first is not None
        out = Outbox(loop)
        try:
            session, opening = await loop.run_in_executor(
                self._pool, self._open_session, first.register, peer_identity(context), context.peer(), out)
        except _Refused as refused:
            await context.abort(refused.code, refused.details)
        reader = loop.create_task(self._read(requests, session))
        try:
            for msg in opening:
                await context.write(msg)
            ports = self.protected_ports
            while True:
                if self.protected_ports != ports:
                    ports = self.protected_ports
                    await context.write(cpb.DispatcherMessage(
                        protected_ports=cpb.ProtectedPorts(ports=ports)))
                batch = await out.take(timeout=1.0)
                if not batch:
                    continue
                networks, deltas, ended = _split(batch)
                if networks:
                    await context.write(cpb.DispatcherMessage(
                        network_state=networks[0] if len(networks) == 1 else merge_network_states(networks)))
                if deltas:
                    await context.write(cpb.DispatcherMessage(
                        assignments=deltas[0] if len(deltas) == 1 else merge_deltas(deltas)))
                if ended:
                    return
        finally:
            reader.cancel()
            self._close_session(session)

    def _open_session(self, reg: cpb.Register, who: Any, peer: str,
                      out: Outbox) -> tuple[_Session, list[cpb.DispatcherMessage]]:
        """Admit the node (``_Refused`` if not), register it, and make its
        session: the messages it starts with, the full state."""
        if self.trust is not None:
            if who is None or who.role != "node" or who.node_id in self.trust.revoked(fresh=True):
                _log.warning("session refused: not a node of this cluster", node=reg.name, peer=peer)
                raise _Refused(grpc.StatusCode.UNAUTHENTICATED,
                               f"this node's certificate {REVOKED}: it was removed from the cluster")
            reg.node_id = who.node_id  # the certificate says who the node is
        elif self.token and not hmac.compare_digest(reg.token, self.token):
            _log.warning("session refused: wrong join token", node=reg.name, peer=peer)
            raise _Refused(grpc.StatusCode.UNAUTHENTICATED,
                           "wrong join token: this control plane does not accept it")
        node = self._register(reg)
        session = _Session(node.id, out, _log.bind(**node_fields(node)))
        with self._lock:
            old = self.sessions.get(node.id)
            if old is not None:
                old.out.put(None)  # a node has one session: the newest
            self.sessions[node.id] = session
            self.heartbeats[node.id] = self.clock()
        session.log.info("node session", address=node.address, replaced=old is not None)
        try:
            beacon = self.beacon
            session.beacon_key = beacon.open(node.id) if beacon is not None else b""
            registered = cpb.DispatcherMessage(registered=cpb.Registered(
                node_id=node.id, heartbeat_interval=HEARTBEAT_INTERVAL,
                protected_ports=self.protected_ports,
                beacon_port=beacon.port if beacon is not None else 0, beacon_key=session.beacon_key,
                beacon_interval=BEACON_INTERVAL))
            # The networks before the tasks that use them.
            networks = cpb.DispatcherMessage(network_state=self.netview.start(node.id, out))
            with session.lock:
                tasks = [t for t in self.informer.tasks_of_node(node.id) if assigned(t)]
                session.sent = {t.id for t in tasks}
                full = cpb.Assignments(full=True, tasks=[task_to_pb(t) for t in tasks],
                                       secrets=self._payloads(tasks, session))
        except BaseException:
            self._close_session(session)
            raise
        return session, [registered, networks, cpb.DispatcherMessage(assignments=full)]

    def _close_session(self, session: _Session) -> None:
        if self.beacon is not None and session.beacon_key:
            self.beacon.close(session.node_id, session.beacon_key)
        self.netview.stop(session.node_id, session.out)
        with self._lock:
            if self.sessions.get(session.node_id) is session:
                del self.sessions[session.node_id]
        session.log.info("node session ended")

    def Renew(self, request: cpb.RenewRequest, context: grpc.ServicerContext) -> cpb.RenewReply:
        """A new certificate for the calling node: its identity, the request's key."""
        who = peer_identity(context)
        if self.trust is None or who is None or who.role != "node":
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          "renewal needs mutual TLS and a node certificate")
        assert self.trust is not None and who is not None
        try:
            cert = self.trust.issue(request.csr, who.node_id, "node")
        except TrustError as err:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"the certificate request: {err}")
        _log.info("certificate renewed", node_id=who.node_id)
        return cpb.RenewReply(cert=cert)

    async def _read(self, requests: AsyncIterator[cpb.AgentMessage], session: _Session) -> None:
        try:
            async for msg in requests:
                kind = msg.WhichOneof("msg")
                updates = _readable(msg.status.updates, session.log) if kind == "status" else []
                with self._lock:
                    if self.sessions.get(session.node_id) is not session:
                        return
                    self.heartbeats[session.node_id] = self.clock()
                    if updates:
                        self.status.extend(updates)
                        self._status_ready.set()
        except Exception:
            pass
        finally:
            session.out.put(None)

    def heard(self, node_id: str) -> float:
        """When ``node_id`` was last heard on a session with this replica,
        open or ended within HEARD_KEPT (0.0: not). The leader's node monitor
        reads it besides the stored heartbeat: the store's copy reaches the
        monitor through the informer, which a busy leader (a big deploy's
        events) can read seconds late, and the leader stores its own
        sessions' beats only every LEADER_WRITE_AGE."""
        with self._lock:
            return self.heartbeats.get(node_id, 0.0)

    def _write_age(self) -> float:
        lazy = self.leading is not None and len(self.sessions) >= LAZY_SESSIONS and self.leading()
        return LEADER_WRITE_AGE if lazy else WRITE_AGE

    def beat(self, node_id: str) -> None:
        """A beacon of ``node_id``'s (``BeaconListener.on_beat``): a heartbeat,
        written at once if the stored one is due."""
        now = self.clock()
        with self._lock:
            if node_id not in self.sessions:
                return
            self.heartbeats[node_id] = now
        node = self.informer.get(Kind.NODE, node_id)
        if isinstance(node, Node) and (node.state != "ready" or now - node.last_heartbeat >= self._age):
            self._status_ready.set()  # wakes the flush loop

    def _register(self, reg: cpb.Register) -> Node:
        tried: set[int] = set()  # indexes found claimed by nodes this cache does not know yet
        for _ in range(8):
            existing = self.informer.get(Kind.NODE, reg.node_id) if reg.node_id else None
            if existing is None and self.trust is None:  # over mTLS, the certificate's id alone
                existing = next((n for n in self.informer.nodes() if n.name == reg.name), None)
            now = self.clock()
            resources = NodeResources(cpus=reg.cpus, memory_bytes=reg.memory_bytes)
            if existing is None:
                node = Node(id=reg.node_id or secrets.token_hex(12), name=reg.name,
                            address=reg.address, labels=dict(reg.labels), resources=resources,
                            state="ready", last_heartbeat=now,
                            metrics_address=reg.metrics_address, ready_since=now)
            else:
                assert isinstance(existing, Node)
                node = dataclasses.replace(
                    existing, address=reg.address, resources=resources, state="ready",
                    last_heartbeat=now, labels={**dict(reg.labels), **existing.labels},
                    metrics_address=reg.metrics_address,
                    ready_since=existing.ready_since if existing.state == "ready" else now)
            op = Op.create(node) if existing is None else Op.update(node)
            try:
                if node.index:  # kept across registrations
                    return self.store.update(node)
                index = self._free_index(tried)
                tried.add(index)
                [written] = self.store.write_guarded([Op(op.action, dataclasses.replace(node, index=index))],
                                                     claims=[node_index_claim(index)])
                assert isinstance(written, Node)
                return written
            except StoreConflict:
                time.sleep(0.05)
        raise StoreError(f"could not register node {reg.name}: too many conflicts")

    def _free_index(self, tried: set[int]) -> int:
        """The lowest node index no node this cache knows has, and not ``tried``."""
        taken = {n.index for n in self.informer.nodes()} | tried
        index = next(i for i in range(1, MAX_NODE_INDEX + 2) if i not in taken)
        if index > MAX_NODE_INDEX:
            raise StoreError(f"no node index is left: {MAX_NODE_INDEX} nodes have joined")
        return index

    # ---- assignments -----------------------------------------------------

    def _on_change(self, change: Change) -> None:
        if change.kind == Kind.NODE and change.type == "delete":
            with self._lock:  # removed (`orch node rm`): its session ends here too
                gone = self.sessions.get(change.obj.id)
            if gone is not None:
                gone.out.put(None)
            return
        if change.kind != Kind.TASK:
            return
        task, old = change.obj, change.old
        assert isinstance(task, Task)
        for node_id in {task.node_id, getattr(old, "node_id", "")} - {""}:
            with self._lock:
                session = self.sessions.get(node_id)
            if session is None:
                continue
            with session.lock:
                msg = self._delta(session, task, change.type == "delete", old)
            if msg is not None:
                if msg.tasks:
                    msg.secrets.extend(self._payloads([task], session))
                session.out.put(cpb.DispatcherMessage(assignments=msg))

    def _payloads(self, tasks: Iterable[Task], session: _Session) -> list[cpb.SecretPayload]:
        """The values of the secret and config versions granted to those of
        ``tasks`` the node is to start. One that cannot be opened is left
        out, with a warning naming it (never its value): the node then
        rejects the task, saying which file it lacks."""
        out: dict[str, cpb.SecretPayload] = {}
        for task in tasks:
            if task.desired_state != TaskState.RUNNING or task.status.state.terminal:
                continue
            for ref in (*task.spec.secrets, *task.spec.configs):
                if ref.secret_id in out:
                    continue
                try:
                    out[ref.secret_id] = cpb.SecretPayload(id=ref.secret_id, data=self._open(ref.secret_id))
                except EnvelopeError as err:
                    session.log.warning("secret not sent with its task", **task_fields(task),
                                        secret=ref.source, secret_id=ref.secret_id, error=str(err))
        return list(out.values())

    def _open(self, version_id: str) -> bytes:
        """The value of a secret (config) version; EnvelopeError saying why not."""
        version = self.informer.get(Kind.SECRET, version_id) if version_id else None
        if not isinstance(version, Secret) or version.sealed is None:
            raise EnvelopeError("the version is gone, or holds no value")
        if self.kek is None:
            raise EnvelopeError("this control plane has no secrets key")
        return open_value(self.kek, version.sealed, binding(version.id, version.kind, version.name))

    @staticmethod
    def _delta(session: _Session, task: Task, deleted: bool,
               old: object = None) -> cpb.Assignments | None:
        wanted = not deleted and task.node_id == session.node_id and assigned(task)
        if wanted:
            if (task.id in session.sent and isinstance(old, Task)
                    and old.desired_state == task.desired_state and old.node_id == task.node_id):
                # Only its status moved (the node's own report): the node has
                # it already. A task's spec never changes; a new spec is a new task.
                return None
            session.sent.add(task.id)
            return cpb.Assignments(tasks=[task_to_pb(task)])
        if task.id in session.sent:
            session.sent.discard(task.id)
            return cpb.Assignments(removed=[task.id])
        return None

    # ---- writing heartbeats and status -----------------------------------

    def _flush_loop(self) -> None:
        last_ports = 0.0
        last_status = 0.0  # monotonic time of the last status write
        while not self._stop.is_set():
            if self._status_ready.wait(BEAT_TICK) and not self._stop.wait(
                    max(0.0, last_status + STATUS_WINDOW - time.monotonic())):
                self._status_ready.clear()
            try:
                if self._flush_status():
                    last_status = time.monotonic()
                self._flush_heartbeats()
                if self.clock() - last_ports >= FLUSH_INTERVAL:
                    last_ports = self.clock()
                    published = self.ports_source() if self.ports_source is not None else None
                    if published is not None:
                        self.protected_ports = sorted(set(self.own_ports) | set(published))
            except StoreError as err:
                _log.warning("dispatcher write failed", error=str(err))

    def _flush_heartbeats(self) -> None:
        age = self._age = self._write_age()
        now = self.clock()
        with self._lock:
            for node_id in [n for n, beat in self.heartbeats.items()
                            if n not in self.sessions and now - beat > HEARD_KEPT]:
                del self.heartbeats[node_id]
            beats = {n: self.heartbeats[n] for n in self.sessions if n in self.heartbeats}
        ops = []
        for node_id, beat in beats.items():
            node = self.informer.get(Kind.NODE, node_id)
            if not isinstance(node, Node):
                continue
            late = beat > node.last_heartbeat and node.state != "ready"
            if beat - node.last_heartbeat >= age or late:
                ops.append(Op.update(dataclasses.replace(node, last_heartbeat=beat)))
        if ops:
            try:
                self.store.batch(ops)
            except StoreConflict:
                pass  # the node changed meanwhile; the next flush carries the beat

    def _flush_status(self) -> bool:
        """Write the pending status; True if there was any."""
        with self._lock:
            updates, self.status = self.status, []
        if not updates:
            return False
        latest = dict(updates)  # within a batch, the last word counts
        refused: list[tuple[Task, TaskStatus]] = []
        for attempt in range(3):
            ops, refused = self._status_ops(latest)
            if not ops:
                break
            try:
                self.store.batch(ops)
            except StoreConflict:
                time.sleep(0.02 * (attempt + 1))  # let the informer catch up, then retry
                continue
            _log_failures(op.obj for op in ops)
            break
        else:
            # Still behind another writer: the updates go back to the head of
            # the queue for the next flush. A node reports each change once,
            # so a dropped one would leave its task as last written for good
            # (a start never counted, a rollout waiting on it for ever).
            _log.warning("task status write conflicted; retrying with the next flush",
                        tasks=len(latest))
            with self._lock:
                self.status[:0] = list(latest.items())
            self._status_ready.set()
            return True
        for task, update in refused:
            _log_refused(task, update)
        return True

    def _status_ops(self, latest: dict[str, TaskStatus]) -> tuple[list[Op], list[tuple[Task, TaskStatus]]]:
        """The writes that apply ``latest`` to the cached tasks, and the
        reports refused (a move back, or out of a terminal state)."""
        ops, refused = [], []
        for task_id, u in latest.items():
            task = self.informer.get(Kind.TASK, task_id)
            if not isinstance(task, Task):
                continue  # gone: nothing to write, nothing refused
            if task.status.state == u.state:
                if u.health != task.status.health and not u.state.terminal:
                    # The task's health moved (its state did not): that is written, with
                    # its time (a rollout counts a task's monitor period from it).
                    status = dataclasses.replace(task.status, health=u.health,
                                                 timestamp=u.timestamp or self.clock())
                    ops.append(Op.update(dataclasses.replace(task, status=status)))
                continue  # else a repeat: nothing to write, nothing refused
            if not can_advance(task.status.state, u.state):
                refused.append((task, u))
                continue
            status = dataclasses.replace(
                task.status, state=u.state, message=u.message, error=u.error,
                container_id=u.container_id or task.status.container_id,
                exit_code=u.exit_code, timestamp=u.timestamp or self.clock(), health=u.health)
            ops.append(Op.update(dataclasses.replace(task, status=status)))
            if u.state == TaskState.RUNNING and self.on_running is not None:
                self.on_running(task.created_at, status.timestamp)
        return ops, refused


def _split(batch: list[cpb.DispatcherMessage | None],
           ) -> tuple[list[cpb.NetworkState], list[cpb.Assignments], bool]:
    """A batch taken from a session's outbox as network changes and
    assignment changes, and whether the session's end came with them (what
    follows the end is not sent)."""
    networks: list[cpb.NetworkState] = []
    deltas: list[cpb.Assignments] = []
    for msg in batch:
        if msg is None:
            return networks, deltas, True
        if msg.WhichOneof("msg") == "network_state":
            networks.append(msg.network_state)
        else:
            deltas.append(msg.assignments)
    return networks, deltas, False


def _readable(updates: Iterable[cpb.TaskStatusUpdate],
              log: FilteringBoundLogger) -> list[tuple[str, TaskStatus]]:
    """The updates as (task id, status); one this version cannot read (a state
    from a newer node) is logged (on the session's ``log``) and dropped, the
    rest still count."""
    out = []
    for update in updates:
        try:
            out.append(status_update_from_pb(update))
        except WireError as err:
            log.warning("unreadable task status", task_id=update.task_id, error=str(err))
    return out


def _log_failures(written: Iterable[object]) -> None:
    """A line for each task whose written status says it failed or its node rejected it."""
    for task in written:
        if isinstance(task, Task) and task.status.state in (TaskState.FAILED, TaskState.REJECTED):
            _log.warning("task failed", **task_fields(task), state=task.status.state.label(),
                         exit_code=task.status.exit_code, error=task.status.error,
                         message=task.status.message)


def _log_refused(task: Task, update: TaskStatus) -> None:
    """A late or repeated report (a node's resend after a reconnect, a task
    the leader orphaned): refused, as ``controllers.transitions`` rules."""
    current = task.status.state
    _log.info("task status refused: a task's state never moves back", **task_fields(task),
              state=current.label(), reported=update.state.label(),
              reason=f"{current.label()} is {'final' if current.terminal else 'later'}")


def merge_deltas(deltas: list[cpb.Assignments]) -> cpb.Assignments:
    """Assignment changes in order, as one: each task's last change wins (a
    task assigned, then removed, is removed; removed, then assigned, is
    assigned), so the node ends where applying them one by one would."""
    last: dict[str, cpb.Task | None] = {}
    payloads: dict[str, cpb.SecretPayload] = {}
    for delta in deltas:
        last.update((t.id, t) for t in delta.tasks)
        last.update((tid, None) for tid in delta.removed)
        payloads.update((p.id, p) for p in delta.secrets)
    tasks = [a for a in last.values() if a is not None]
    granted = {r.secret_id for t in tasks for r in (*t.spec.secrets, *t.spec.configs)}
    return cpb.Assignments(tasks=tasks, removed=[tid for tid, a in last.items() if a is None],
                           secrets=[p for vid, p in payloads.items() if vid in granted])
