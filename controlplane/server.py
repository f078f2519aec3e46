"""``orch controlplane``: one control-plane replica.

Every replica serves the API and the dispatcher; the one holding the
``controllers`` leadership (an etcd lease) also runs the orchestrator. When
the leader dies its lease expires and another replica takes over, without
touching healthy tasks (they are state in etcd, not in any replica).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import secrets
import signal
import threading
from concurrent import futures
from dataclasses import dataclass, field

import grpc
import structlog

from controlplane.api import ClusterAPI
from controlplane.dispatcher import Dispatcher
from controlplane.orchestrator import Orchestrator, is_request, needs_pass
from controlplane.store import Change, Informer, Leadership, Store
from proto import cluster_pb2_grpc as cpb_grpc

log = structlog.get_logger("orch.controlplane")

ELECTION = "controllers"
LEASE_TTL = 2  # seconds: a dead leader is replaced within about this


@dataclass
class ControlPlaneOptions:
    etcd: list[str]
    listen: list[str] = field(default_factory=lambda: ["127.0.0.1:7700"])
    token: str = ""
    state_dir: str = "/var/lib/orch/controlplane"
    id: str = ""


def serve(opts: ControlPlaneOptions) -> int:
    from nodeagent.logging import configure_logging

    configure_logging()
    os.makedirs(opts.state_dir, exist_ok=True)
    replica = opts.id or secrets.token_hex(6)
    store = Store(opts.etcd)
    informer = Informer(store).start()
    if not informer.wait_synced(30):
        log.error("could not read the cluster state from etcd", etcd=opts.etcd)
        return 1
    stop = threading.Event()
    leading: list[Leadership] = []

    def is_leader() -> bool:
        return bool(leading) and not leading[0].lost()

    dispatcher = Dispatcher(store, informer, opts.token)
    api = ClusterAPI(store, informer, replica, is_leader, lambda: store.leader(ELECTION))
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=64, thread_name_prefix="cp"))
    cpb_grpc.add_ClusterAPIServicer_to_server(api, server)  # type: ignore[no-untyped-call]
    cpb_grpc.add_DispatcherServicer_to_server(dispatcher, server)  # type: ignore[no-untyped-call]
    for addr in opts.listen:
        if server.add_insecure_port(addr) == 0:
            log.error("cannot listen", address=addr)
            return 1
    server.start()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log.info("control plane ready", id=replica, listen=opts.listen, etcd=opts.etcd)
    elector = threading.Thread(target=_lead, args=(store, informer, replica, stop, leading),
                               name="elector", daemon=True)
    elector.start()
    # The manifest parser (YAML and the checks) is loaded now, off the
    # request path: the first `orch deploy` does not wait for it.
    threading.Thread(target=importlib.import_module, args=("orch.manifest",),
                     name="warm-manifest", daemon=True).start()
    stop.wait()
    log.info("control plane stopping", id=replica)
    if leading:
        with contextlib.suppress(Exception):
            leading[0].resign()
    dispatcher.stop()
    server.stop(grace=1).wait()
    informer.stop()
    store.close()
    return 0


def _lead(store: Store, informer: Informer, replica: str, stop: threading.Event,
          leading: list[Leadership]) -> None:
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
            Orchestrator(store, informer, leadership, wake, prompt=prompt).run(stop)
        except Exception:
            log.exception("orchestrator crashed")
        finally:
            leading.clear()
            with contextlib.suppress(Exception):
                leadership.stop()
