"""Who may drive the control plane: root on its host through the root-only
unix socket, and CLIs over TCP that present a user certificate of the
cluster's CA (mutual TLS); nobody else. Who may become a control plane: a
replica that joins with the control-plane token.

Real etcd and two real control-plane replicas (no nodes needed): the first
makes the CA in its pki dir, the second joins it with the control-plane
token (``--join``, ``--token-file``) from an empty state dir and serves
with the same CA. The real CLI, and an unprivileged user (uid 65534) for
the refusals."""

from __future__ import annotations

import os
import signal
import site
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from common import pki
from common.auth import write_private
from common.identity import JOIN_PORT_OFFSET
from controlplane.etcd import EmbeddedEtcd
from controlplane.trust import issue_local, load_ca
from orch.pids import wait_exit
from tests.cluster.conftest import wait_for
from tests.ports import bindable, free_ports

NOBODY = 65534
ROOT = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = "/usr/bin/python3"


@dataclass
class Plane:
    tmp: Path
    etcd: EmbeddedEtcd
    ports: list[int]
    sockets: list[str]
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def tcp(self, i: int) -> str:
        return f"127.0.0.1:{self.ports[i]}"

    def pki(self, i: int) -> Path:
        """Replica ``i``'s pki dir (the default, in its state dir)."""
        return self.tmp / f"cp{i + 1}" / "pki"

    def log(self, i: int) -> str:
        return (self.tmp / f"cp{i + 1}.log").read_text(errors="replace")[-3000:]

    def orch(self, *args: str, env: dict[str, str] | None = None, user: int | None = None,
             ) -> subprocess.CompletedProcess[str]:
        """The CLI as root, or as ``user``: the system's python3 then, on the
        same packages (the venv's interpreter lives under root's 0700 home)."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
        base["ORCH_CLUSTER_RUN_DIR"] = "/nonexistent/orch-run"
        python = sys.executable
        if user is not None:
            python = SYSTEM_PYTHON
            base["PYTHONPATH"] = os.pathsep.join([str(ROOT), *site.getsitepackages()])
        return subprocess.run([python, "-m", "orch", *args], env={**base, **(env or {})},
                              text=True, capture_output=True, timeout=60, user=user, group=user,
                              extra_groups=[] if user is not None else None, cwd="/")

    def alice(self) -> Path:
        """A user certificate for alice, issued through replica 1's socket (once)."""
        out = self.tmp / "alice"
        if not (out / "key.pem").exists():
            p = self.orch("-C", f"unix://{self.sockets[0]}", "cert", "issue", "--user", "alice",
                          "--out", str(out))
            assert p.returncode == 0, p.stderr
        return out


def _api_ports(n: int) -> list[int]:
    """Free ports for control-plane APIs whose join ports (+50) are free too."""
    found: list[int] = []
    while len(found) < n:
        port = free_ports(1)[0]
        if port + JOIN_PORT_OFFSET <= 65535 and bindable(port + JOIN_PORT_OFFSET) and port not in found:
            found.append(port)
    return found


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        if not wait_exit(proc.pid, 15):
            proc.kill()
    proc.wait()


def one_line_error(p: subprocess.CompletedProcess[str], *words: str, code: int = 1) -> str:
    """The CLI failed with exit ``code`` and one line naming ``words``, nothing on stdout."""
    assert p.returncode == code, (p.returncode, p.stdout, p.stderr)
    assert "Traceback" not in p.stderr and p.stdout == "", p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("orch: error: "), p.stderr
    assert all(w in lines[0] for w in words), (words, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    if os.geteuid() != 0 or not os.access(SYSTEM_PYTHON, os.X_OK):
        pytest.skip("needs root, and a system python3 for the unprivileged user")
    tmp = tmp_path_factory.mktemp("access")
    etcd = EmbeddedEtcd(tmp / "etcd")
    etcd.start()
    run = Path(f"/run/orch-acc-{os.getpid()}")
    p = Plane(tmp, etcd, _api_ports(2), [str(run / f"cp{i + 1}.sock") for i in range(2)])

    def start(i: int, *extra: str) -> None:
        with open(tmp / f"cp{i + 1}.log", "wb") as log:
            p.procs.append(subprocess.Popen(
                [sys.executable, "-m", "orch", "controlplane", "--etcd", etcd.endpoint,
                 "--listen", p.tcp(i), "--socket", p.sockets[i], "--id", f"cp{i + 1}",
                 "--state-dir", str(tmp / f"cp{i + 1}"), *extra], stdout=log, stderr=log))
        wait_for(lambda: os.path.exists(p.sockets[i]) or p.procs[i].poll() is not None, timeout=30)
        assert p.procs[i].poll() is None, f"replica {i + 1} exited: {p.log(i)}"

    try:
        start(0)  # the first: makes the CA and the tokens in its pki dir
        token = p.pki(0) / "controlplane-token"
        wait_for(token.exists, timeout=30)
        copy = tmp / "controlplane-token"
        write_private(str(copy), token.read_bytes())
        start(1, "--join", p.tcp(0), "--token-file", str(copy))  # the second joins it
        yield p
    finally:
        for proc in p.procs:
            _stop(proc)
        etcd.stop()
        subprocess.run(["rm", "-rf", str(run)], check=False)


# ---- the local socket ---------------------------------------------------------------------

def test_the_local_socket_is_root_only_and_needs_no_certificate(plane: Plane) -> None:
    for sock in plane.sockets:
        mode = os.stat(sock).st_mode
        assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) & 0o077 == 0
        p = plane.orch("-C", f"unix://{sock}", "services")
        assert p.returncode == 0, p.stderr
    p = plane.orch("-C", f"unix://{plane.sockets[0]}", "services", user=NOBODY)
    assert p.returncode == 1
    assert "permission denied" in p.stderr and "Traceback" not in p.stderr
    assert p.stdout == ""


