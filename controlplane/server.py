"""``orch controlplane``: one control-plane replica.

Every replica serves the API and the dispatcher; the one holding the
``controllers`` leadership (an etcd lease) also runs the orchestrator. When
the leader dies its lease expires and another replica takes over, without
touching healthy tasks (they are state in etcd, not in any replica).

Given no etcd endpoints, the replica runs its own single-member etcd
(``controlplane.etcd``) with its data in ``<state_dir>/etcd``, for as long as
it runs: it stops it on exit, and the kernel does if the replica is killed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import os
import secrets
import signal
import threading
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import grpc
import structlog

from controlplane.api import ClusterAPI
from controlplane.apierrors import store_errors
from controlplane.dispatcher import Dispatcher
from controlplane.etcd import EmbeddedEtcd, EtcdStartError
from controlplane.orchestrator import Orchestrator, is_request, needs_pass
from controlplane.store import Change, Informer, Leadership, Store
from proto import cluster_pb2_grpc as cpb_grpc

if TYPE_CHECKING:
    from controlplane.envelope import Kek
    from controlplane.metrics import Metrics

log = structlog.get_logger("orch.controlplane")

ELECTION = "controllers"
LEASE_TTL = 2  # seconds: a dead leader is replaced within about this


JOIN_TOKEN_ENV = "ORCH_JOIN_TOKEN"
ADMIN_TOKEN_ENV = "ORCH_ADMIN_TOKEN"
DEFAULT_SOCKET = "/run/orch/controlplane.sock"
ETCD_PORTS = (2379, 2380)  # etcd's client and peer ports, wherever etcd runs
# The largest request a replica takes: a deploy carries its manifest's
# secrets and configs (up to 500 KiB each), beyond gRPC's default of 4 MiB.
MAX_REQUEST = 64 << 20
_SERVER_OPTIONS = [("grpc.max_receive_message_length", MAX_REQUEST)]


class ControlPlaneError(Exception):
    """A bad option or a resource the control plane cannot get: one line for the user."""


@dataclass
class ControlPlaneOptions:
    etcd: list[str]  # endpoints; [] = run an embedded etcd in <state_dir>/etcd
    listen: list[str] = field(default_factory=lambda: ["127.0.0.1:7700"])
    state_dir: str = "/var/lib/orch/controlplane"
    id: str = ""
    # Secrets come from 0600 files (or the environment), never from argv.
    # Without a file, the token is made in the state dir on first start.
    token_file: str = ""
    admin_token_file: str = ""
    # The local CLI's door: a root-only unix socket, which needs no token.
    socket: str = DEFAULT_SOCKET
    # A PEM CA trusted for the registries whose tags a deploy pins to digests.
    registry_ca: str = ""
    # Where networks' subnets come from (a /24 each, unless one asks for its own).
    network_pool: str = "10.96.0.0/11"
    # HOST:PORT of /metrics and /sd/agents (controlplane.metrics); "": none.
    metrics_listen: str = ""
    # The key that seals secrets in etcd (controlplane.envelope): every
    # replica of a cluster needs the same. "": <state_dir>/secrets.key, made
    # by the first replica that starts without one.
    secrets_key_file: str = ""


def check_options(opts: ControlPlaneOptions) -> None:
    """Refuse bad addresses before anything starts (ControlPlaneError)."""
    from controlplane.store._client import parse_endpoint

    if not all(opts.etcd):  # none at all is the embedded etcd
        raise ControlPlaneError("--etcd needs one or more endpoints, http://HOST:PORT[,...]")
    for endpoint in opts.etcd:
        try:
            parse_endpoint(endpoint)
        except ValueError as err:
            raise ControlPlaneError(f"--etcd: {err}")
    if not opts.listen or not all(opts.listen):
        raise ControlPlaneError("--listen needs one or more addresses, HOST:PORT[,...]")
    for addr in opts.listen:
        check_address(addr, "--listen")
    if opts.metrics_listen:
        check_address(opts.metrics_listen, "--metrics-listen")
    from controlplane.controllers.ipam import IpamError, parse_pool

    try:
        parse_pool(opts.network_pool)
    except IpamError as err:
        raise ControlPlaneError(f"--network-pool: {err}")
    if opts.registry_ca:
        from common.errors import InvalidArgument
        from registry.transport import check_ca_file

        try:
            opts.registry_ca = check_ca_file(opts.registry_ca)
        except InvalidArgument as err:
            raise ControlPlaneError(err.message)


def check_address(addr: str, flag: str) -> None:
    host, sep, port = addr.rpartition(":")
    if not sep or not host or not port.isascii() or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ControlPlaneError(f"{flag}: invalid address {addr!r}: expected HOST:PORT with a port "
                                "from 1 to 65535")


def _tokens(opts: ControlPlaneOptions) -> tuple[str, str]:
    """(join token, admin token), from their files or the environment, or
    made in the state dir on first start."""
    from common.auth import TokenError, token_from, write_token

    try:
        join = token_from(opts.token_file, JOIN_TOKEN_ENV) or write_token(
            os.path.join(opts.state_dir, "join-token"))
        admin = token_from(opts.admin_token_file, ADMIN_TOKEN_ENV) or write_token(
            os.path.join(opts.state_dir, "admin-token"))
    except (TokenError, OSError) as err:
        raise ControlPlaneError(str(err))
    return join, admin


def _secrets_key(opts: ControlPlaneOptions) -> Kek:
    """The key-encryption key of secrets: the file given, or the state dir's
    (made on first start); see ``controlplane.envelope`` for why there."""
    from controlplane.envelope import KEY_FILE, EnvelopeError, load_or_create, read_key_file

    try:
        if opts.secrets_key_file:
            return read_key_file(opts.secrets_key_file)
        return load_or_create(os.path.join(opts.state_dir, KEY_FILE))
    except EnvelopeError as err:
        raise ControlPlaneError(str(err))


def _bind(server: grpc.Server, addr: str) -> None:
    try:
        bound = server.add_insecure_port(addr)
    except RuntimeError as err:  # grpcio raises where older ones returned 0
        raise ControlPlaneError(f"cannot listen on {addr}: {err}")
    if bound == 0:
        raise ControlPlaneError(f"cannot listen on {addr}: address in use or not on this host")


def _unix_server(path: str, timed: list[grpc.ServerInterceptor]) -> grpc.Server:
    """A server on a unix socket only root can open (0600 in a 0700 dir);
    ``timed``: the metrics' interceptor, if any."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, mode=0o700, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32, thread_name_prefix="cp-local"),
                         interceptors=[*timed, store_errors()], options=_SERVER_OPTIONS)
    old = os.umask(0o177)  # the socket is 0600 from its creation
    try:
        _bind(server, f"unix:{path}")
    finally:
        os.umask(old)
    return server


