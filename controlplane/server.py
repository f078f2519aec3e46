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
import gc
import importlib
import os
import secrets
import signal
import threading
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc
import structlog

from common.aioserver import LoopServer
from controlplane.api import ClusterAPI
from controlplane.apierrors import store_errors
from controlplane.beacon import BeaconError, BeaconListener
from controlplane.dispatcher import Dispatcher
from controlplane.etcd import EmbeddedEtcd, EtcdStartError
from controlplane.orchestrator import DirtyServices, Orchestrator, is_request, needs_pass
from controlplane.store import Change, Informer, Leadership, Store
from proto import cluster_pb2_grpc as cpb_grpc

if TYPE_CHECKING:
    from controlplane.envelope import Kek
    from controlplane.metrics import Metrics

log = structlog.get_logger("orch.controlplane")

ELECTION = "controllers"
LEASE_TTL = 2  # seconds: a dead leader is replaced within about this


DEFAULT_SOCKET = "/run/orch/controlplane.sock"
ETCD_PORTS = (2379, 2380)  # etcd's client and peer ports, wherever etcd runs
# The largest request a replica takes: a deploy carries its manifest's
# secrets and configs (up to 500 KiB each), beyond gRPC's default of 4 MiB.
MAX_REQUEST = 64 << 20
API_THREADS = 64  # the API's unary calls running at once (the nodes' sessions hold no thread)
_SERVER_OPTIONS = [("grpc.max_receive_message_length", MAX_REQUEST)]


class ControlPlaneError(Exception):
    """A bad option or a resource the control plane cannot get: one line for the user."""


@dataclass
class ControlPlaneOptions:
    etcd: list[str]  # endpoints; [] = run an embedded etcd in <state_dir>/etcd
    listen: list[str] = field(default_factory=lambda: ["127.0.0.1:7700"])
    state_dir: str = "/var/lib/orch/controlplane"
    id: str = ""
    # The cluster's CA and the join tokens' files (controlplane.trust);
    # "": <state_dir>/pki.
    pki_dir: str = ""
    # A replica that joins a running cluster: control-plane API addresses
    # and the file holding the control-plane join token (0600; or
    # $ORCH_JOIN_TOKEN). It gets the CA and the secrets key from them.
    join: list[str] = field(default_factory=list)
    token_file: str = ""
    # The lifetime of the certificates this replica signs, in days.
    cert_days: float = 90.0
    # The local CLI's door: a root-only unix socket, which needs no certificate.
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
    if not 0 < opts.cert_days <= 3650:
        raise ControlPlaneError(f"--cert-days {opts.cert_days:g}: expected more than 0 and at most 3650")
    for addr in opts.join:
        check_address(addr, "--join")
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


def pki_dir(opts: ControlPlaneOptions) -> str:
    return opts.pki_dir or os.path.join(opts.state_dir, "pki")


def _ca(opts: ControlPlaneOptions) -> Any:
    """The cluster's CA: the pki dir's; got by joining with the
    control-plane token (``--join``), which also brings the secrets key; or,
    for a first replica, made there."""
    from controlplane.trust import TrustError, create_ca, load_ca

    directory = pki_dir(opts)
    try:
        found = load_ca(directory)
        if found is not None:
            return found
        if opts.join:
            return _join_as_controlplane(opts, directory)
        return create_ca(directory)
    except (TrustError, OSError) as err:
        raise ControlPlaneError(str(err))


