"""The cluster's trust model on real parts: who each certificate says its
holder is; a join token that is not the cluster's keeps an agent out; a
rotated token no longer joins while joined nodes go on; a removed node is
refused at once, its agent exits and its tasks move; certificates renew
without restarting anything; containers cannot reach the control plane's
API or join port; etcd refuses a client without a certificate.

One `orch up --nodes 2 --controlplanes 2` cluster of this module's own
(private names, ports and subnet 10.226.x.0/24); agents started by hand run
on this host's loopback with bridges and subnets of their own (10.227.x.0/24);
the renewal test runs etcd, a control plane with short-lived certificates
and one agent by hand (10.228.x.0/24). The node removal comes last: it
takes n2 away for good."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from common import pki
from common.auth import write_private
from common.identity import JOIN_PORT_OFFSET
from controlplane.etcd import EmbeddedEtcd, EtcdTLS, etcdctl_binary
from controlplane.trust import issue_local, load_ca
from orch.cluster.record import agent_pid, load_record
from orch.pids import wait_exit
from tests.cluster.conftest import LocalCluster, wait_for
from tests.cluster.test_cluster import LOOP, looping, manifest
from tests.cluster.test_cluster_supervisor_death import container_processes, live
from tests.ports import bindable

ROOT = Path(__file__).resolve().parents[2]
DAY = 86400.0


def _orch(*args: str, env: dict[str, str] | None = None, timeout: float = 120,
          ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "orch", *args], env=env, text=True, capture_output=True,
                          timeout=timeout)


def _tag() -> str:
    return secrets.token_hex(2)


@pytest.fixture(scope="module")
def tc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    if os.geteuid() != 0:
        pytest.skip("a local cluster needs root")
    tag = _tag()
    run = f"/run/orch-tr-{tag}"
    c = LocalCluster(state=tmp_path_factory.mktemp("trust") / "state", run=Path(run), bridge=f"orcht{tag}",
                     prefix=f"ot{tag}-", subnet=f"10.226.{100 + int(tag[:2], 16) % 100}.0/24",
                     port=25000 + int(tag, 16) % 800, env={**os.environ, "ORCH_CLUSTER_RUN_DIR": run})
    c.env.pop("ORCH_HOST", None)
    c.env.pop("ORCH_CLUSTER", None)
    for name in [k for k in c.env if k.startswith("ORCH_TLS_") or k == "ORCH_CERT_PATH"]:
        c.env.pop(name)
    c.orch("up", "--nodes", "2", "--controlplanes", "2", "--state-dir", str(c.state), "--run-dir", run,
           "--bridge", c.bridge, "--prefix", c.prefix, "--subnet", c.subnet, "--port", str(c.port))
    try:
        yield c
    finally:
        if (c.run / "cluster.json").exists() or c.state.exists():
            c.down(purge=True)
        subprocess.run(["rm", "-rf", run], check=False)


# ---- helpers ------------------------------------------------------------------------------

def one_line_error(p: subprocess.CompletedProcess[str], *words: str) -> str:
    """Failed with exit 1 and one line ``orch: error: ...`` naming ``words``, no traceback."""
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    assert lines[0].startswith("orch: error: ") and all(w in lines[0] for w in words), (words, p.stderr)
    return lines[0]


def gone(c: LocalCluster, service: str) -> bool:
    """No task of ``service`` is left (once it is removed)."""
    return not [t for t in c.tasks() if t["service"] == service]


def node_record(c: LocalCluster, name: str) -> dict[str, Any]:
    return dict(next(n for n in c.record()["nodes"] if n["name"] == name))


def node_containers(run_dir: str | Path) -> dict[str, tuple[str, int]]:
    """Container name -> (id, pid), as the node's agent lists them."""
    env = {**os.environ, "ORCH_HOST": f"unix://{run_dir}/agent.sock"}
    env.pop("ORCH_CLUSTER", None)
    out = subprocess.run([sys.executable, "-m", "orch", "ps", "-o", "json"], env=env, text=True,
                         capture_output=True, check=True, timeout=60).stdout
    return {ct["name"]: (ct["id"], ct.get("pid") or 0) for ct in json.loads(out)}


