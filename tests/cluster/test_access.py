"""Who may drive the control plane: root on its host through the root-only
unix socket, and CLIs over TCP that present the admin token; nobody else.
Real etcd and two real control-plane replicas (no nodes needed), the real
CLI, and an unprivileged user (uid 65534) for the refusals."""

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

from common.auth import write_token
from controlplane.etcd import EmbeddedEtcd
from orch.pids import wait_exit
from tests.cluster.conftest import wait_for

NOBODY = 65534
ROOT = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = "/usr/bin/python3"


@dataclass
class Plane:
    tmp: Path
    etcd: EmbeddedEtcd
    ports: list[int]
    sockets: list[str]
    admin_token: str
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def tcp(self, i: int) -> str:
        return f"127.0.0.1:{self.ports[i]}"

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


def _free_ports(n: int) -> list[int]:
    import socket

    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    if os.geteuid() != 0 or not os.access(SYSTEM_PYTHON, os.X_OK):
        pytest.skip("needs root, and a system python3 for the unprivileged user")
    tmp = tmp_path_factory.mktemp("access")
    etcd = EmbeddedEtcd(tmp / "etcd")
    etcd.start()
    ports = _free_ports(2)
    run = Path(f"/run/orch-acc-{os.getpid()}")
    sockets = [str(run / f"cp{i + 1}.sock") for i in range(2)]
    admin = write_token(str(tmp / "state" / "admin-token"))
    join = tmp / "state" / "join-token"
    write_token(str(join))
    p = Plane(tmp, etcd, ports, sockets, admin)
    try:
        for i in range(2):
            log = open(tmp / f"cp{i + 1}.log", "wb")  # noqa: SIM115 (closed with the process)
            p.procs.append(subprocess.Popen(
                [sys.executable, "-m", "orch", "controlplane", "--etcd", etcd.endpoint,
                 "--listen", p.tcp(i), "--socket", sockets[i], "--id", f"cp{i + 1}",
                 "--token-file", str(join), "--admin-token-file", str(tmp / "state" / "admin-token"),
                 "--state-dir", str(tmp / f"cp{i + 1}")], stdout=log, stderr=log))
            log.close()
        for sock in sockets:
            wait_for(lambda s=sock: os.path.exists(s), timeout=30)  # type: ignore[misc]
        yield p
    finally:
        for proc in p.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                if not wait_exit(proc.pid, 15):
                    proc.kill()
            proc.wait()
        etcd.stop()
        subprocess.run(["rm", "-rf", str(run)], check=False)


def test_the_local_socket_is_root_only_and_needs_no_token(plane: Plane) -> None:
    mode = os.stat(plane.sockets[0]).st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) & 0o077 == 0
    p = plane.orch("-C", f"unix://{plane.sockets[0]}", "services")
    assert p.returncode == 0, p.stderr
    p = plane.orch("-C", f"unix://{plane.sockets[0]}", "services", user=NOBODY)
    assert p.returncode == 1
    assert "permission denied" in p.stderr and "Traceback" not in p.stderr
    assert p.stdout == ""


def test_tcp_needs_the_admin_token(plane: Plane) -> None:
    p = plane.orch("-C", plane.tcp(0), "services")
    assert p.returncode == 1
    assert "admin token" in p.stderr and "Traceback" not in p.stderr and p.stdout == ""
    p = plane.orch("-C", plane.tcp(0), "services", env={"ORCH_ADMIN_TOKEN": "not-it"})
    assert p.returncode == 1 and "admin token" in p.stderr
    p = plane.orch("-C", plane.tcp(0), "services", env={"ORCH_ADMIN_TOKEN": plane.admin_token})
    assert p.returncode == 0, p.stderr
    token_file = str(plane.tmp / "state" / "admin-token")
    p = plane.orch("-C", plane.tcp(0), "nodes", env={"ORCH_ADMIN_TOKEN_FILE": token_file})
    assert p.returncode == 0, p.stderr


