"""Running the agent: the supervisor first (through exec), then gRPC.

Order matters: the supervisor must exist before any gRPC thread does, and it
is started with exec (subprocess), never by forking this process. If a
supervisor from an earlier agent is still running, the agent reconnects to it
and so adopts every container it owns.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.errors import AgentError
from common.logging import get_logger
from model.units import DEFAULT_PIDS_LIMIT
from nodeagent.supervisor import ALREADY_RUNNING, SupervisorClient, SupervisorUnavailable

if TYPE_CHECKING:
    from common.identity import NodeIdentity

log = get_logger("orch.agent")

DEFAULT_STATE_DIR = "/var/lib/orch"
DEFAULT_RUN_DIR = "/run/orch"


@dataclass
class AgentOptions:
    state_dir: str = DEFAULT_STATE_DIR
    run_dir: str = DEFAULT_RUN_DIR
    bridge: str = "orch0"
    subnet: str = "10.88.0.0/16"
    join: str = ""  # control plane address; empty: standalone engine
    token: str = ""
    listen: str = ""  # also serve the node API on TCP (the control plane proxies logs/exec)
    name: str = ""
    labels: dict[str, str] | None = None
    max_starting: int = 0  # container launches at once; 0: one per CPU, up to 4
    # pids limit of a container whose config sets none; 0: no default
    default_pids_limit: int = DEFAULT_PIDS_LIMIT
    # A PEM CA trusted for every registry this node pulls from or pushes to
    # (its image jobs get it as $ORCH_REGISTRY_CA); absolute, checked by the CLI.
    registry_ca: str = ""
    # The node DNS server's upstream resolvers: "ADDR[:PORT],...", "none", or
    # "" for the host's non-loopback ones (nodeagent.dns.upstreams).
    dns_upstream: str = ""
    # Prometheus metrics on HOST:PORT ("": none; nodeagent.metrics). With
    # ``metrics_default`` (set after construction) the address was derived
    # from ``listen``, not asked for: if it cannot be bound the agent runs
    # without metrics, saying so.
    metrics_listen: str = ""
    metrics_default: bool = field(default=False, init=False)

    @property
    def socket(self) -> str:
        return os.path.join(self.run_dir, "agent.sock")

    @property
    def supervisor_socket(self) -> str:
        return os.path.join(self.run_dir, "supervisor.sock")


def _lock(run_dir: str) -> int:
    fd = os.open(os.path.join(run_dir, "agent.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise AgentError(f"an agent is already running for {run_dir}")
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd


def ensure_supervisor(opts: AgentOptions, on_event: object,
                      client: SupervisorClient | None = None) -> tuple[SupervisorClient, bool]:
    """Connect to the running supervisor, or start one. Returns (client, started).
    With ``client``, whose supervisor went away, that client reconnects
    instead of a new one being made: the service, the worker and the event
    hub hold it."""

    def connect() -> SupervisorClient:
        if client is None:
            return SupervisorClient(opts.supervisor_socket, on_event=on_event)  # type: ignore[arg-type]
        client.reconnect()
        return client

    try:
        return connect(), False
    except SupervisorUnavailable:
        pass
    log_path = os.path.join(opts.state_dir, "supervisor.log")
    with open(log_path, "ab") as logf:
        proc = subprocess.Popen(
            [sys.executable, "-m", "nodeagent.supervisor", "--state-dir", opts.state_dir,
             "--run-dir", opts.run_dir, "--bridge", opts.bridge, "--subnet", opts.subnet,
             # A cluster node will run bridge containers: set the network up
             # now, not in the first task's start.
             *(["--warm-network"] if opts.join else []),
             *(["--max-launching", str(opts.max_starting)] if opts.max_starting else [])],
            stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, start_new_session=True,
            close_fds=True,
        )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None and proc.returncode != ALREADY_RUNNING:
            # Its last line says why: its one-line error, or a traceback's last.
            lines = Path(log_path).read_text(errors="replace").strip().splitlines()
            raise AgentError(f"the supervisor failed to start: {lines[-1] if lines else ''} "
                             f"(see {log_path})")
        try:
            return connect(), True
        except SupervisorUnavailable:
            if proc.poll() in (None, ALREADY_RUNNING):  # the other one may still be starting
                time.sleep(0.02)
    raise AgentError(f"the supervisor did not come up within 15 s; see {log_path}")


# A supervisor that dies more often than this within RESTART_WINDOW seconds
# is not started again: the agent exits, saying why. So does one that fails
# to start START_ATTEMPTS times in a row.
MAX_RESTARTS = 5
RESTART_WINDOW = 60.0
START_ATTEMPTS = 3


class SupervisorWatch:
    """Starts a new supervisor when the agent's dies.

    Its containers died with it (see ``nodeagent.supervisor.recovery``); the
    new one records them as killed and tears them down as it starts. This
    reconnects the one client everything in the agent holds (which subscribes
    again), tells the event hub of each killed container (a foreground run,
    a log follower), and has the cluster worker report their tasks. If no
    supervisor can be started, ``fatal`` hears why: the agent exits.
    """

    def __init__(self, opts: AgentOptions, client: SupervisorClient, events: Any, service: Any,
                 worker: Any, stop: threading.Event, fatal: Any) -> None:
        self.opts, self.client, self.events = opts, client, events
        self.service, self.worker, self.stop, self.fatal = service, worker, stop, fatal
        self._expected = threading.Event()  # a Shutdown stops it on purpose
        self._lock = threading.Lock()
        self._pending = False
        self._busy = False
        self._deaths: list[float] = []

    def expect_exit(self) -> None:
        """The supervisor is about to be stopped on purpose: no new one."""
        self._expected.set()

    def on_event(self, event: str, data: dict[str, Any]) -> None:
        if event == "disconnected":
            self.lost()

    def lost(self) -> None:
        """The connection to the supervisor is gone: replace it (in a thread
        of its own; a loss during a replacement is handled after it)."""
        if self._expected.is_set() or self.stop.is_set():
            return
        with self._lock:
            self._pending = True
            if self._busy:
                return
            self._busy = True
        threading.Thread(target=self._run, name="supervisor-restart", daemon=True).start()

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._pending or self.stop.is_set() or self._expected.is_set():
                    self._pending = self._busy = False
                    return
                self._pending = False
            try:
                self._replace()
            except SupervisorUnavailable:
                pass  # the new one went away too: its disconnect comes next
            except Exception:  # it runs; what it reported is lost, not the agent
                log.exception("telling the agent of the new supervisor failed")

    def _replace(self) -> None:
        if self.client.connected:
            return
        old = self.service.info.get("supervisor_pid")
        now = time.monotonic()
        self._deaths = [t for t in self._deaths if now - t < RESTART_WINDOW] + [now]
        if len(self._deaths) > MAX_RESTARTS:
            self._give_up(f"the supervisor died {len(self._deaths)} times within "
                          f"{RESTART_WINDOW:g} s; see {self.opts.state_dir}/supervisor.log")
            return
        log.error("lost the supervisor: its containers were killed with it; starting a new one",
                  supervisor_pid=old)
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                ensure_supervisor(self.opts, self.events, self.client)
                break
            except SupervisorUnavailable:
                return  # the new one went away too: its disconnect comes next
            except Exception as exc:
                reason = exc.message if isinstance(exc, AgentError) else str(exc)
                log.error("a new supervisor failed to start", attempt=attempt, error=reason)
                if attempt == START_ATTEMPTS:
                    self._give_up(f"could not start a new supervisor: {reason}")
                    return
                if self.stop.wait(1.0):
                    return  # the agent stops anyway
        info = self.client.call("ping")
        self.service.info["supervisor_pid"] = info["pid"]
        killed = list(info.get("killed", []))
        for rec in killed:  # their "exited" went out before anyone listened
            self.events("exited", rec)
        if self.worker is not None:
            self.worker.resync()
        log.warning("started a new supervisor", supervisor_pid=info["pid"], previous_pid=old,
                    killed=[rec["name"] for rec in killed], containers=info["containers"])

    def _give_up(self, reason: str) -> None:
        log.error("cannot replace the supervisor; the agent exits", reason=reason)
        self.fatal(reason)


def _import_grpc() -> Any:
    """Import grpc without Python's ssl module.

    grpc's Cython core imports asyncio (for grpc.aio), and asyncio imports
    ssl for its TLS transports: OpenSSL's libcrypto and libssl, about 4.5 MiB
    of the agent's RSS. The agent never uses asyncio, and gRPC's own TLS is
    built into grpc. So ssl is blocked while grpc loads (asyncio takes it as
    absent, which it supports) and unblocked after: code that needs ssl later,
    such as a registry pull over https, imports it as usual.
    """
    if "grpc" in sys.modules or "ssl" in sys.modules:
        import grpc

        return grpc
    sys.modules["ssl"] = None  # type: ignore[assignment]
    try:
        import grpc
    finally:
        del sys.modules["ssl"]
    return grpc


def _configure_logging() -> None:
    """structlog for the agent's lines, loaded after grpc: it imports
    asyncio, which :func:`_import_grpc` has loaded without ssl; and without
    its console extras (``common.logging.import_structlog``)."""
    from common.logging import configure_logging, import_structlog

    import_structlog()
    configure_logging()


def run(opts: AgentOptions) -> int:
    """Serve until SIGTERM/SIGINT or a Shutdown call. Containers keep running.
    A supervisor that dies is replaced (SupervisorWatch); if none can be
    started, the agent exits with the reason."""
    grpc = _import_grpc()
    _configure_logging()
    from nodeagent.agent.engine import Engine
    from nodeagent.agent.events import EventHub
    from nodeagent.agent.service import AgentService
    from nodeagent.network.engine_networks import EngineNetworks
    from nodeagent.network.state import NetworkStateHub
    from proto import agent_pb2_grpc as pb_grpc

    for d in (opts.state_dir, opts.run_dir):
        os.makedirs(d, mode=0o711, exist_ok=True)
    if opts.registry_ca:  # image jobs (their own processes) inherit it
        from registry.transport import CA_ENV

        os.environ[CA_ENV] = opts.registry_ca
    lock_fd = _lock(opts.run_dir)
    events = EventHub()
    client, started = ensure_supervisor(opts, events)
    networks = EngineNetworks(opts.state_dir, opts.subnet)
    hub = NetworkStateHub()  # the cluster's service networking, as the session tells it
    dns = _node_dns(opts, hub, networks)
    client.take_fds("dns_sockets", dns.take_sockets)  # before the subscribe: they follow it
    events.listeners.append(dns.on_event)
    # The events the agent acts on (EventHub): not "created", one per container.
    sup_info = (client.call("subscribe", events=["started", "exited", "removed", "dns_sockets",
                                                 "health_status"])
                and client.call("ping"))
    stop = threading.Event()
    failure: list[str] = []  # why the agent must exit (the worker cannot join)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32, thread_name_prefix="grpc"))
    engine = Engine(opts.state_dir, client, LazyImageStore(opts.state_dir), events,
                    default_pids_limit=opts.default_pids_limit)
    engine.networks = networks
    service = AgentService(
        engine, stop_server=stop.set,
        info={"supervisor_pid": sup_info["pid"], "bridge": opts.bridge, "subnet": opts.subnet,
              "cgroup_version": _cgroup_version(), "default_pids_limit": opts.default_pids_limit},
    )
    pb_grpc.add_AgentServicer_to_server(service, server)  # type: ignore[no-untyped-call]
    with contextlib.suppress(FileNotFoundError):
        os.unlink(opts.socket)
    server.add_insecure_port(f"unix:{opts.socket}")
    try:
        identity = _identity(opts, stop) if opts.join else None
    except AgentError:
        if started:  # a node that cannot join leaves nothing running behind it
            with contextlib.suppress(Exception):
                client.call("shutdown", stop_containers=True)
        raise
    node_api = _node_api(grpc, service, opts, identity) if opts.listen else None
    if opts.listen or opts.metrics_listen:
        # Before any container can start: containers never reach the node API
        # or the metrics.
        engine.protect([listen_port(a) for a in (opts.listen, opts.metrics_listen) if a])
    worker = None
    metrics = _metrics(opts, engine, lambda: worker.task_states() if worker is not None else [])
    server.start()
    overlay = None  # the overlay's data plane, on a node that joins a cluster

    def fail(reason: str) -> None:
        """The agent cannot go on (the worker cannot join, no supervisor can
        be started): it stops, and exits with ``reason``."""
        failure.append(reason)
        stop.set()

    if opts.join:
        import socket

        from nodeagent.cluster import TaskExecutor, Worker

        worker = Worker(TaskExecutor(engine), opts.join, opts.token, opts.name or socket.gethostname(),
                        opts.listen, opts.labels or {}, opts.state_dir, opts.max_starting,
                        on_fatal=fail, network=hub, metrics_address=_advertised(metrics, opts),
                        identity=identity)
        events.listeners.append(worker.on_event)
        service.before_stopping_containers.append(worker.stop)
        overlay = _start_overlay(hub, opts.listen)
        service.before_stopping_containers.append(lambda: _stop_overlay(overlay, remove=True))
        service.images.load()  # before the first task needs it
        worker.start()
    if metrics is not None:
        metrics.start()
    watch = SupervisorWatch(opts, client, events, service, worker, stop, fail)
    events.listeners.append(watch.on_event)
    service.before_stopping_containers.append(watch.expect_exit)
    os.chmod(opts.socket, 0o660)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log.info("agent ready", socket=opts.socket, state_dir=opts.state_dir,
             supervisor_pid=sup_info["pid"], supervisor_started=started,
             containers=sup_info["containers"])
    from nodeagent.runtime._libc import malloc_trim

    while not stop.wait(1.0):
        if events.disconnected:
            watch.lost()  # in case it went before the watch listened
        # Once a second: an image import or a burst of RPCs would otherwise
        # pin the agent's peak heap for good.
        malloc_trim()
    if worker is not None and worker.removed:
        # Removed from the cluster (`orch node rm`): its tasks run elsewhere
        # now, so its containers stop, as a Shutdown(stop_containers) does.
        log.warning("this node was removed from the cluster: stopping its containers")
        for hook in service.before_stopping_containers:
            hook()
        engine.shutdown()
        overlay = None  # removed by its hook
    if worker is not None:
        worker.stop()
    if overlay is not None:
        _stop_overlay(overlay, remove=False)  # it stays in the kernel: the next agent takes it over
    if node_api is not None:
        node_api.stop(grace=1)
    if metrics is not None:
        metrics.close()
    server.stop(grace=2).wait()
    dns.close()
    client.close()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(opts.socket)
    # The lock file goes while still held: an agent starting now creates
    # (and locks) a fresh one.
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(opts.run_dir, "agent.lock"))
    os.close(lock_fd)
    if failure:
        log.error("agent stopped", reason=failure[0])
        raise AgentError(failure[0])
    log.info("agent stopped")
    return 0


def _metrics(opts: AgentOptions, engine: Any, tasks: Any) -> Any:
    """The node's metrics (``nodeagent.metrics``), bound but not serving yet;
    None without ``--metrics-listen``, or when the default address is taken."""
    if not opts.metrics_listen:
        return None
    import socket

    from nodeagent.metrics import Metrics

    try:
        return Metrics(opts.metrics_listen, lambda: engine.containers(all=True),
                       opts.name or socket.gethostname(), tasks if opts.join else None)
    except AgentError as err:
        if not opts.metrics_default:
            raise
        log.warning("no metrics: their default address is not free; give --metrics-listen",
                    error=err.message)
        return None


def _advertised(metrics: Any, opts: AgentOptions) -> str:
    """Where the control plane tells Prometheus to scrape this node: the
    metrics address, with the node API's host for an unspecified one."""
    if metrics is None:
        return ""
    host, _, port = opts.metrics_listen.rpartition(":")
    if host.strip("[]") in ("0.0.0.0", "::", ""):
        host = opts.listen.rpartition(":")[0]
    return f"{host}:{port}"


