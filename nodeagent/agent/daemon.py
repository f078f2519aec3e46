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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nodeagent.errors import AgentError
from nodeagent.logging import JsonLogger
from nodeagent.supervisor import SupervisorClient, SupervisorUnavailable

log = JsonLogger("orch.agent")

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


def ensure_supervisor(opts: AgentOptions, on_event: object) -> tuple[SupervisorClient, bool]:
    """Connect to the running supervisor, or start one. Returns (client, started)."""
    try:
        return SupervisorClient(opts.supervisor_socket, on_event=on_event), False  # type: ignore[arg-type]
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
        if proc.poll() is not None:
            tail = Path(log_path).read_text(errors="replace").strip().splitlines()[-5:]
            raise AgentError("the supervisor failed to start: " + " | ".join(tail))
        try:
            return SupervisorClient(opts.supervisor_socket, on_event=on_event), True  # type: ignore[arg-type]
        except SupervisorUnavailable:
            time.sleep(0.02)
    raise AgentError(f"the supervisor did not come up within 15 s; see {log_path}")


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


def run(opts: AgentOptions) -> int:
    """Serve until SIGTERM/SIGINT or a Shutdown call. Containers keep running."""
    grpc = _import_grpc()
    from nodeagent.agent.events import EventHub
    from nodeagent.agent.service import AgentService
    from proto import agent_pb2_grpc as pb_grpc

    for d in (opts.state_dir, opts.run_dir):
        os.makedirs(d, mode=0o711, exist_ok=True)
    lock_fd = _lock(opts.run_dir)
    events = EventHub()
    client, started = ensure_supervisor(opts, events)
    # The events the agent acts on (EventHub): not "created", one per container.
    sup_info = (client.call("subscribe", events=["started", "exited", "removed"])
                and client.call("ping"))
    stop = threading.Event()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32, thread_name_prefix="grpc"))
    service = AgentService(
        opts.state_dir, client, events, LazyImageStore(opts.state_dir), stop_server=stop.set,
        info={"supervisor_pid": sup_info["pid"], "bridge": opts.bridge, "subnet": opts.subnet,
              "cgroup_version": _cgroup_version()},
    )
    pb_grpc.add_AgentServicer_to_server(service, server)  # type: ignore[no-untyped-call]
    with contextlib.suppress(FileNotFoundError):
        os.unlink(opts.socket)
    server.add_insecure_port(f"unix:{opts.socket}")
    if opts.listen and server.add_insecure_port(opts.listen) == 0:
        raise AgentError(f"cannot listen on {opts.listen}")
    server.start()
    worker = None
    if opts.join:
        import socket

        from nodeagent.cluster import Worker

        worker = Worker(service, client, opts.join, opts.token, opts.name or socket.gethostname(),
                        opts.listen, opts.labels or {}, opts.state_dir, opts.max_starting)
        events.listeners.append(worker.on_event)
        service.before_stopping_containers.append(worker.stop)
        service.images.load()  # before the first task needs it
        worker.start()
    os.chmod(opts.socket, 0o660)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log.info("agent ready", socket=opts.socket, state_dir=opts.state_dir,
             supervisor_pid=sup_info["pid"], supervisor_started=started,
             containers=sup_info["containers"])
    from nodeagent.runtime._libc import malloc_trim

    while not stop.wait(1.0):
        if events.disconnected:
            log.error("lost the supervisor; exiting")
            break
        # Once a second: an image import or a burst of RPCs would otherwise
        # pin the agent's peak heap for good.
        malloc_trim()
    if worker is not None:
        worker.stop()
    server.stop(grace=2).wait()
    client.close()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(opts.socket)
    # The lock file goes while still held: an agent starting now creates
    # (and locks) a fresh one.
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(opts.run_dir, "agent.lock"))
    os.close(lock_fd)
    log.info("agent stopped")
    return 0


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