def task_containers(c: LocalCluster, service: str) -> dict[str, tuple[str, str]]:
    """Task id -> (node, container id) of the service's running tasks."""
    by_node = {n["name"]: node_containers(n["run_dir"]) for n in c.record()["nodes"]}
    out = {}
    for t in c.running(service):
        name = f"{service}.{t['slot']}.{t['id'][:8]}"
        out[t["id"]] = (t["node"], by_node[t["node"]][name][0])
    return out


def served_certificate(address: str, ca_pem: bytes, cert_pem: bytes, key_pem: bytes,
                       tmp: Path) -> pki.Identity:
    """The identity in the certificate a TLS server at HOST:PORT presents,
    from a handshake made with ``cert_pem`` as the client's."""
    for name, data in (("ca.pem", ca_pem), ("cert.pem", cert_pem), ("key.pem", key_pem)):
        write_private(str(tmp / name), data)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(str(tmp / "ca.pem"))
    ctx.load_cert_chain(str(tmp / "cert.pem"), str(tmp / "key.pem"))
    ctx.set_alpn_protocols(["h2"])
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as raw, \
            ctx.wrap_socket(raw, server_hostname="localhost") as conn:
        der = conn.getpeercert(binary_form=True)
    assert der is not None
    return pki.identity(ssl.DER_cert_to_PEM_cert(der).encode())


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _api_port() -> int:
    """A free port for a control plane's API whose join port (+50) is free too."""
    while True:
        port = _free_port()
        if port + JOIN_PORT_OFFSET <= 65535 and bindable(port + JOIN_PORT_OFFSET):
            return port


def _cmdlines() -> dict[int, str]:
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                out[int(entry)] = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(
                    errors="replace")
    return out


def _links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