def _start_overlay(hub: Any, listen: str) -> Any:
    """The overlay's data plane (``nodeagent.network.overlay``), following
    ``hub``; this node's underlay address is the host part of ``--listen``."""
    from nodeagent.network.overlay import Overlay

    return Overlay(hub, listen.rpartition(":")[0].strip("[]") if listen else "")


def _stop_overlay(overlay: Any, remove: bool) -> None:
    """Stop following the state; with ``remove`` (``orch agent stop --all``),
    remove the overlay from the node too. A failure is logged: the agent
    still stops."""
    try:
        overlay.close(remove=remove)
    except Exception as exc:
        log.error("removing the overlay failed", error=str(exc))


def _node_dns(opts: AgentOptions, hub: Any, networks: Any) -> Any:
    """The node's DNS server (started with the first container that has DNS)."""
    from nodeagent.dns.node import NodeDns
    from nodeagent.dns.upstreams import resolve_upstreams

    def user_network(bridge: str) -> tuple[str, str] | None:
        net = networks.by_bridge(bridge)
        return None if net is None else (net.id, net.name)

    return NodeDns(resolve_upstreams(opts.dns_upstream), hub, user_network)


def listen_port(listen: str) -> int:
    return int(listen.rpartition(":")[2])


# What the node API serves on TCP: what the control plane proxies for the
# CLI. Everything else (run, build, import, push, pull: they take host paths)
# stays on the root-only unix socket.
NODE_API_METHODS = ("Logs", "LogBatches", "Exec", "ExecAttach", "Stats", "StatsAll")


