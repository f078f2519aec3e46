"""The session: the node's one gRPC stream to the control plane.

The session thread registers the node, heartbeats, and hands what the
control plane assigns to the reconciler, and what it says of the cluster's
service networking to the node's ``NetworkStateHub`` (the data plane and DNS
follow that); when the stream ends it connects again, with backoff, trying
the control-plane replicas in turn. It only records what is assigned:
starting and stopping is the reconciler's.

Invariants:
- on registration, before any assignment is read, the ports the control
  plane names (its own, etcd's), the node API's and the metrics' are fenced
  off from containers (``Executor.configure``): no task starts before that;
- the status reporter sends on the stream only while it is registered;
- the network state is whole after each session's first network message
  (``full``): what changed while the node was cut off is applied then;
- while registered, the node also sends liveness beacons (UDP, sealed with
  the session's key: ``common.beacon``) to the control plane it reached,
  so a blip of its link is told from a dead node within 0.1 s of its end;
- the session runs over mutual TLS with the node's certificate
  (``identity``); a refused session (a revoked certificate: the node was
  removed) ends it for good: ``on_fatal`` hears why and the agent exits; any
  other error is retried.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from common.beacon import Sender
from common.identity import NodeIdentity
from common.tls import REVOKED
from model.wire import task_from_pb
from nodeagent.cluster.executor import Executor
from nodeagent.cluster.netstate import state_update_from_pb
from nodeagent.cluster.reconcile import Reconciler
from nodeagent.cluster.status import Outbox, StatusReporter
from nodeagent.network.state import NetworkStateHub
from proto import cluster_pb2 as cpb

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger

__all__ = ["JOIN_LOG_EVERY", "JOIN_RETRY_MAX", "RECONNECT_MAX", "Session", "next_retry"]

RECONNECT_MAX = 2.0
# The largest message the node takes from the control plane: an assignment
# set carries the values of its tasks' secrets and configs (up to 500 KiB
# each), beyond gRPC's default of 4 MiB.
MAX_MESSAGE = 256 << 20
# Until it first joins, a node retries faster: `orch up` starts the agents
# with the control plane, and a retry that just missed its start would make
# the cluster wait up to RECONNECT_MAX more. A refused connect costs little.
JOIN_RETRY_MAX = 0.2
JOIN_LOG_EVERY = 10.0


def next_retry(delay: float, joined: bool) -> float:
    """The wait before the next session attempt: doubling, up to
    RECONNECT_MAX once the node has joined and JOIN_RETRY_MAX before."""
    return min(delay * 2, RECONNECT_MAX if joined else JOIN_RETRY_MAX)


class Session:
    def __init__(self, executor: Executor, reconciler: Reconciler, status: StatusReporter, join: str,
                 token: str, name: str, address: str, labels: dict[str, str], state_dir: str,
                 stopped: threading.Event, logger: FilteringBoundLogger,
                 on_fatal: Callable[[str], None], network: NetworkStateHub | None = None,
                 metrics_address: str = "", identity: NodeIdentity | None = None) -> None:
        self.executor = executor
        self.network = network if network is not None else NetworkStateHub()
        self.reconciler = reconciler
        self.status = status
        self.join = join  # control-plane addresses, comma-separated
        self.token = token
        # The node's certificate (``common.identity``): the
        # session runs over mutual TLS with it. None: plaintext, with the
        # shared token in Register (an in-process dispatcher without TLS).
        self.identity = identity
        self.name = name
        self.address = address
        self.metrics_address = metrics_address  # where the agent serves /metrics ("": nowhere)
        self.labels = labels
        self.node_id_path = os.path.join(state_dir, "node_id")
        self.node_id = identity.node_id if identity is not None else _read(self.node_id_path)
        self.log = logger  # bound with the node
        self.on_fatal = on_fatal
        self._stopped = stopped
        self._lock = threading.Lock()
        self._outbox: Outbox | None = None  # the registered stream's
        self._joined = False  # registered with a control plane at least once
        self._attempt = -1  # which control-plane address the next session tries
        self.removed = False  # the cluster revoked this node's certificate

    def stop(self) -> None:
        """End the stream (the session thread sees the worker stopped)."""
        with self._lock:
            if self._outbox is not None:
                self._outbox.put(None)

    def run(self) -> None:
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
                    self.log.warning("control plane session ended", error=str(err), join=self.join)
                    quiet_until = started + JOIN_LOG_EVERY
            if time.monotonic() - started > 10:
                delay = 0.05
            self._stopped.wait(delay)
            delay = next_retry(delay, self._joined)

    def _register(self) -> cpb.Register:
        node = self.executor.describe()
        # Its platform as labels (Go's names, as a manifest's ``platform``
        # writes them), under any the user gave: node.platform.os/arch.
        labels = {"platform.os": "linux", "platform.arch": _arch(), **self.labels}
        return cpb.Register(node_id=self.node_id, name=self.name, address=self.address,
                            labels=labels, cpus=node.cpus, memory_bytes=node.memory_bytes,
                            token="" if self.identity is not None else self.token,
                            metrics_address=self.metrics_address)

    def _session(self) -> None:

        from proto import cluster_pb2_grpc

        outbox: Outbox = queue.Queue()
        outbox.put(cpb.AgentMessage(register=self._register()))

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
        options = [("grpc.max_receive_message_length", MAX_MESSAGE)]
        beacons: Sender | None = None
        with self.channel(target, options) as channel:
            stub = cluster_pb2_grpc.DispatcherStub(channel)
            responses = stub.Session(requests())
            try:
                for msg in responses:
                    kind = msg.WhichOneof("msg")
                    if kind == "registered":
                        self._registered(msg.registered)
                        with self._lock:
                            self._outbox = outbox
                        self.status.attach(outbox)
                        threading.Thread(target=self._heartbeat,
                                         args=(outbox, msg.registered.heartbeat_interval),
                                         name="worker-heartbeat", daemon=True).start()
                        beacons = self._beacons(target, msg.registered)
                    elif kind == "assignments":
                        self._assignments(msg.assignments)
                    elif kind == "network_state":
                        self.network.apply(state_update_from_pb(msg.network_state, self.log))
                    elif kind == "protected_ports":
                        self._protect(list(msg.protected_ports.ports))
            finally:
                if beacons is not None:
                    beacons.stop()
                with self._lock:
                    self._outbox = None
                self.status.detach(outbox)
                outbox.put(None)
                with contextlib.suppress(Exception):
                    responses.cancel()

    def channel(self, target: str, options: list[tuple[str, Any]] | None = None) -> Any:
        """A channel to the control plane at ``target``: mutual TLS with this
        node's current certificate, or plaintext without one."""
        import grpc

        if self.identity is None:
            return grpc.insecure_channel(target, options=options)
        return self.identity.creds.channel(target, "controlplane", options)

    def renew(self, csr: bytes) -> bytes:
        """A new certificate for ``csr`` from a control plane (``Dispatcher.Renew``)."""
        from proto import cluster_pb2_grpc

        last: Exception | None = None
        for target in [a for a in self.join.split(",") if a]:
            try:
                with self.channel(target) as channel:
                    reply = cluster_pb2_grpc.DispatcherStub(channel).Renew(  # type: ignore[no-untyped-call]
                        cpb.RenewRequest(csr=csr), timeout=10)
                return bytes(reply.cert)
            except Exception as err:
                last = err
        raise ConnectionError(f"no control plane renewed the certificate: {last}")

    def _refused(self, err: Exception) -> None:
        """The control plane will not have this node: retrying cannot help."""
        details = str(getattr(err, "details", lambda: str(err))())
        reason = f"the control plane at {self.join} refused this node: {details}"
        # Revoked: the node was removed (`orch node rm`) and its tasks run
        # elsewhere; the agent stops its containers before it exits.
        self.removed = REVOKED in details
        self.log.error("cannot join the cluster", error=reason, removed=self.removed)
        self.on_fatal(reason)

    def _registered(self, reg: cpb.Registered) -> None:
        # Before the assignments are read: no task starts before the
        # control plane's and etcd's ports are fenced off from containers.
        self._protect(list(reg.protected_ports))
        self._joined = True
        self.network.state.node_id = reg.node_id  # before its first update: followers read it
        if reg.node_id != self.node_id:
            self.node_id = reg.node_id
            with open(self.node_id_path, "w") as f:
                f.write(reg.node_id)
        self.log.info("joined the cluster", node_id=self.node_id, join=self.join)

    def _protect(self, ports: list[int]) -> None:
        """Fence off ``ports`` (the control planes' and etcd's) and this node's own."""
        if self.address:
            own = [int(a.rpartition(":")[2]) for a in (self.address, self.metrics_address) if a]
            self.executor.configure([*own, *ports])

    def _beacons(self, target: str, reg: cpb.Registered) -> Sender | None:
        """Liveness beacons to the control plane at ``target``'s host, for
        this session (``common.beacon``); None where it serves none."""
        if not reg.beacon_port or not reg.beacon_key:
            return None
        host = target.rpartition(":")[0].strip("[]")
        return Sender(host, reg.beacon_port, bytes(reg.beacon_key), reg.node_id,
                      reg.beacon_interval).start()

    def _heartbeat(self, outbox: Outbox, interval: float) -> None:
        while not self._stopped.wait(interval or 1.0):
            with self._lock:
                if self._outbox is not outbox:
                    return
            outbox.put(cpb.AgentMessage(heartbeat=True))

    def _assignments(self, msg: cpb.Assignments) -> None:
        # The values of the tasks' secrets and configs: held in memory by the
        # reconciler until their files are made, never written or logged here.
        payloads = {p.id: bytes(p.data) for p in msg.secrets}
        self.reconciler.assign({t.id: task_from_pb(t) for t in msg.tasks}, list(msg.removed), msg.full,
                               payloads)


def _refused(err: Exception) -> bool:
    """A session error that says this node is not accepted (wrong token)."""
    code = getattr(err, "code", None)
    if not callable(code):
        return False
    import grpc

    return bool(code() == grpc.StatusCode.UNAUTHENTICATED)


# uname's machine names in Go's spelling (OCI image platforms, Compose's ``platform``).
_GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "armv6l": "arm", "i686": "386",
            "i386": "386", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


def _arch() -> str:
    machine = os.uname().machine
    return _GO_ARCH.get(machine, machine)


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""