def _join_as_controlplane(opts: ControlPlaneOptions, directory: str) -> Any:
    import json

    from common import join as joincrypto
    from common import pki
    from common.auth import TokenError, join_token, write_private
    from common.identity import JoinRefused, join
    from controlplane.envelope import KEY_FILE
    from controlplane.trust import CA_CERT, CA_KEY
    from proto import cluster_pb2

    try:
        token = join_token(opts.token_file, "control-plane")
        joined = join(os.path.join(directory, "join"), opts.join, token, opts.id or "", role="controlplane",
                      pb=cluster_pb2)
        bundle = json.loads(joincrypto.open_from(pki.parse_token(token)[1], joined.sealed, joined.csr))
    except (TokenError, JoinRefused, ConnectionError, joincrypto.JoinError, ValueError) as err:
        raise ControlPlaneError(f"cannot join the control planes at {','.join(opts.join)}: {err}")
    ca = pki.CA(joined.identity.creds.ca_pem, bundle["ca_key"].encode())
    write_private(os.path.join(directory, CA_KEY), ca.key_pem)
    write_private(os.path.join(directory, CA_CERT), ca.cert_pem)
    if not opts.secrets_key_file:
        write_private(os.path.join(opts.state_dir, KEY_FILE), (bundle["secrets_key"] + "\n").encode())
    return ca


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


def _bind(server: grpc.Server | LoopServer, addr: str, creds: grpc.ServerCredentials | None = None) -> None:
    try:
        bound = server.add_insecure_port(addr) if creds is None else server.add_secure_port(addr, creds)
    except RuntimeError as err:  # grpcio raises where older ones returned 0
        raise ControlPlaneError(f"cannot listen on {addr}: {err}")
    if bound == 0:
        raise ControlPlaneError(f"cannot listen on {addr}: address in use or not on this host")


def _beacon(listen: list[str], on_beat: Callable[[str], None]) -> BeaconListener:
    """The nodes' liveness beacons, on UDP at each listen host and the
    first listen address's port (``controlplane.beacon``)."""
    hosts = [addr.rpartition(":")[0] for addr in listen]
    try:
        return BeaconListener(hosts, int(listen[0].rpartition(":")[2]), on_beat).start()
    except BeaconError as err:
        raise ControlPlaneError(str(err))


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
    ca = _ca(opts)
    replica = opts.id or secrets.token_hex(6)
    if opts.etcd:
        return _serve(opts, ca, replica)
    etcd = _start_embedded_etcd(opts.state_dir, ca, pki_dir(opts))
    try:
        return _serve(dataclasses.replace(opts, etcd=[etcd.endpoint]), ca, replica)
    finally:
        etcd.stop()
        log.info("embedded etcd stopped", data_dir=str(etcd.data_dir))


def _start_embedded_etcd(state_dir: str, ca: Any, directory: str) -> EmbeddedEtcd:
    """etcd with its data in ``<state_dir>/etcd``, serving mutual TLS with a
    certificate from the cluster CA, tied to this process: the kernel stops
    it if this process dies without stopping it (SIGKILL)."""
    from controlplane.etcd import EtcdTLS
    from controlplane.trust import etcd_tls

    etcd = EmbeddedEtcd(os.path.join(state_dir, "etcd"), die_with_parent=True,
                        tls=etcd_tls(ca, directory, "etcd", ["127.0.0.1"]))
    assert isinstance(etcd.tls, EtcdTLS)
    try:
        etcd.start(timeout=30)
    except (EtcdStartError, OSError) as err:
        raise ControlPlaneError(f"cannot start the embedded etcd: {err}")
    log.info("embedded etcd started", endpoint=etcd.endpoint, data_dir=str(etcd.data_dir), pid=etcd.pid,
             log=str(etcd.log_path))
    return etcd


GC_LOGGED = 0.25  # seconds: a collection that holds the process this long is logged
# The collector's thresholds. CPython's (700, 10, 10) collected the oldest
# generation every 2-3 s while 100,000 tasks were placed on 1,000 nodes:
# 48 collections of ~0.5 s each, 23 s of 130 with every thread stopped, and
# nothing collected: the cluster's state is the informer's objects, which
# die by reference count when replaced, not in cycles. Young generations
# are now collected every 50,000 net allocations, not 700.
GC_THRESHOLDS = (50_000, 20, 10)


def _watch_gc() -> None:
    """Tune the collector (GC_THRESHOLDS) for a process holding the cluster's
    state, and log each collection of the oldest generation that held the
    process (every thread waits on the GIL meanwhile) GC_LOGGED s or more."""
    import time

    gc.set_threshold(*GC_THRESHOLDS)
    started = [0.0]

    def callback(phase: str, info: dict[str, int]) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            started[0] = time.monotonic()
            return
        took = time.monotonic() - started[0]
        if took >= GC_LOGGED:
            log.warning("garbage collection held the control plane", seconds=round(took, 2),
                        objects=len(gc.get_objects(2)), collected=info.get("collected"))

    gc.callbacks.append(callback)