def _identity(opts: AgentOptions, stop: threading.Event) -> NodeIdentity:
    """This node's certificate: the one kept in ``<state>/pki``, or one got
    by joining with the token (``common.identity``)."""
    import socket

    from common.identity import JoinRefused, obtain
    from proto import cluster_pb2

    node_id = ""
    with contextlib.suppress(OSError), open(os.path.join(opts.state_dir, "node_id")) as f:
        node_id = f.read().strip()
    try:
        identity = obtain(os.path.join(opts.state_dir, "pki"), [a for a in opts.join.split(",") if a],
                          opts.token, opts.name or socket.gethostname(), node_id, stop, log, pb=cluster_pb2)
    except JoinRefused as err:
        raise AgentError(str(err)) from None
    if identity is None:
        raise AgentError("stopped before the node could join the cluster")
    return identity


def _node_api(grpc: Any, service: Any, opts: AgentOptions, identity: NodeIdentity | None) -> Any:
    """The node API on ``opts.listen``: the methods above, over mutual TLS
    with this node's certificate, for control planes of its cluster only
    (``common.tls.PeerGuard``); started here."""
    from common import pki
    from common.tls import PeerGuard
    from proto import agent_pb2_grpc as pb_grpc

    if identity is None:
        raise AgentError("the node API needs the node's certificate: give --join")
    prefix = "/orch.agent.v1.Agent/"
    guard = PeerGuard(pki.ca_cluster_id(identity.creds.ca_pem),
                      {prefix + m: ("controlplane",) for m in NODE_API_METHODS})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="node-api"),
                         interceptors=[guard])
    pb_grpc.add_AgentServicer_to_server(service, server)  # type: ignore[no-untyped-call]
    try:
        bound = server.add_secure_port(opts.listen, identity.creds.credentials())
    except RuntimeError as err:
        raise AgentError(f"cannot listen on {opts.listen}: {err}")
    if bound == 0:
        raise AgentError(f"cannot listen on {opts.listen}")
    server.start()
    return server


def _cgroup_version() -> int:
    from nodeagent.runtime.cgroups import detect

    return detect().version


class LazyImageStore:
    """The image store, loaded on first use: an idle agent does not carry
    the tar/gzip/hashing code (about 3 MB of RSS) until an image is used."""

    def __init__(self, root: str) -> None:
        self.root = root
        self._store: object | None = None

    def count(self) -> int:
        """How many images, from the index alone (no need to load the store)."""
        import json

        try:
            with open(os.path.join(self.root, "images", "index.json")) as f:
                manifests = json.load(f).get("manifests", [])
        except (OSError, ValueError):
            return 0
        return len({m.get("digest") for m in manifests})

    def load(self) -> Any:
        if self._store is None:
            from nodeagent.images import ImageStore

            self._store = ImageStore(self.root)
        return self._store

    @property
    def store(self) -> Any:
        return self.load()

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)