def test_an_unprivileged_user_gets_a_permission_error_not_data(plane: Plane) -> None:
    # Over TCP, without the token (the file is root's and 0600).
    p = plane.orch("-C", plane.tcp(0), "services", user=NOBODY,
                   env={"ORCH_ADMIN_TOKEN_FILE": str(plane.tmp / "state" / "admin-token")})
    assert p.returncode == 1 and p.stdout == ""
    assert "cannot read the token file" in p.stderr and "Permission denied" in p.stderr
    p = plane.orch("-C", plane.tcp(0), "exec", "web.1", "id", user=NOBODY)
    assert p.returncode == 1 and p.stdout == "" and "admin token" in p.stderr


def test_secrets_are_refused_in_argv(plane: Plane) -> None:
    p = plane.orch("controlplane", "--etcd", plane.etcd.endpoint, "--token", "abc")
    assert p.returncode == 1 and "--token-file" in p.stderr
    p = plane.orch("agent", "--join", plane.tcp(0), "--token", "abc", "--listen", "127.0.0.1:1")
    assert p.returncode == 1 and "--token-file" in p.stderr
    for proc in plane.procs:
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
        assert plane.admin_token.encode() not in cmdline


def test_the_cli_fails_over_to_a_replica_that_answers(plane: Plane) -> None:
    env = {"ORCH_ADMIN_TOKEN": plane.admin_token}
    dead = f"127.0.0.1:{_free_ports(1)[0]}"  # nothing listens there
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
    assert p.returncode == 1 and "cannot reach the control plane" in p.stderr


def test_an_agent_with_a_wrong_token_exits_with_the_reason(plane: Plane, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong-token"
    write_token(str(wrong))
    state, run = tmp_path / "state", Path(f"/run/orch-acc-agent-{os.getpid()}")
    tag = f"{os.getpid() % 10000:04d}"
    common = ["--state-dir", str(state), "--run-dir", str(run), "--bridge", f"orwt{tag}",
              "--subnet", "10.231.7.0/24"]
    try:
        p = subprocess.run([sys.executable, "-m", "orch", "agent", *common, "--join", plane.tcp(1),
                            "--token-file", str(wrong), "--listen", f"127.0.0.1:{_free_ports(1)[0]}",
                            "--name", "intruder"], text=True, capture_output=True, timeout=60)
        assert p.returncode == 1
        last = p.stderr.strip().splitlines()[-1]
        assert last.startswith("orch: error: the control plane at") and "wrong join token" in last, last
        assert "Traceback" not in p.stderr
        nodes = plane.orch("-C", f"unix://{plane.sockets[1]}", "nodes", "-o", "json")
        assert "intruder" not in nodes.stdout
    finally:
        subprocess.run([sys.executable, "-m", "orch", "agent", "stop", "--all", *common[:4]],
                       capture_output=True, timeout=120)
        subprocess.run(["rm", "-rf", str(run)], check=False)


def test_bad_addresses_get_one_line_errors_not_tracebacks(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
    cases = [
        (["controlplane", "--etcd", "bogus", "--listen", "bogus"], "--etcd: etcd endpoint 'bogus'"),
        (["controlplane", "--etcd", "http://127.0.0.1:2379", "--listen", "bogus"],
         "--listen: invalid address 'bogus'"),
        (["controlplane", "--etcd", "http://127.0.0.1:2379", "--listen", "127.0.0.1:99999"],
         "--listen: invalid address '127.0.0.1:99999'"),
        (["-C", "127.0.0.1:99999", "services"], "invalid address '127.0.0.1:99999'"),
        (["-C", "nonsense", "services"], "invalid address 'nonsense'"),
        (["agent", "--join", "127.0.0.1:99999", "--listen", "127.0.0.1:7701"],
         "--join: invalid address '127.0.0.1:99999'"),
    ]
    for args, message in cases:
        p = subprocess.run([sys.executable, "-m", "orch", *args], env=env, text=True, capture_output=True,
                           timeout=60, cwd=tmp_path)
        assert p.returncode in (1, 2), (args, p.stderr)
        assert p.stderr.startswith("orch: error: ") and message in p.stderr, (args, p.stderr)
        assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