def _serve(opts: ControlPlaneOptions, ca: Any, replica: str) -> int:
    from common.identity import join_address
    from common.tls import PeerGuard, ServerTLS
    from controlplane.joinsvc import JoinService
    from controlplane.trust import Trust, TrustError, etcd_client_tls

    _watch_gc()
    kek = _secrets_key(opts)
    store = Store(opts.etcd, tls=etcd_client_tls(ca, replica, opts.etcd))
    informer = Informer(store).start()
    if not informer.wait_synced(30):
        raise ControlPlaneError(f"could not read the cluster state from etcd at {','.join(opts.etcd)} "
                                "within 30 s: is etcd running?")
    # What is loaded now (the code, the cluster's state as it was) lives as
    # long as the process, or dies by reference count: the collector skips it.
    gc.freeze()
    trust = Trust(ca, store, kek, pki_dir=pki_dir(opts), days=opts.cert_days)
    try:
        trust.tokens()
    except TrustError as err:
        raise ControlPlaneError(str(err))
    tls = ServerTLS(ca.cert_pem, *trust.own(replica, _ip_hosts(opts.listen)))
    stop = threading.Event()
    leading: list[Leadership] = []

    def is_leader() -> bool:
        return bool(leading) and not leading[0].lost()

    protected = _protected_ports(opts)
    _publish_ports(store, replica, protected)
    metrics = _metrics(opts, informer, is_leader, replica)
    dispatcher = Dispatcher(store, informer, "", protected_ports=protected,
                            on_running=metrics.observe_running if metrics else None, kek=kek, trust=trust,
                            ports_source=lambda: _published_ports(store), leading=is_leader)
    api = ClusterAPI(store, informer, replica, is_leader, lambda: store.leader(ELECTION),
                     network_pool=opts.network_pool, reserved_ports=frozenset(protected), kek=kek,
                     trust=trust, node_tls=tls)
    # TCP: mutual TLS only. The CLI API serves users and control planes; the
    # dispatcher serves nodes (common.tls.PeerGuard).
    guard = PeerGuard(trust.cluster_id, {"/orch.cluster.v1.ClusterAPI/": ("user", "controlplane"),
                                         "/orch.cluster.v1.Dispatcher/": ("node",)}, revoked=trust.revoked)
    timed = [metrics.interceptor()] if metrics else []
    # grpc.aio on a loop of its own: a node's session is a task there and
    # holds no thread; the API's handlers run on the server's pools.
    server = LoopServer(interceptors=[guard, *timed, store_errors()], options=_SERVER_OPTIONS,
                        api_threads=API_THREADS, name="cp")
    cpb_grpc.add_ClusterAPIServicer_to_server(api, server)  # type: ignore[no-untyped-call]
    cpb_grpc.add_DispatcherServicer_to_server(dispatcher, server)  # type: ignore[no-untyped-call]
    joins = grpc.server(futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="cp-join"))
    cpb_grpc.add_JoinServicer_to_server(JoinService(trust, kek, lambda: list(opts.listen)),  # type: ignore[no-untyped-call]
                                        joins)
    local = _unix_server(opts.socket, timed) if opts.socket else None
    if local is not None:
        cpb_grpc.add_ClusterAPIServicer_to_server(api, local)  # type: ignore[no-untyped-call]
    for addr in opts.listen:
        _bind(server, addr, tls.credentials())
        _bind(joins, join_address(addr))
    beacon = dispatcher.beacon = _beacon(opts.listen, dispatcher.beat)
    server.start()
    joins.start()
    api.collector.start()
    if local is not None:
        local.start()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log.info("control plane ready", id=replica, listen=opts.listen, socket=opts.socket, etcd=opts.etcd,
             secrets_key=kek.id, cluster=trust.cluster_id)
    http = None
    if metrics is not None:
        from controlplane.metrics import serve as serve_metrics

        http = serve_metrics(metrics, opts.metrics_listen)
    elector = threading.Thread(target=_lead, args=(store, informer, replica, stop, leading,
                                                   metrics.observe_pass if metrics else None,
                                                   dispatcher.heard, dispatcher.lag.allowance),
                               name="elector", daemon=True)
    elector.start()
    threading.Thread(target=_renew_own, args=(trust, tls, replica, _ip_hosts(opts.listen), stop),
                     name="renew", daemon=True).start()
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
    beacon.stop()
    api.collector.stop()
    if local is not None:
        local.stop(grace=1)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(opts.socket)
    joins.stop(grace=0)
    server.stop(grace=1).wait()
    if http is not None:
        http.shutdown()
        http.server_close()
    informer.stop()
    store.close()
    return 0