# ---- TCP: mutual TLS ------------------------------------------------------------------------

def test_tcp_without_a_certificate_says_how_to_get_one(plane: Plane) -> None:
    for i in range(2):
        p = plane.orch("-C", plane.tcp(i), "services")
        one_line_error(p, f"the control plane at {plane.tcp(i)} takes mutual TLS only",
                       "orch cert issue --user")


def test_the_joined_replica_serves_with_the_first_ones_ca(plane: Plane) -> None:
    assert (plane.pki(1) / "ca.crt").read_bytes() == (plane.pki(0) / "ca.crt").read_bytes()
    assert (plane.pki(1) / "ca.key").read_bytes() == (plane.pki(0) / "ca.key").read_bytes()
    assert stat.S_IMODE((plane.pki(1) / "ca.key").stat().st_mode) == 0o600
    # Both replicas hand out the same join tokens (they live in etcd).
    for name in ("node-token", "controlplane-token"):
        assert (plane.pki(1) / name).read_text() == (plane.pki(0) / name).read_text()


def test_a_user_certificate_issued_through_one_replica_works_on_both(plane: Plane) -> None:
    out = plane.alice()
    for name in ("ca.pem", "cert.pem", "key.pem"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o600, name
    who = pki.identity((out / "cert.pem").read_bytes())
    ca = (plane.pki(0) / "ca.crt").read_bytes()
    assert (who.node_id, who.role, who.cluster_id) == ("alice", "user", pki.ca_cluster_id(ca))
    assert (out / "ca.pem").read_bytes() == ca
    for i in range(2):  # the second replica was issued nothing: the same CA is enough
        p = plane.orch("-C", plane.tcp(i), "services", env={"ORCH_CERT_PATH": str(out)})
        assert p.returncode == 0, p.stderr
        p = plane.orch("-C", plane.tcp(i), "--tlscacert", str(out / "ca.pem"), "--tlscert",
                       str(out / "cert.pem"), "--tlskey", str(out / "key.pem"), "nodes")
        assert p.returncode == 0, p.stderr
    env = {"ORCH_TLS_CACERT": str(out / "ca.pem"), "ORCH_TLS_CERT": str(out / "cert.pem"),
           "ORCH_TLS_KEY": str(out / "key.pem")}
    p = plane.orch("-C", plane.tcp(1), "services", env=env)
    assert p.returncode == 0, p.stderr
    # An existing key is never overwritten.
    p = plane.orch("-C", f"unix://{plane.sockets[1]}", "cert", "issue", "--user", "alice", "--out", str(out))
    one_line_error(p, f"{out}/key.pem exists")


def test_a_certificate_of_another_ca_fails_the_handshake(plane: Plane, tmp_path: Path) -> None:
    """Presenting a stranger's certificate, or trusting a stranger's CA: the
    handshake fails, one line, at once (the subprocess timeout only guards a hang)."""
    import time

    other = pki.new_ca("stranger", time.time())
    cert, key = issue_local(other, "mallory", "user")
    for name, data in (("ca.pem", other.cert_pem), ("cert.pem", cert), ("key.pem", key)):
        write_private(str(tmp_path / name), data)
    real_ca = str(plane.alice() / "ca.pem")
    combos = [(real_ca, "the server refuses mallory"),
              (str(tmp_path / "ca.pem"), "mallory refuses the server")]
    for ca_file, why in combos:
        for i in range(2):
            p = plane.orch("-C", plane.tcp(i), "--tlscacert", ca_file, "--tlscert",
                           str(tmp_path / "cert.pem"), "--tlskey", str(tmp_path / "key.pem"), "services")
            line = one_line_error(p, f"TLS handshake with {plane.tcp(i)} failed")
            assert "timed out" not in line, (why, line)
    # alice's own certificate, but trusting the stranger's CA: the client refuses the server.
    alice = plane.alice()
    p = plane.orch("-C", plane.tcp(0), "--tlscacert", str(tmp_path / "ca.pem"), "--tlscert",
                   str(alice / "cert.pem"), "--tlskey", str(alice / "key.pem"), "services")
    one_line_error(p, f"TLS handshake with {plane.tcp(0)} failed")


def test_a_node_certificate_is_refused_on_the_api(plane: Plane, tmp_path: Path) -> None:
    ca = load_ca(str(plane.pki(0)))
    assert ca is not None
    cert, key = issue_local(ca, "sneaky", "node")
    for name, data in (("ca.pem", ca.cert_pem), ("cert.pem", cert), ("key.pem", key)):
        write_private(str(tmp_path / name), data)
    for i in range(2):
        p = plane.orch("-C", plane.tcp(i), "services", env={"ORCH_CERT_PATH": str(tmp_path)})
        one_line_error(p, f"the control plane at {plane.tcp(i)} refused the call", "sneaky is a node",
                       "this API serves controlplane, user")


def test_an_unprivileged_user_gets_a_permission_error_not_data(plane: Plane) -> None:
    # Over TCP, with the path of root's certificate (its files are 0600).
    out = plane.alice()
    p = plane.orch("-C", plane.tcp(0), "services", user=NOBODY, env={"ORCH_CERT_PATH": str(out)})
    one_line_error(p, "(from $ORCH_CERT_PATH): cannot read it: Permission denied")
    p = plane.orch("-C", plane.tcp(0), "exec", "web.1", "id", user=NOBODY)
    one_line_error(p, "takes mutual TLS only")


def test_secrets_are_refused_in_argv(plane: Plane) -> None:
    p = plane.orch("controlplane", "--etcd", plane.etcd.endpoint, "--token", "abc")
    one_line_error(p, "--token-file")
    p = plane.orch("agent", "--join", plane.tcp(0), "--token", "abc", "--listen", "127.0.0.1:1")
    one_line_error(p, "--token-file")
    secrets = [(plane.pki(0) / name).read_text().strip() for name in ("node-token", "controlplane-token")]
    ca_key = b"".join((plane.pki(0) / "ca.key").read_bytes().splitlines()[1:-1])
    assert all(s.startswith("SWMTKN-1-") for s in secrets)
    for proc in plane.procs:
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
        assert not any(s.encode() in cmdline for s in secrets) and ca_key not in cmdline
    # The replica that joined was given the token's file, not the token.
    assert b"--token-file\0" in Path(f"/proc/{plane.procs[1].pid}/cmdline").read_bytes()


def _join(plane: Plane, tmp: Path, token: str) -> subprocess.CompletedProcess[str]:
    """A third replica, joining replica 2 with ``token`` from a 0600 file."""
    write_private(str(tmp / "token"), (token + "\n").encode())
    port = _api_ports(1)[0]
    return plane.orch("controlplane", "--etcd", plane.etcd.endpoint, "--listen", f"127.0.0.1:{port}",
                      "--socket", str(tmp / "cp.sock"), "--state-dir", str(tmp / "state"), "--id", "cp3",
                      "--join", plane.tcp(1), "--token-file", str(tmp / "token"))


def test_a_replica_joining_with_a_wrong_token_exits_with_the_reason(plane: Plane, tmp_path: Path) -> None:
    import time

    node_token = (plane.pki(0) / "node-token").read_text().strip()
    ca = (plane.pki(0) / "ca.crt").read_bytes()
    wrong_secret = pki.make_token(ca)  # this CA's digest, a secret nobody issued
    stranger = pki.make_token(pki.new_ca("stranger", time.time()).cert_pem)
    cases = [(node_token, "refused to join this node"), (wrong_secret, "refused to join this node"),
             (stranger, "shows a CA that is not the one the join token pins"),
             ("0123456789abcdef" * 3, "not a join token")]
    for i, (token, words) in enumerate(cases):
        tmp = tmp_path / f"j{i}"
        p = _join(plane, tmp, token)
        one_line_error(p, f"cannot join the control planes at {plane.tcp(1)}", words)
        assert not (tmp / "state" / "pki" / "ca.key").exists()  # it got nothing
    # None of them became a replica: the API lists no node and answers as before.
    out = plane.alice()
    p = plane.orch("-C", plane.tcp(1), "services", env={"ORCH_CERT_PATH": str(out)})
    assert p.returncode == 0, p.stderr


def test_an_agent_with_an_old_style_token_is_refused_before_anything(plane: Plane, tmp_path: Path) -> None:
    """A 48-hex token (the old bearer tokens) is not a join token: the agent
    says so before it starts anything."""
    old = tmp_path / "old-token"
    write_private(str(old), b"0123456789abcdef0123456789abcdef0123456789abcdef\n")
    p = plane.orch("agent", "--state-dir", str(tmp_path / "state"), "--run-dir", str(tmp_path / "run"),
                   "--join", plane.tcp(1), "--token-file", str(old), "--listen", "127.0.0.1:1")
    one_line_error(p, f"the join token in {old}: not a join token")
    assert not (tmp_path / "run").exists()


def test_bad_addresses_and_flags_get_one_line_errors_not_tracebacks(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
    env["ORCH_CLUSTER_RUN_DIR"] = "/nonexistent/orch-run"
    cases = [
        (["controlplane", "--etcd", "bogus", "--listen", "bogus"], "--etcd: etcd endpoint 'bogus'"),
        (["controlplane", "--etcd", "http://127.0.0.1:2379", "--listen", "bogus"],
         "--listen: invalid address 'bogus'"),
        (["controlplane", "--etcd", "http://127.0.0.1:2379", "--listen", "127.0.0.1:99999"],
         "--listen: invalid address '127.0.0.1:99999'"),
        (["controlplane", "--etcd", "http://127.0.0.1:2379", "--cert-days", "0"], "--cert-days 0"),
        (["controlplane", "--etcd", "http://127.0.0.1:2379", "--join", "bogus"],
         "--join: invalid address 'bogus'"),
        (["-C", "127.0.0.1:99999", "services"], "invalid address '127.0.0.1:99999'"),
        (["-C", "nonsense", "services"], "invalid address 'nonsense'"),
        (["-C", "127.0.0.1:1", "--tlscert", str(tmp_path / "cert.pem"), "services"],
         "TLS needs a CA certificate, a client certificate and its key"),
        (["-C", "127.0.0.1:1", "--tlscacert", str(tmp_path / "no-ca.pem"),
          "--tlscert", str(tmp_path / "c.pem"), "--tlskey", str(tmp_path / "k.pem"), "services"],
         f"TLS CA certificate {tmp_path}/no-ca.pem (from --tlscacert): cannot read it"),
        (["agent", "--join", "127.0.0.1:99999", "--listen", "127.0.0.1:7701"],
         "--join: invalid address '127.0.0.1:99999'"),
        (["token", "rotate"], "usage: orch token"),
        (["token", "rotate", "admin"], "usage: orch token"),
    ]
    for args, message in cases:
        p = subprocess.run([sys.executable, "-m", "orch", *args], env=env, text=True, capture_output=True,
                           timeout=60, cwd=tmp_path)
        assert p.returncode in (1, 2), (args, p.stderr)
        assert p.stderr.startswith("orch: error: ") and message in p.stderr, (args, p.stderr)
        assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_the_cli_fails_over_to_a_replica_that_answers(plane: Plane) -> None:
    """Last: it kills the first replica."""
    env = {"ORCH_CERT_PATH": str(plane.alice())}
    dead = f"127.0.0.1:{free_ports(1)[0]}"  # nothing listens there
    p = plane.orch("-C", f"{dead},{plane.tcp(1)}", "services", env=env)
    assert p.returncode == 0, p.stderr
    p = plane.orch("-C", f"unix://{plane.tmp}/gone.sock,{plane.tcp(1)}", "nodes", env=env)
    assert p.returncode == 0, p.stderr
    # The first replica dies: the same endpoint list still works.
    first = plane.procs[0]
    first.send_signal(signal.SIGKILL)
    first.wait()
    p = plane.orch("-C", f"{plane.tcp(0)},{plane.tcp(1)}", "services", env=env)
    assert p.returncode == 0, p.stderr
    p = plane.orch("-C", plane.tcp(0), "services", env=env)
    one_line_error(p, "cannot reach the control plane")