def serve(opts: ControlPlaneOptions) -> int:
    """Run until SIGTERM/SIGINT; ControlPlaneError for what the user must fix.
    Without etcd endpoints, run an embedded etcd in the state dir for as long."""
    from common.logging import configure_logging

    check_options(opts)
    configure_logging()
    if opts.registry_ca:  # what _pin's registry client trusts (registry.transport)
        from registry.transport import use_ca_file

        use_ca_file(opts.registry_ca)
    os.makedirs(opts.state_dir, mode=0o700, exist_ok=True)
    if opts.etcd:
        return _serve(opts)
    etcd = _start_embedded_etcd(opts.state_dir)
    try:
        return _serve(dataclasses.replace(opts, etcd=[etcd.endpoint]))
    finally:
        etcd.stop()
        log.info("embedded etcd stopped", data_dir=str(etcd.data_dir))


def _start_embedded_etcd(state_dir: str) -> EmbeddedEtcd:
    """etcd with its data in ``<state_dir>/etcd``, tied to this process: the
    kernel stops it if this process dies without stopping it (SIGKILL)."""
    etcd = EmbeddedEtcd(os.path.join(state_dir, "etcd"), die_with_parent=True)
    try:
        etcd.start(timeout=30)
    except (EtcdStartError, OSError) as err:
        raise ControlPlaneError(f"cannot start the embedded etcd: {err}")
    log.info("embedded etcd started", endpoint=etcd.endpoint, data_dir=str(etcd.data_dir), pid=etcd.pid,
             log=str(etcd.log_path))
    return etcd


