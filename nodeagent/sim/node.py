"""One simulated node: the real agent session protocol, over grpc.aio.

A ``SimNode`` holds a node identity got by joining (``common.identity``:
the join token, the join port, a certificate for its own key) and runs the
session loop of ``nodeagent.cluster.session`` on an event loop instead of
threads: one Dispatcher ``Session`` stream over mutual TLS with its own
certificate, ``Register`` first (its resources, its labels, the platform
labels a real node gives itself), heartbeats every ``heartbeat_interval``
the control plane names (on a fixed beat at a random phase, so thousands of
nodes registered in one burst do not beat in bursts), assignments handed to
its ``SimTasks``, task status in batches (at most one per ``BATCH_WINDOW``,
at once when the node has settled). Network state is only counted
(``network_messages``, ``network_entries``): there is no data plane to
apply it to. A stream that ends is opened again, on a new channel, with the
real backoff (``next_retry``); a refused one (the node was removed) ends
the node. Certificates are not renewed (they last the cluster's
``--cert-days``, 90 by default).

Where a real agent tries the control-plane replicas in order from the
first, node ``i`` starts at replica ``i mod R``: each replica serves a
bounded number of sessions at once (its gRPC thread pool), so the nodes of
one simulation are spread over them from the start.

``kill`` ends the stream and closes the node's connection (no more
heartbeats: the control plane marks it down after its grace period);
``revive`` registers again with the same identity. By default a kill is a
machine going away (its tasks with it); ``lose_tasks=False`` is a lost link
or a restarted agent (its containers keep running, and it reports them
again when it is back).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from common import pki
from common.identity import NodeIdentity
from common.tls import REVOKED, client_credentials
from model.wire import status_update_to_pb, task_from_pb
from nodeagent.cluster.session import MAX_MESSAGE, _arch, _refused, next_retry
from nodeagent.cluster.status import BATCH_WINDOW
from nodeagent.sim.tasks import Behaviour, SimTasks
from proto import cluster_pb2 as cpb

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger

    from nodeagent.sim.beacons import BeaconHub

__all__ = ["SimNode"]

# The node's state, as ``Simulator.status`` counts it.
JOINING, CONNECTING, REGISTERED, KILLED, REMOVED = "joining", "connecting", "registered", "killed", "removed"


class SimNode:
    def __init__(self, name: str, index: int, labels: dict[str, str], cpus: float, memory_bytes: int,
                 address: str, targets: list[str], behaviour: Behaviour, log: FilteringBoundLogger,
                 beacons: BeaconHub | None = None, on_change: Callable[[], None] | None = None) -> None:
        self.name = name
        self.index = index
        self.labels = {"platform.os": "linux", "platform.arch": _arch(), **labels}
        self.cpus = cpus
        self.memory_bytes = memory_bytes
        self.address = address
        self.targets = targets
        self.log = log
        self.beacons = beacons
        self.on_change = on_change or (lambda: None)
        self.identity: NodeIdentity | None = None
        self.node_id = ""
        self.state = JOINING
        self.sessions = 0  # registrations so far
        self.network_messages = 0  # network state messages received, and the entries in them
        self.network_entries = 0
        self.removed_reason = ""
        self.rng = random.Random(index)
        self.tasks = SimTasks(behaviour, self._later, self._wake_writer, self.rng)
        self._attempt = index - 1  # the first session tries replica index mod R
        self._joined = False
        self._runner: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    # ---- life ---------------------------------------------------------------

    def start(self, identity: NodeIdentity) -> None:
        """Begin the session loop with ``identity`` (from joining); a node
        killed while it was joining waits for ``revive``."""
        self.identity = identity
        self.node_id = identity.node_id
        if self.state != KILLED:
            self._run()

    def refused(self, reason: str) -> None:
        """The cluster will not have this node (its join was refused)."""
        self.removed_reason = reason
        self._set(REMOVED)

    def _run(self) -> None:
        self._set(CONNECTING)
        self._runner = asyncio.get_running_loop().create_task(self._loop(), name=f"sim-{self.name}")

    async def kill(self, lose_tasks: bool = True) -> None:
        """End the stream and drop the connection; the node stays silent until ``revive``."""
        if self.state in (KILLED, REMOVED):
            return
        await self._halt()
        if lose_tasks:
            self.tasks.reset()
        self._set(KILLED)

    def revive(self) -> None:
        """Register again, with the same identity."""
        if self.state != KILLED:
            return
        if self.identity is None:
            self._set(JOINING)  # ``start`` runs it once joined
        else:
            self._run()

    async def close(self) -> None:
        await self._halt()

    async def _halt(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await runner

    def _set(self, state: str) -> None:
        if self.state != state:
            self.state = state
            self.on_change()

    # ---- the session loop (``nodeagent.cluster.session.Session.run``) -----

    async def _loop(self) -> None:
        delay = 0.05
        quiet_until = 0.0
        while True:
            started = time.monotonic()
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except Exception as err:
                if _refused(err):
                    details = _details(err)
                    self.removed_reason = details
                    self.log.error("cannot join the cluster", node=self.name, error=details,
                                   removed=REVOKED in details)
                    self._set(REMOVED)
                    return
                if self._joined and started >= quiet_until:
                    self.log.warning("control plane session ended", node=self.name, error=_short(err))
                    quiet_until = started + 10.0
            self._set(CONNECTING)
            if time.monotonic() - started > 10:
                delay = 0.05
            await asyncio.sleep(delay)
            delay = next_retry(delay, self._joined)

    def _channel(self, target: str) -> Any:
        """A channel to ``target`` for one session, as the agent makes one:
        mutual TLS with the node's own certificate. The control plane takes
        the node's identity from that certificate, so nodes cannot share a
        channel: one connection a node."""
        import grpc

        assert self.identity is not None
        creds = self.identity.creds
        options = [("grpc.ssl_target_name_override", pki.SERVER_NAMES["controlplane"]),
                   ("grpc.max_receive_message_length", MAX_MESSAGE)]
        tls = client_credentials(creds.ca_pem, creds.cert_pem, creds.key_pem)
        return grpc.aio.secure_channel(target, tls, options=options)

    def _register(self) -> cpb.Register:
        return cpb.Register(node_id=self.node_id, name=self.name, address=self.address, labels=self.labels,
                            cpus=self.cpus, memory_bytes=self.memory_bytes)

    async def _session(self) -> None:
        from proto import cluster_pb2_grpc

        self._attempt += 1
        target = self.targets[self._attempt % len(self.targets)]
        channel = self._channel(target)
        call = cluster_pb2_grpc.DispatcherStub(channel).Session()
        writer: asyncio.Task[None] | None = None
        beacon = False
        try:
            await call.write(cpb.AgentMessage(register=self._register()))
            async for msg in call:
                kind = msg.WhichOneof("msg")
                if kind == "assignments":
                    a = msg.assignments
                    self.tasks.assign({t.id: task_from_pb(t) for t in a.tasks}, list(a.removed), a.full)
                elif kind == "registered":
                    reg = msg.registered
                    self.node_id = reg.node_id
                    self._joined = True
                    self.sessions += 1
                    self._set(REGISTERED)
                    self.tasks.attach()
                    writer = asyncio.get_running_loop().create_task(
                        self._write(call, reg.heartbeat_interval or 1.0))
                    if self.beacons is not None and reg.beacon_port and reg.beacon_key:
                        self.beacons.add(self.node_id, target, reg.beacon_port, bytes(reg.beacon_key),
                                         reg.beacon_interval)
                        beacon = True
                elif kind == "network_state":  # nothing to apply without a data plane: counted
                    n = msg.network_state
                    self.network_messages += 1
                    self.network_entries += (len(n.networks) + len(n.removed_networks) + len(n.peers)
                                             + len(n.removed_peers) + len(n.services)
                                             + len(n.removed_services) + len(n.endpoints)
                                             + len(n.removed_endpoints))
        finally:
            if beacon and self.beacons is not None:
                self.beacons.remove(self.node_id)
            if writer is not None:
                writer.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await writer
            call.cancel()
            with contextlib.suppress(Exception):
                await channel.close(grace=None)

    # ---- heartbeats and status (``StatusReporter.run`` and the heartbeat thread)

    def _wake_writer(self) -> None:
        self._wake.set()

    def _later(self, delay: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        return asyncio.get_running_loop().call_later(delay, callback)

    async def _write(self, call: Any, interval: float) -> None:
        """Heartbeats every ``interval`` and status batches, on the session's stream."""
        loop = asyncio.get_running_loop()
        # On a fixed beat, at a random phase: thousands of nodes registered in
        # one burst would otherwise beat in bursts, and a beat due while the
        # loop is busy would push every later one back with it.
        next_beat = loop.time() + interval * self.rng.random()
        last_sent = -BATCH_WINDOW  # loop time of the last status batch
        while True:
            if loop.time() >= next_beat:
                await call.write(cpb.AgentMessage(heartbeat=True))
                next_beat += interval
                if next_beat <= loop.time():  # fell a whole beat behind: no catching up in a burst
                    next_beat = loop.time() + interval * self.rng.random()
            if self._wake.is_set():
                self._wake.clear()
                rest = last_sent + BATCH_WINDOW - loop.time()
                if rest > 0 and not self.tasks.settled():
                    await asyncio.sleep(rest)  # a busy spell: the rest of the window gathers more
                batch = self.tasks.take()
                if batch:
                    updates = [status_update_to_pb(tid, status) for tid, status in batch]
                    await call.write(cpb.AgentMessage(status=cpb.StatusBatch(updates=updates)))
                    last_sent = loop.time()
            wait = next_beat - loop.time()
            due = self.tasks.next_due()
            if due is not None:
                wait = min(wait, due - time.time())
            if wait <= 0:
                if due is not None and due <= time.time():
                    self._wake.set()
                continue
            timer = loop.call_later(wait, self._wake.set)
            try:
                await self._wake.wait()
            finally:
                timer.cancel()


def _details(err: Exception) -> str:
    details = getattr(err, "details", None)
    return str(details() if callable(details) else err)


def _short(err: Exception) -> str:
    details = getattr(err, "details", None)
    if callable(details):
        with contextlib.suppress(Exception):
            return f"{err.code().name}: {details()}"  # type: ignore[attr-defined]
    return str(err)