def _ip_hosts(listen: list[str]) -> list[str]:
    """The IP addresses among ``listen``'s hosts, for the certificate (not the wildcard)."""
    import ipaddress

    hosts = []
    for addr in listen:
        host = addr.rpartition(":")[0].strip("[]")
        with contextlib.suppress(ValueError):
            if not ipaddress.ip_address(host).is_unspecified:
                hosts.append(host)
    return hosts


def _renew_own(trust: Any, tls: Any, replica: str, addresses: list[str], stop: threading.Event) -> None:
    """Renew this replica's certificate at a random 50-80% of its life; the
    servers present it from their next handshake on, nothing restarts."""
    import random
    import time

    from common import pki

    while True:
        when = pki.renew_at(tls.cert_pem, random.random())
        if stop.wait(max(0.0, when - time.time())):
            return
        tls.rotate(*trust.own(replica, addresses))
        log.info("control-plane certificate renewed", id=replica)


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
    from common.identity import JOIN_PORT_OFFSET
    from controlplane.store._client import parse_endpoint

    ports = {int(addr.rpartition(":")[2]) + offset for addr in opts.listen
             for offset in (0, JOIN_PORT_OFFSET)} | set(ETCD_PORTS)
    if opts.metrics_listen:
        ports.add(int(opts.metrics_listen.rpartition(":")[2]))
    for endpoint in opts.etcd:
        ports.add(parse_endpoint(endpoint)[1])
    return sorted(ports)


PORTS_META = "controlplane-ports"


def _publish_ports(store: Store, replica: str, ports: list[int]) -> None:
    """Add this replica's ports (its API, join and metrics ports, its etcd
    endpoints') to those every replica tells its nodes to fence off."""
    import json

    from controlplane.store import StoreError

    def published(raw: str | None) -> str:
        known = json.loads(raw or "{}")
        known[replica] = sorted(ports)
        return json.dumps(known, sort_keys=True)

    try:
        store.update_meta(PORTS_META, published)
    except (StoreError, ValueError) as err:
        raise ControlPlaneError(f"cannot publish this replica's ports in etcd: {err}")


def _published_ports(store: Store) -> list[int] | None:
    """Every replica's published ports; None when etcd cannot say (the
    dispatcher then keeps what it has)."""
    import json

    try:
        known = json.loads(store.get_meta(PORTS_META) or "{}")
        return sorted({int(p) for ports in known.values() for p in ports})
    except Exception:
        return None


def _lead(store: Store, informer: Informer, replica: str, stop: threading.Event,
          leading: list[Leadership], on_pass: Callable[[float], None] | None = None,
          heard: Callable[[str], float] | None = None, lag: Callable[[], float] | None = None) -> None:
    wake, prompt = threading.Event(), threading.Event()
    dirty = DirtyServices()

    def on_change(change: Change) -> None:
        if needs_pass(change):
            dirty.note(change)
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
            Orchestrator(store, informer, leadership, wake, prompt=prompt, on_pass=on_pass,
                         dirty=dirty, heard=heard, lag=lag).run(stop)
        except Exception:
            log.exception("orchestrator crashed")
        finally:
            leading.clear()
            with contextlib.suppress(Exception):
                leadership.stop()