def _serve(opts: ControlPlaneOptions) -> int:
    from common.auth import interceptor

    join_token, admin_token = _tokens(opts)
    kek = _secrets_key(opts)
    replica = opts.id or secrets.token_hex(6)
    store = Store(opts.etcd)
    informer = Informer(store).start()
    if not informer.wait_synced(30):
        raise ControlPlaneError(f"could not read the cluster state from etcd at {','.join(opts.etcd)} "
                                "within 30 s: is etcd running?")
    stop = threading.Event()
    leading: list[Leadership] = []

    def is_leader() -> bool:
        return bool(leading) and not leading[0].lost()

    protected = _protected_ports(opts)
    metrics = _metrics(opts, informer, is_leader, replica)
    dispatcher = Dispatcher(store, informer, join_token, protected_ports=protected,
                            on_running=metrics.observe_running if metrics else None, kek=kek)
    api = ClusterAPI(store, informer, replica, is_leader, lambda: store.leader(ELECTION),
                     network_pool=opts.network_pool, reserved_ports=frozenset(protected), kek=kek)
    # TCP: agents' sessions (join token in Register) and the CLI API, which
    # needs the admin token there.
    guard = interceptor(lambda: admin_token, ("/orch.cluster.v1.ClusterAPI/",),
                        what="the control plane's API over TCP")
    timed = [metrics.interceptor()] if metrics else []
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=64, thread_name_prefix="cp"),
                         interceptors=[guard, *timed, store_errors()], options=_SERVER_OPTIONS)
    cpb_grpc.add_ClusterAPIServicer_to_server(api, server)  # type: ignore[no-untyped-call]
    cpb_grpc.add_DispatcherServicer_to_server(dispatcher, server)  # type: ignore[no-untyped-call]
    local = _unix_server(opts.socket, timed) if opts.socket else None
    if local is not None:
        cpb_grpc.add_ClusterAPIServicer_to_server(api, local)  # type: ignore[no-untyped-call]
    for addr in opts.listen:
        _bind(server, addr)
    server.start()
    api.collector.start()
    if local is not None:
        local.start()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log.info("control plane ready", id=replica, listen=opts.listen, socket=opts.socket, etcd=opts.etcd,
             secrets_key=kek.id)
    http = None
    if metrics is not None:
        from controlplane.metrics import serve as serve_metrics

        http = serve_metrics(metrics, opts.metrics_listen)
    elector = threading.Thread(target=_lead, args=(store, informer, replica, stop, leading,
                                                   metrics.observe_pass if metrics else None),
                               name="elector", daemon=True)
    elector.start()
    # The manifest parser (YAML and the checks) is loaded now, off the
    # request path: the first `orch deploy` does not wait for it.
    threading.Thread(target=importlib.import_module, args=("model.manifest",),
                     name="warm-manifest", daemon=True).start()
    stop.wait()
    log.info("control plane stopping", id=replica)
    if leading:
        with contextlib.suppress(Exception):
            leading[0].resign()
    dispatcher.stop()
    api.collector.stop()
    if local is not None:
        local.stop(grace=1)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(opts.socket)
    server.stop(grace=1).wait()
    if http is not None:
        http.shutdown()
        http.server_close()
    informer.stop()
    store.close()
    return 0


def _metrics(opts: ControlPlaneOptions, informer: Informer, is_leader: Callable[[], bool],
             replica: str) -> Metrics | None:
    """The replica's metrics, fed by the store's calls, when they are on."""
    if not opts.metrics_listen:
        return None
    from controlplane.metrics import Metrics
    from controlplane.store import _client

    metrics = Metrics(informer, is_leader, replica)
    _client.observers.append(metrics.observe_store)
    return metrics


def _protected_ports(opts: ControlPlaneOptions) -> list[int]:
    """What containers must never reach: this control plane's, its metrics' and etcd's ports."""
    from controlplane.store._client import parse_endpoint

    ports = {int(addr.rpartition(":")[2]) for addr in opts.listen} | set(ETCD_PORTS)
    if opts.metrics_listen:
        ports.add(int(opts.metrics_listen.rpartition(":")[2]))
    for endpoint in opts.etcd:
        ports.add(parse_endpoint(endpoint)[1])
    return sorted(ports)


def _lead(store: Store, informer: Informer, replica: str, stop: threading.Event,
          leading: list[Leadership], on_pass: Callable[[float], None] | None = None) -> None:
    wake, prompt = threading.Event(), threading.Event()

    def on_change(change: Change) -> None:
        if needs_pass(change):
            if is_request(change):
                prompt.set()
            wake.set()

    informer.add_handler(on_change)
    while not stop.is_set():
        try:
            leadership = store.campaign(ELECTION, replica, LEASE_TTL, stop=stop)
        except Exception as err:
            log.warning("election failed", error=str(err))
            stop.wait(0.5)
            continue
        if leadership is None:
            continue
        leading[:] = [leadership]
        try:
            Orchestrator(store, informer, leadership, wake, prompt=prompt, on_pass=on_pass).run(stop)
        except Exception:
            log.exception("orchestrator crashed")
        finally:
            leading.clear()
            with contextlib.suppress(Exception):
                leadership.stop()