@dataclass
class HandAgent:
    """An agent started by hand on this host (no namespace of its own):
    its own state and run dirs, bridge and subnet, on loopback."""

    state: Path
    run: Path
    bridge: str
    subnet: str
    listen: str
    log: Path

    @classmethod
    def make(cls, tmp: Path, name: str, second: int = 227) -> HandAgent:
        tag = _tag()
        listen = 0
        while not listen or not bindable(listen + 1):
            listen = _free_port()
        return cls(tmp / f"{name}-state", Path(f"/run/orch-th-{tag}"), f"orth{tag}",
                   f"10.{second}.{100 + int(tag[:2], 16) % 100}.0/24", f"127.0.0.1:{listen}",
                   tmp / f"{name}-agent.log")

    def argv(self, join: str, token_file: Path, name: str, *extra: str) -> list[str]:
        return [sys.executable, "-m", "orch", "agent", "--state-dir", str(self.state),
                "--run-dir", str(self.run), "--bridge", self.bridge, "--subnet", self.subnet,
                "--join", join, "--token-file", str(token_file), "--listen", self.listen,
                "--metrics-listen", "none", "--name", name, "--dns-upstream", "none", *extra]

    def run_once(self, join: str, token_file: Path, name: str) -> subprocess.CompletedProcess[str]:
        """Run it in the foreground until it exits (one that is refused does at once)."""
        return subprocess.run(self.argv(join, token_file, name), text=True, capture_output=True, timeout=90)

    def start(self, join: str, token_file: Path, name: str) -> subprocess.Popen[bytes]:
        with open(self.log, "ab") as log:
            return subprocess.Popen(self.argv(join, token_file, name), stdout=log, stderr=log)

    @property
    def socket(self) -> str:
        return f"unix://{self.run}/agent.sock"

    def cleanup(self) -> None:
        """Its agent, supervisor, containers and network go (the agent may be gone already)."""
        subprocess.run([sys.executable, "-m", "orch", "agent", "stop", "--all", "--state-dir",
                        str(self.state), "--run-dir", str(self.run)], capture_output=True, timeout=150)
        for pid, cmd in _cmdlines().items():  # only if that failed: these are this test's
            if pid != os.getpid() and (str(self.run) in cmd or str(self.state) in cmd) and live(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                wait_exit(pid, 10)
        if self.bridge in _links():
            subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
        subprocess.run(["rm", "-rf", str(self.run)], check=False)


def _token_file(tmp: Path, name: str, token: str) -> Path:
    path = tmp / name
    write_private(str(path), (token + "\n").encode())
    return path


# ---- who each certificate names -----------------------------------------------------------

def test_each_certificate_names_its_holder_and_the_cluster(tc: LocalCluster, tmp_path: Path) -> None:
    pki_dir = tc.state / "pki"
    ca = (pki_dir / "ca.crt").read_bytes()
    cluster_id = pki.ca_cluster_id(ca)
    assert cluster_id and pki.identity(ca).node_id == "orch-root-ca"
    ids = {n["name"]: n["id"] for n in tc.nodes()}
    assert sorted(ids) == ["n1", "n2"]
    now = time.time()
    for name in ("n1", "n2"):
        node_pki = Path(node_record(tc, name)["state_dir"]) / "pki"
        cert = (node_pki / "node.crt").read_bytes()
        who = pki.verify(cert, ca, now)  # this CA's, valid now
        assert (who.node_id, who.role, who.cluster_id) == (ids[name], "node", cluster_id)
        assert 90 * DAY <= who.not_after - who.not_before <= 90 * DAY + 3600  # 90 days (backdated a little)
        assert (node_pki / "ca.crt").read_bytes() == ca
        assert pki.matches_key(cert, (node_pki / "node.key").read_bytes())
    admin = tc.state / "pki" / "admin"
    who = pki.verify((admin / "cert.pem").read_bytes(), ca, now)
    assert (who.node_id, who.role, who.cluster_id) == ("admin", "user", cluster_id)
    assert 90 * DAY <= who.not_after - who.not_before <= 90 * DAY + 3600
    # What the servers present: each control plane its replica's certificate,
    # each node's API the node's own (the one on its disk).
    key = (admin / "key.pem").read_bytes()
    for i, listen in enumerate(tc.record()["listens"], 1):
        served = served_certificate(listen[0], ca, (admin / "cert.pem").read_bytes(), key, tmp_path)
        assert (served.node_id, served.role, served.cluster_id) == (f"cp{i}", "controlplane", cluster_id)
    for n in tc.nodes():
        served = served_certificate(n["address"], ca, (admin / "cert.pem").read_bytes(), key, tmp_path)
        node_pki = Path(node_record(tc, n["name"])["state_dir"]) / "pki"
        on_disk = pki.identity((node_pki / "node.crt").read_bytes())
        assert (served.node_id, served.role, served.serial) == (n["id"], "node", on_disk.serial)


# ---- who may join ---------------------------------------------------------------------------

def test_an_agent_with_a_wrong_token_exits_and_never_joins(tc: LocalCluster, tmp_path: Path) -> None:
    ca = (tc.state / "pki" / "ca.crt").read_bytes()
    join = f"127.0.0.1:{tc.port}"
    controlplane_token = (tc.state / "pki" / "controlplane-token").read_text().strip()
    cases = [
        ("stranger", pki.make_token(pki.new_ca("stranger", time.time()).cert_pem),
         "shows a CA that is not the one the join token pins"),
        ("guesser", pki.make_token(ca), "refused to join this node"),  # this CA's digest, a made-up secret
        ("climber", controlplane_token, "refused to join this node"),  # a real token, of the other role
    ]
    for name, token, words in cases:
        agent = HandAgent.make(tmp_path, name)
        try:
            p = agent.run_once(join, _token_file(tmp_path, f"{name}-token", token), name)
            one_line_error(p, words)
            assert not (agent.state / "pki" / "node.crt").exists()  # it was given nothing
        finally:
            agent.cleanup()
    assert sorted(n["name"] for n in tc.nodes()) == ["n1", "n2"]


def test_a_rotated_node_token_no_longer_joins_and_joined_nodes_go_on(tc: LocalCluster,
                                                                     tmp_path: Path) -> None:
    tc.orch("deploy", "-f", looping(tmp_path, "steady", 4))
    wait_for(lambda: len(tc.running("steady")) == 4 and len(tc.per_node("steady")) == 2, timeout=60)
    before = task_containers(tc, "steady")
    pki_dir = tc.state / "pki"
    old = tc.orch("token", "node", "-q").stdout.strip()
    assert old == (pki_dir / "node-token").read_text().strip()
    controlplane = tc.orch("token", "controlplane", "-q").stdout.strip()
    rotated = time.time()
    out = tc.orch("token", "rotate", "node").stdout
    new = tc.orch("token", "node", "-q").stdout.strip()
    assert out.startswith("rotated the node join token") and new in out and new != old
    assert pki.token_pins(new, (pki_dir / "ca.crt").read_bytes())
    assert tc.orch("token", "controlplane", "-q").stdout.strip() == controlplane  # left alone
    wait_for(lambda: (pki_dir / "node-token").read_text().strip() == new, timeout=10)
    join = f"127.0.0.1:{tc.port + 1}"  # the other replica: the token is the cluster's, not a replica's

    stale = HandAgent.make(tmp_path, "stale")
    try:
        p = stale.run_once(join, _token_file(tmp_path, "old-token", old), "stale")
        one_line_error(p, "refused to join this node")
    finally:
        stale.cleanup()

    fresh = HandAgent.make(tmp_path, "fresh")
    try:
        proc = fresh.start(join, _token_file(tmp_path, "new-token", new), "fresh")
        wait_for(lambda: {n["name"]: n["state"] for n in tc.nodes()}.get("fresh") == "ready"
                 or proc.poll() is not None, timeout=60)
        assert proc.poll() is None, fresh.log.read_text()[-2000:]
        who = pki.identity((fresh.state / "pki" / "node.crt").read_bytes())
        assert who.role == "node" and who.node_id == {n["name"]: n["id"] for n in tc.nodes()}["fresh"]
        # It leaves again (removed: its agent exits by itself).
        tc.orch("node", "rm", "-f", "fresh")
        proc.wait(timeout=60)
        assert proc.returncode == 1
    finally:
        fresh.cleanup()
    assert {n["name"] for n in tc.nodes()} == {"n1", "n2"}  # neither the stale one nor the fresh one
    # The joined nodes never noticed: ready, beating since the rotation, the same containers.
    tc.heartbeats_after(rotated)
    assert task_containers(tc, "steady") == before
    tc.orch("rm", "steady")
    wait_for(lambda: gone(tc, "steady"), timeout=60)


# ---- what cannot be reached -----------------------------------------------------------------

def _reachable(c: LocalCluster, task: str, targets: list[tuple[str, int]]) -> list[str]:
    """Which of ``targets`` (host, port) a TCP connection from inside
    ``task``'s container opens to (busybox nc; all at once, 2 s each)."""
    probes = " ".join(f"(nc -w 2 {host} {port} </dev/null >/dev/null 2>&1 && echo {host}:{port}) &"
                      for host, port in targets)
    return c.orch("exec", task, "sh", "-c", f"{probes} wait", check=False).stdout.split()


LISTENER = """
import select, socket, sys
socks = []
for port in map(int, sys.argv[1:]):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(16)
    socks.append(s)
print("ready", flush=True)
while True:
    for s in select.select(socks, [], [])[0]:
        s.accept()[0].close()
"""


@contextlib.contextmanager
def listening_in(netns: str, ports: list[int]) -> Iterator[None]:
    """Something listening on ``ports`` (every address) in the network
    namespace ``netns``: it accepts each connection and closes it."""
    proc = subprocess.Popen(["ip", "netns", "exec", netns, sys.executable, "-c", LISTENER, *map(str, ports)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready", proc.stderr
        yield
    finally:
        proc.kill()
        proc.wait()


def test_containers_cannot_reach_the_api_or_join_ports(tc: LocalCluster, tmp_path: Path) -> None:
    """Wherever a control plane listens, on a node's host or elsewhere, its
    API and join ports are out of the containers' reach: in each node's
    namespace something listens on those port numbers (as a control plane on
    the node's host would), and a container reaches it at its gateway only on
    another port; nor does it reach the control planes where the agents do."""
    tc.orch("deploy", "-f", manifest(tmp_path, f"""
        services:
          trustprobe:
            image: busybox
            command: ["sh", "-c", "{LOOP}"]
            stop_grace_period: 1s
            deploy:
              mode: global
    """))
    try:
        probes = wait_for(lambda: {t["node"]: t["id"] for t in tc.running("trustprobe")}
                          if len(tc.running("trustprobe")) == 2 else None, timeout=60)
        listens = [listen[-1] for listen in tc.record()["listens"]]  # where the agents reach them
        api_ports = [int(addr.rsplit(":", 1)[1]) for addr in listens]
        protected = {p + offset: f"cp{i}'s {kind} port" for i, p in enumerate(api_ports, 1)
                     for offset, kind in ((0, "API"), (JOIN_PORT_OFFSET, "join"))}
        for node, task in probes.items():
            route = tc.orch("exec", task, "sh", "-c", "ip route | awk '/^default/ {print $3}'")
            gateway = route.stdout.strip()
            assert gateway, node
            control = _free_port()
            elsewhere = [(addr.rsplit(":", 1)[0], int(addr.rsplit(":", 1)[1]) + offset)
                         for addr in listens for offset in (0, JOIN_PORT_OFFSET)]
            with listening_in(node_record(tc, node)["netns"], [control, *protected]):
                reached = _reachable(tc, task, [(gateway, control), *((gateway, p) for p in protected),
                                                *elsewhere])
            assert f"{gateway}:{control}" in reached, f"{node}: control port {control} not reached"
            named = [(r, protected.get(int(r.rsplit(":", 1)[1]))) for r in reached]
            assert reached == [f"{gateway}:{control}"], f"{node}: reachable from a container: {named}"
    finally:
        tc.orch("rm", "trustprobe", check=False)
        wait_for(lambda: gone(tc, "trustprobe"), timeout=60)


def _etcdctl(url: str, *tls: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([etcdctl_binary(), "--endpoints", url, "--dial-timeout", "1s", "--command-timeout",
                           "1s", *tls, "get", "/orch/", "--prefix", "--keys-only", "--limit", "1"],
                          text=True, capture_output=True, timeout=30)


def test_etcd_refuses_a_client_without_a_control_planes_certificate(tc: LocalCluster, tmp_path: Path) -> None:
    rec = tc.record()
    [member] = rec["etcd_members"]
    pki_dir = Path(rec["pki_dir"])
    ca_file = str(pki_dir / "ca.crt")
    url = member["client"]
    assert url.startswith("https://")

    def pair(name: str, cert: bytes, key: bytes) -> list[str]:
        write_private(str(tmp_path / f"{name}.crt"), cert)
        write_private(str(tmp_path / f"{name}.key"), key)
        return EtcdTLS(ca_file, str(tmp_path / f"{name}.crt"), str(tmp_path / f"{name}.key")).etcdctl_args()

    ca = load_ca(str(pki_dir))
    assert ca is not None
    # The control: a control plane's certificate of the cluster's CA.
    ok = _etcdctl(url, *pair("cp", *issue_local(ca, "trust-test", "controlplane")))
    assert ok.returncode == 0 and ok.stdout.startswith("/orch/"), ok.stderr
    n1 = Path(node_record(tc, "n1")["state_dir"]) / "pki"
    admin = pki_dir / "admin"
    refused = {
        "TLS without a client certificate": _etcdctl(url, "--cacert", ca_file),
        "TLS trusting the system's CAs only": _etcdctl(url),
        "plaintext on the TLS port": _etcdctl(url.replace("https://", "http://")),
        "a stranger's certificate": _etcdctl(url, *pair("mallory", *issue_local(
            pki.new_ca("stranger", time.time()), "mallory", "controlplane"))),
        "a node's certificate": _etcdctl(url, "--cacert", ca_file, "--cert", str(n1 / "node.crt"),
                                         "--key", str(n1 / "node.key")),
        "the admin user's certificate": _etcdctl(url, "--cacert", ca_file, "--cert", str(admin / "cert.pem"),
                                                 "--key", str(admin / "key.pem")),
        "the plain-http listener, which serves metrics only": _etcdctl(member["metrics"]),
    }
    for why, p in refused.items():
        assert p.returncode != 0 and "/orch/" not in p.stdout, (why, p.stdout, p.stderr)
    host, port = member["metrics"].split("//")[1].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(b"GET /health HTTP/1.0\r\n\r\n")
        assert b'"health":"true"' in s.recv(4096).replace(b" ", b"")


# ---- certificates renew without restarts --------------------------------------------------

@dataclass
class ShortLived:
    tmp: Path
    socket: str
    node: HandAgent
    ca: pki.CA
    procs: list[subprocess.Popen[bytes]]  # the control plane's and the agent's

    def orch(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
        env["ORCH_CLUSTER_RUN_DIR"] = "/nonexistent/orch-run"
        p = _orch("-C", f"unix://{self.socket}", *args, env=env)
        if check:
            assert p.returncode == 0, (args, p.stderr)
        return p

    def cert(self) -> bytes:
        return (self.node.state / "pki" / "node.crt").read_bytes()


CERT_DAYS = "0.0002"  # about 17 s: renewed 8 to 14 s after it is made (pki.renew_at)


@pytest.fixture
def short_lived(tmp_path: Path) -> Iterator[ShortLived]:
    """etcd, one control plane signing certificates of about 26 s, one agent
    joined with its token, busybox imported there."""
    if os.geteuid() != 0:
        pytest.skip("an agent needs root")
    etcd = EmbeddedEtcd(tmp_path / "etcd")
    etcd.start()
    sock = str(tmp_path / "cp.sock")
    procs: list[subprocess.Popen[bytes]] = []
    node = HandAgent.make(tmp_path, "rn1", second=228)
    api = f"127.0.0.1:{_api_port()}"
    try:
        with open(tmp_path / "cp.log", "wb") as log:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "orch", "controlplane", "--etcd", etcd.endpoint, "--listen",
                 api, "--socket", sock, "--state-dir", str(tmp_path / "cp"),
                 "--cert-days", CERT_DAYS, "--id", "rot"], stdout=log, stderr=log))
        token = tmp_path / "cp" / "pki" / "node-token"
        wait_for(lambda: (os.path.exists(sock) and token.exists()) or procs[0].poll() is not None, timeout=30)
        assert procs[0].poll() is None, (tmp_path / "cp.log").read_text()[-2000:]
        ca = load_ca(str(tmp_path / "cp" / "pki"))
        assert ca is not None
        procs.append(node.start(api, token, "rn1"))
        plane = ShortLived(tmp_path, sock, node, ca, procs)
        wait_for(lambda: any(n["name"] == "rn1" and n["state"] == "ready"
                             for n in json.loads(plane.orch("nodes", "-o", "json").stdout))
                 or procs[1].poll() is not None, timeout=60)
        assert procs[1].poll() is None, node.log.read_text()[-2000:]
        rootfs = tmp_path / "busybox-rootfs"
        shell = ["/bin/busybox", "sh"] if os.access("/bin/busybox", os.X_OK) else []
        subprocess.run([*shell, str(ROOT / "examples/images/busybox.sh"), str(rootfs)], check=True,
                       capture_output=True, timeout=120)
        env = {**os.environ, "ORCH_HOST": node.socket}
        subprocess.run([sys.executable, "-m", "orch", "image", "import", str(rootfs), "busybox:latest"],
                       env=env, check=True, capture_output=True, timeout=120)
        yield plane
    finally:
        node.cleanup()
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                if not wait_exit(proc.pid, 15):
                    proc.kill()
            proc.wait()
        etcd.stop()


def test_certificates_renew_without_restarting_anything(short_lived: ShortLived, tmp_path: Path) -> None:
    plane = short_lived
    initial = pki.identity(plane.cert())
    assert initial.not_after - initial.not_before <= 400  # a short life, as asked (and its backdating)
    plane.orch("deploy", "-f", manifest(tmp_path, """
        services:
          ticker:
            image: busybox
            command: ["sh", "-c", "trap 'exit 0' TERM; i=0; while :; do echo tick $i; i=$((i+1)); sleep 1;
                                   done"]
            stop_grace_period: 1s
            deploy:
              replicas: 1
    """))

    def running() -> list[dict[str, Any]]:
        tasks = json.loads(plane.orch("ps", "ticker", "-o", "json").stdout)
        return [t for t in tasks if t["state"] == "running" and t["desired"] == "running"]

    [task] = wait_for(running, timeout=60)
    name = f"ticker.{task['slot']}.{task['id'][:8]}"
    container = node_containers(plane.node.run)[name]
    pids = [proc.pid for proc in plane.procs]
    assert int((plane.node.run / "agent.lock").read_text().strip()) == pids[1]

    # From now on (the container runs), the node's certificate on disk changes at least once.
    first = pki.identity(plane.cert())
    seen: list[tuple[float, bytes]] = []

    def renewed() -> bool:
        cert = plane.cert()
        if pki.identity(cert).serial != first.serial:
            seen.append((time.time(), cert))
            return True
        return False

    wait_for(renewed, timeout=90, interval=0.2)
    seen_at, cert = seen[0]
    who = pki.verify(cert, plane.ca.cert_pem, time.time())
    assert (who.node_id, who.role) == (first.node_id, "node")
    # The node API presents a renewed certificate (no restart: the same agent).
    client_cert, client_key = issue_local(plane.ca, "probe", "controlplane")
    served = served_certificate(plane.node.listen, plane.ca.cert_pem, client_cert, client_key, tmp_path)
    assert served.node_id == first.node_id and served.serial != first.serial
    assert [proc.poll() for proc in plane.procs] == [None, None]  # nothing restarted
    assert int((plane.node.run / "agent.lock").read_text().strip()) == pids[1]
    # The same task, in the same container, and the control plane still
    # reaches it over the renewed certificates (its own renew too).
    assert [t["id"] for t in running()] == [task["id"]]
    assert node_containers(plane.node.run)[name] == container
    logs = plane.orch("logs", "ticker")
    assert "tick" in logs.stdout, logs.stdout
    assert plane.orch("exec", task["id"], "echo", "renewed").stdout.strip() == "renewed"
    nodes = json.loads(plane.orch("nodes", "-o", "json").stdout)
    assert [(n["name"], n["state"]) for n in nodes] == [("rn1", "ready")]
    # A renewed certificate is renewed again only from half its life on,
    # not at once (the one seen was made before ``seen_at``).
    assert pki.renew_at(cert, 0.0) > seen_at, (
        f"a fresh certificate is due for renewal at once: renew_at {pki.renew_at(cert, 0.0):.1f} <= "
        f"{seen_at:.1f} (valid {pki.identity(cert).not_before:.1f} to {pki.identity(cert).not_after:.1f})")


# ---- removing a node (last: n2 goes for good) -----------------------------------------------

def test_a_removed_node_is_refused_its_agent_exits_and_its_tasks_move(tc: LocalCluster,
                                                                     tmp_path: Path) -> None:
    tc.orch("deploy", "-f", looping(tmp_path, "moving", 6))
    wait_for(lambda: len(tc.running("moving")) == 6 and len(tc.per_node("moving")) == 2, timeout=60)
    n2 = node_record(tc, "n2")
    rec = load_record(str(tc.run))
    agent = agent_pid(next(n for n in rec.nodes if n.name == "n2"))
    assert agent and live(agent)
    node_id = {n["name"]: n["id"] for n in tc.nodes()}["n2"]
    n2_containers = {cid for cid, _ in node_containers(n2["run_dir"]).values()}
    assert n2_containers
    # Ready: refused without --force.
    p = tc.orch("node", "rm", "n2", check=False)
    one_line_error(p, "node n2 is ready: stop its agent first, or remove it with --force")
    assert {n["name"]: n["state"] for n in tc.nodes()}["n2"] == "ready"
    # Forced: gone at once, its agent told so and exiting by itself.
    p = tc.orch("node", "rm", "-f", "n2")
    assert p.stdout.strip() == "n2"
    assert "n2" not in {n["name"] for n in tc.nodes()}
    wait_for(lambda: not live(agent), timeout=60)
    log = (Path(n2["state_dir"]) / "agent.log").read_text()
    assert f"certificate of {node_id} is revoked: the node was removed from the cluster" in log
    # Its tasks run on n1 instead, exactly as many.
    wait_for(lambda: tc.per_node("moving") == {"n1": 6}, timeout=60)
    assert len(tc.running("moving")) == 6
    wait_for(lambda: sum(1 for t in tc.tasks("moving") if t["desired"] == "running") == 6, timeout=30)
    # Removed again: nothing to remove.
    one_line_error(tc.orch("node", "rm", "-f", "n2", check=False), "no such node: n2")
    # No container of n2 runs on this host any more.
    try:
        wait_for(lambda: not (set(container_processes()) & n2_containers), timeout=60)
    except AssertionError:
        left = {cid[:12]: pids for cid, pids in container_processes().items() if cid in n2_containers}
        raise AssertionError(f"n2 was removed and its agent exited, but its containers still run on "
                             f"this host (id: pids): {left}") from None
