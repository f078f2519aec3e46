"""The local cluster's lifecycle: `orch up` refuses flags that cannot work
before it creates anything, a failed `up` removes what it made, `orch down
--purge` leaves no process, mount, cgroup, namespace or link whatever state
the nodes are in (a killed supervisor, a restarted agent, a hung node) and
says what it could not remove; a node's agent restarts (`orch agent restart`
or `ip netns exec`), keeps its certificate and adopts its containers; the
join tokens, the CA key and every private key stay in 0600 files, a token
file or the admin key made wider is made 0600 again, a CA key made wider
is refused.

Clusters of their own, with private names, ports and subnets (10.218.x.0/24),
so these run beside the session's cluster; the checks of what is left read
the kernel's tables directly, not through the code under test."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.cluster.conftest import LocalCluster, wait_for
from tests.cluster.test_cluster import looping

HEX64 = re.compile(r"[0-9a-f]{64}")
TOKEN_FILES = ("node-token", "controlplane-token")  # in <state>/pki


class Cluster(LocalCluster):
    printed = ""  # what `up` printed

    def up_args(self, nodes: int = 2, controlplanes: int = 1,
                flags: dict[str, str] | None = None) -> list[str]:
        """`orch up` with this cluster's names; ``flags`` ({"--port": "1"}) replace or add."""
        args = {"--nodes": str(nodes), "--controlplanes": str(controlplanes), "--state-dir": str(self.state),
                "--run-dir": str(self.run), "--bridge": self.bridge, "--prefix": self.prefix,
                "--subnet": self.subnet, "--port": str(self.port), **(flags or {})}
        return ["up", *[word for pair in args.items() for word in pair]]

    def up(self, nodes: int = 2, controlplanes: int = 1) -> str:  # type: ignore[override]
        return self.orch(*self.up_args(nodes, controlplanes)).stdout

    def node_run(self, name: str) -> Path:
        return self.run / "nodes" / name

    def container_ids(self) -> set[str]:
        """Every container directory of every node (before `down` deletes them)."""
        return {p.name for p in self.state.glob("nodes/*/containers/*") if HEX64.fullmatch(p.name)}


def _new(tmp: Path, tag: str = "") -> Cluster:
    tag = tag or secrets.token_hex(2)
    third = 100 + int(tag[:2], 16) % 100
    c = Cluster(state=tmp / f"state-{tag}", run=Path(f"/run/orch-lt-{tag}"), bridge=f"orchl{tag}",
                prefix=f"ol{tag}-", subnet=f"10.218.{third}.0/24", port=20000 + int(tag, 16) % 900,
                env={**os.environ, "ORCH_CLUSTER_RUN_DIR": f"/run/orch-lt-{tag}"})
    c.env.pop("ORCH_HOST", None)
    c.env.pop("ORCH_CLUSTER", None)
    return c


@pytest.fixture
def clusters(tmp_path: Path) -> Iterator[Callable[[], Cluster]]:
    """Make clusters on demand; whatever a test leaves is removed after it."""
    if os.geteuid() != 0:
        pytest.skip("a local cluster needs root")
    made: list[Cluster] = []
    tags: set[str] = set()

    def clashes(tag: str) -> bool:
        """Another cluster of this test has the subnet, or ports near enough
        that one's API, join (+50) or metrics (+100) port is another's."""
        port = _new(tmp_path, tag).port
        return tag[:2] in tags or any(abs(port - c.port) <= 110 for c in made)

    def make() -> Cluster:
        tag = secrets.token_hex(2)
        while clashes(tag):
            tag = secrets.token_hex(2)
        tags.add(tag[:2])
        made.append(_new(tmp_path, tag))
        return made[-1]

    yield make
    for c in made:
        c.down(purge=True)
        _force_clean(c)


def _force_clean(c: Cluster) -> None:
    """Last resort after a failed test: nothing of the cluster may stay."""
    from orch.cluster.sweep import Target, sweep

    subprocess.run(["chattr", "-R", "-i", str(c.state)], capture_output=True)
    target = Target(dirs=[str(c.state), str(c.run)], netns=_netns(c))
    target.add_containers(str(c.state))
    sweep(target)
    for name in _netns(c):
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
    for link in _links(c):
        subprocess.run(["ip", "link", "del", link], capture_output=True)
    subprocess.run(["rm", "-rf", "--one-file-system", str(c.state), str(c.run)], check=False)


# ---- what is left, read from the kernel -----------------------------------------------

def _cmdlines() -> dict[int, str]:
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                out[int(entry)] = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(
                    errors="replace")
            except OSError:
                continue
    return out


def _netns(c: Cluster) -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(c.prefix)]


def _links(c: Cluster) -> list[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    names = [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()]
    return [n for n in names if n == c.bridge or n.startswith(c.bridge[:8] + "n")]


def _cgroup_mounts() -> list[str]:
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[fields.index("-") + 1] in ("cgroup", "cgroup2"):
            out.append(fields[4])
    return out


def leftovers(c: Cluster, ids: set[str], purged: bool = True) -> list[str]:
    """Everything of the cluster still on this machine, one line each."""
    paths = (str(c.state), str(c.run))
    me = os.getpid()
    out = [f"process {pid}: {cmd[:120]}" for pid, cmd in _cmdlines().items()
           if pid != me and any(p in cmd for p in paths) and _running(pid)]
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                groups = Path(f"/proc/{pid}/cgroup").read_text()
            except OSError:
                continue
            if any(f"/orch/{i}" in groups for i in ids) and _running(int(pid)):
                out.append(f"container process {pid}")
    out += [f"mount {line.split()[4]}" for line in Path("/proc/self/mountinfo").read_text().splitlines()
            if any(line.split()[4].startswith(p) for p in paths)]
    out += [f"cgroup {mnt}/orch/{i}" for mnt in _cgroup_mounts() for i in ids
            if os.path.isdir(f"{mnt}/orch/{i}")]
    out += [f"netns {n}" for n in _netns(c)] + [f"link {n}" for n in _links(c)]
    if c.run.exists():
        out.append(f"run dir {c.run}: {sorted(os.listdir(c.run))}")
    if purged and c.state.exists():
        out.append(f"state dir {c.state}")
    return out


def _running(pid: int) -> bool:
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return data[data.rindex(b")") + 2:][:1] != b"Z"


def _pid(path: Path) -> int:
    return int(path.read_text().strip())


def _wait_gone(pid: int, timeout: float = 30.0) -> None:
    wait_for(lambda: not _running(pid), timeout=timeout, interval=0.05)


def _deploy(c: Cluster, tmp: Path, name: str, replicas: int) -> set[str]:
    c.orch("deploy", "-f", looping(tmp, name, replicas))
    return {t["id"] for t in c.running(name)}


# ---- up's flags --------------------------------------------------------------------------

@pytest.mark.parametrize("flags, named", [
    (["--nodes", "0"], "--nodes 0"),
    (["--controlplanes", "0"], "--controlplanes 0"),
    (["--port", "99999"], "--port 99999"),
    (["--port", "65535", "--controlplanes", "2"], "--port 65535"),
    (["--subnet", "bogus"], "--subnet bogus"),
    (["--subnet", "10.218.1.0/30"], "--subnet 10.218.1.0/30"),
    (["--registry", "0"], "--registry 0"),
    (["--registry", "65536"], "--registry 65536"),
    (["--bridge", "orchlifecycle0000"], "--bridge"),
    (["--prefix", "lifecycle-tests-"], "--prefix"),
])
def test_a_bad_flag_is_refused_before_anything_is_created(clusters: Callable[[], Cluster],
                                                          flags: list[str], named: str) -> None:
    c = clusters()
    p = c.orch(*c.up_args(2, flags=dict(zip(flags[::2], flags[1::2], strict=True))), check=False)
    assert p.returncode != 0
    assert p.stderr.startswith("orch: error: ") and named in p.stderr and p.stderr.count("\n") == 1
    assert "Traceback" not in p.stderr
    assert leftovers(c, set()) == []


def test_what_the_host_already_uses_is_refused(clusters: Callable[[], Cluster]) -> None:
    """Another cluster's subnet, port, bridge or namespaces, or a port in use:
    refused at once, the other cluster untouched."""
    a, b = clusters(), clusters()
    a.up(nodes=2)
    cases = [("--subnet", a.subnet, f"overlaps {a.subnet.replace('.0/24', '.1/24')}"),
             ("--port", str(a.port), f"port {a.port} is in use"),
             ("--bridge", a.bridge, f"--bridge {a.bridge}"),
             ("--prefix", a.prefix, f"network namespace {a.prefix}n1 is in use")]
    for flag, value, words in cases:
        p = b.orch(*b.up_args(2, flags={flag: value}), check=False)
        assert p.returncode == 1 and words in p.stderr and p.stderr.count("\n") == 1, p.stderr
        assert leftovers(b, set()) == []
    with socket.socket() as s:  # not a cluster's: any listener
        s.bind(("0.0.0.0", b.port + 1))
        s.listen()
        p = b.orch(*b.up_args(nodes=2, controlplanes=2), check=False)
    assert p.returncode == 1 and f"--port: port {b.port + 1} is in use" in p.stderr
    assert leftovers(b, set()) == []
    assert {n["state"] for n in a.nodes()} == {"ready"}


# ---- a failed up ----------------------------------------------------------------------------

def test_a_failed_up_removes_everything_it_made(clusters: Callable[[], Cluster]) -> None:
    """The control plane cannot bind its socket (a directory is in the way):
    up fails after etcd, the network and the agents have started."""
    c = clusters()
    (c.run / "cp1.sock").mkdir(parents=True)
    p = c.orch(*c.up_args(nodes=2), check=False)
    assert p.returncode == 1 and "the control plane exited" in p.stderr and "Traceback" not in p.stderr
    assert p.stderr.count("\n") == 1
    assert sorted(os.listdir(c.run)) == ["cp1.sock"]  # the run dir was there before
    (c.run / "cp1.sock").rmdir()
    c.run.rmdir()
    assert leftovers(c, set()) == []
    p = c.orch("down", "--purge", "--run-dir", str(c.run), "--state-dir", str(c.state))
    assert p.stdout.strip() == "no cluster was up"


def test_a_failed_up_keeps_the_state_it_found(clusters: Callable[[], Cluster]) -> None:
    """Kept state up did not make stays; what up added goes."""
    c = clusters()
    c.state.mkdir()
    (c.state / "controlplane").write_text("not a directory")  # the control plane fails on it
    (c.state / "notes").write_text("mine")
    p = c.orch(*c.up_args(nodes=2), check=False)
    assert p.returncode == 1 and "the control plane exited" in p.stderr
    assert sorted(os.listdir(c.state)) == ["controlplane", "notes"]
    assert leftovers(c, set(), purged=False) == []


# ---- down --------------------------------------------------------------------------------------

def _down_purge(c: Cluster) -> subprocess.CompletedProcess[str]:
    return c.orch("down", "--purge", "--run-dir", str(c.run), timeout=180)


def test_down_purge_after_a_supervisor_kill_leaves_nothing(clusters: Callable[[], Cluster],
                                                           tmp_path: Path) -> None:
    c = clusters()
    c.up(nodes=2)
    _deploy(c, tmp_path, "orphans", 4)
    ids = c.container_ids()
    os.kill(_pid(c.node_run("n2") / "supervisor.pid"), signal.SIGKILL)
    p = _down_purge(c)
    assert p.stdout.startswith("cluster down and purged: deleted ")
    assert leftovers(c, ids) == []


def test_down_purge_after_a_supervisor_kill_and_an_agent_restart(clusters: Callable[[], Cluster],
                                                                 tmp_path: Path) -> None:
    c = clusters()
    c.up(nodes=2)
    _deploy(c, tmp_path, "again", 4)
    supervisor = _pid(c.node_run("n2") / "supervisor.pid")
    os.kill(supervisor, signal.SIGKILL)
    _wait_gone(supervisor)
    c.orch("agent", "restart", "--node", "n2", "--run-dir", str(c.run))
    wait_for(lambda: {n["name"]: n["state"] for n in c.nodes()}["n2"] == "ready")
    wait_for(lambda: len(c.running("again")) == 4)
    ids = c.container_ids()
    _down_purge(c)
    assert leftovers(c, ids) == []


def test_down_purge_with_a_hung_node_kills_it_and_leaves_nothing(clusters: Callable[[], Cluster],
                                                                 tmp_path: Path) -> None:
    """n2's agent and supervisor are stopped (SIGSTOP): they answer nothing,
    so nothing of that node stops gracefully. down must still clear it."""
    c = clusters()
    c.up(nodes=2)
    _deploy(c, tmp_path, "hung", 4)
    ids = c.container_ids()
    for name in ("agent.lock", "supervisor.pid"):
        os.kill(_pid(c.node_run("n2") / name), signal.SIGSTOP)
    _down_purge(c)
    assert leftovers(c, ids) == []


def test_down_says_what_it_could_not_remove(clusters: Callable[[], Cluster]) -> None:
    """An immutable file in the state dir: purge fails with a list and exit
    1; once it is mutable again, purging the kept state finishes the job."""
    c = clusters()
    c.up(nodes=1)
    stuck = c.state / "stuck"
    stuck.write_text("x")
    subprocess.run(["chattr", "+i", str(stuck)], check=True)
    p = c.orch("down", "--purge", "--run-dir", str(c.run), check=False)
    subprocess.run(["chattr", "-i", str(stuck)], check=True)
    assert p.returncode == 1
    assert f"directory {c.state}: not fully deleted" in p.stderr
    assert "1 thing(s) of the cluster remain" in p.stderr
    assert leftovers(c, set(), purged=False) == []
    p = c.orch("down", "--purge", "--run-dir", str(c.run), "--state-dir", str(c.state))
    assert p.stdout.startswith(f"no cluster was up; purged its kept state: deleted {c.state} (")
    assert leftovers(c, set()) == []


def test_down_keeps_the_state_and_purge_removes_it_later(clusters: Callable[[], Cluster],
                                                         tmp_path: Path) -> None:
    c = clusters()
    c.up(nodes=2)
    _deploy(c, tmp_path, "kept", 2)
    ids = c.container_ids()
    pki_dir = c.state / "pki"
    tokens = {name: (pki_dir / name).read_text() for name in TOKEN_FILES}
    ca = (pki_dir / "ca.crt").read_bytes()
    p = c.orch("down", "--run-dir", str(c.run))
    assert p.stdout.strip() == f"cluster down (state kept in {c.state}; --purge deletes it)"
    assert leftovers(c, ids, purged=False) == []
    # The CA key made readable by others: refused, one line saying what to do; nothing started.
    (pki_dir / "ca.key").chmod(0o640)
    p = c.orch(*c.up_args(nodes=2), check=False)
    assert p.returncode == 1 and p.stderr.count("\n") == 1 and "Traceback" not in p.stderr, p.stderr
    assert f"the CA key {pki_dir}/ca.key is readable by others (mode 640): run chmod 600" in p.stderr
    assert leftovers(c, ids, purged=False) == []
    assert (pki_dir / "ca.crt").read_bytes() == ca  # the kept state is untouched
    (pki_dir / "ca.key").chmod(0o600)
    # A token file or the admin key made wider is made 0600 again, and kept; so is the CA.
    widened = [*TOKEN_FILES, "admin/key.pem"]
    tokens["admin/key.pem"] = (pki_dir / "admin" / "key.pem").read_text()
    for name in widened:
        (pki_dir / name).chmod(0o644)
    c.up(nodes=2)
    for name in widened:
        assert stat.S_IMODE((pki_dir / name).stat().st_mode) == 0o600, name
        assert (pki_dir / name).read_text() == tokens[name], name
    assert (pki_dir / "ca.crt").read_bytes() == ca
    wait_for(lambda: len(c.running("kept")) == 2)
    c.orch("down", "--run-dir", str(c.run))
    # Not a cluster's state: refused, untouched.
    other = tmp_path / "other"
    other.mkdir()
    (other / "precious").write_text("x")
    p = c.orch("down", "--purge", "--run-dir", str(c.run), "--state-dir", str(other), check=False)
    assert p.returncode == 1 and "does not look like the state of an orch cluster" in p.stderr
    assert (other / "precious").exists()
    p = c.orch("down", "--purge", "--run-dir", str(c.run), "--state-dir", str(c.state))
    assert p.stdout.startswith(f"no cluster was up; purged its kept state: deleted {c.state} (")
    assert leftovers(c, ids) == []


def test_down_stops_the_monitoring_prometheus(clusters: Callable[[], Cluster]) -> None:
    c = clusters()
    port = str(c.port + 90)
    printed = c.orch(*c.up_args(nodes=1, flags={"--monitoring": port})).stdout
    assert f"prometheus: http://127.0.0.1:{port}" in printed
    assert any("prometheus" in cmd and str(c.state) in cmd for cmd in _cmdlines().values())
    c.orch("down", "--run-dir", str(c.run), "--purge")
    assert leftovers(c, set()) == []  # Prometheus (its argv names the state dir) is gone too


# ---- restarting a node's agent; tokens ---------------------------------------------------------

@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One cluster for the tests that keep it running."""
    if os.geteuid() != 0:
        pytest.skip("a local cluster needs root")
    c = _new(tmp_path_factory.mktemp("lifecycle"))
    try:
        c.printed = c.up(nodes=2, controlplanes=2)
        yield c
    finally:
        c.down(purge=True)
        _force_clean(c)


def _on_n2(c: Cluster, service: str) -> set[str]:
    return {t["id"] for t in c.running(service) if t["node"] == "n2"}


def _container_pids(c: Cluster, node: str, service: str) -> set[int]:
    """The PID 1s of ``service``'s containers on ``node`` (a task's container
    is named SERVICE.SLOT.ID; an earlier test's may still be stopping)."""
    env = {**c.env, "ORCH_HOST": f"unix://{c.node_run(node)}/agent.sock"}
    out = subprocess.run([sys.executable, "-m", "orch", "ps", "-o", "json"], env=env, text=True,
                         capture_output=True, check=True).stdout
    return {ct["pid"] for ct in json.loads(out) if ct.get("pid") and ct["name"].startswith(f"{service}.")}


def _n2_ready(c: Cluster) -> bool:
    return {n["name"]: n["state"] for n in c.nodes()}.get("n2") == "ready"


def test_orch_agent_restart_brings_the_node_back_with_its_containers(running: Cluster,
                                                                     tmp_path: Path) -> None:
    c = running
    _deploy(c, tmp_path, "adopted", 4)
    tasks, pids = _on_n2(c, "adopted"), _container_pids(c, "n2", "adopted")
    assert tasks and pids
    before = _pid(c.node_run("n2") / "agent.lock")
    p = c.orch("agent", "restart", "--node", "n2", "--run-dir", str(c.run))
    assert p.stdout.strip() == f"agent n2 restarted in network namespace {c.prefix}n2"
    _wait_gone(before)
    wait_for(lambda: _n2_ready(c))
    assert _pid(c.node_run("n2") / "agent.lock") != before
    assert _on_n2(c, "adopted") == tasks
    assert _container_pids(c, "n2", "adopted") == pids
    p = c.orch("agent", "restart", "--node", "n9", "--run-dir", str(c.run), check=False)
    assert p.returncode == 1
    assert p.stderr == f"orch: error: no node 'n9' in the cluster of {c.run} (its nodes: n1, n2)\n"
    p = c.orch("agent", "restart", check=False)
    assert p.returncode == 1 and "restart needs --node NAME" in p.stderr
    c.orch("rm", "adopted")


def test_an_agent_restarted_with_ip_netns_exec_uses_the_host_mounts(running: Cluster,
                                                                    tmp_path: Path) -> None:
    """`ip netns exec` gives the agent its own /sys: it goes back to the
    host's mount namespace, keeps the node's network namespace, and adopts
    the node's containers."""
    from orch.cluster.local import ClusterRecord

    c = running
    rec = ClusterRecord.load(str(c.run))
    node = next(n for n in rec.nodes if n.name == "n2")
    _deploy(c, tmp_path, "netnsexec", 4)
    tasks, pids = _on_n2(c, "netnsexec"), _container_pids(c, "n2", "netnsexec")
    cert = (Path(node.state_dir) / "pki" / "node.crt").read_bytes()
    ids = {n["name"]: n["id"] for n in c.nodes()}
    old = _pid(c.node_run("n2") / "agent.lock")
    os.kill(old, signal.SIGTERM)
    _wait_gone(old)
    p = subprocess.run(["ip", "netns", "exec", node.netns, sys.executable, "-m", "orch", "agent", "--detach",
                        "--state-dir", node.state_dir, "--run-dir", node.run_dir, "--bridge", "orch0",
                        "--subnet", "10.88.2.0/24", "--join", rec.join, "--token-file", rec.token_file,
                        "--listen", f"{node.address}:7701", "--name", "n2", "--label", "node=n2"],
                       env=c.env, text=True, capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    agent = _pid(c.node_run("n2") / "agent.lock")
    assert os.stat(f"/proc/{agent}/ns/mnt").st_ino == os.stat("/proc/self/ns/mnt").st_ino  # the host's
    assert os.stat(f"/proc/{agent}/ns/net").st_ino == os.stat(f"/run/netns/{node.netns}").st_ino
    wait_for(lambda: _n2_ready(c))
    assert _on_n2(c, "netnsexec") == tasks
    assert _container_pids(c, "n2", "netnsexec") == pids
    # It kept its certificate (the token file was only read): the same node.
    assert (Path(node.state_dir) / "pki" / "node.crt").read_bytes() == cert
    assert {n["name"]: n["id"] for n in c.nodes()} == ids
    c.orch("rm", "netnsexec")


def test_secrets_are_in_private_files_and_never_in_argv(running: Cluster) -> None:
    """The join tokens, the CA key, the etcd members' keys, the admin
    user's certificate and each node's key: 0600 files (in 0700 dirs); the
    record names their paths and holds none of them; no process has a
    token or a key in its argv."""
    from common import pki

    c = running
    record = c.run / "cluster.json"
    pki_dir = c.state / "pki"
    data = json.loads(record.read_text())
    admin = pki_dir / "admin"
    nodes = [Path(n["state_dir"]) / "pki" for n in data["nodes"]]
    private = [record, pki_dir / "ca.key", *(pki_dir / name for name in TOKEN_FILES),
               *(admin / name for name in ("ca.pem", "cert.pem", "key.pem")),
               *(pki_dir / f"etcd-{m['name']}.key" for m in data["etcd_members"]),
               *(d / "node.key" for d in nodes)]
    for path in private:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for directory in (pki_dir, admin, *nodes):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
    ca = (pki_dir / "ca.crt").read_bytes()
    tokens = [(pki_dir / name).read_text().strip() for name in TOKEN_FILES]
    assert all(pki.token_pins(t, ca) for t in tokens) and tokens[0] != tokens[1]
    # The keys' base64 bodies: what a leak would show.
    keys = [b"".join(p.read_bytes().splitlines()[1:-1]).decode() for p in private if p.name.endswith("key")
            or p.name == "key.pem"]
    assert len(keys) == 2 + len(data["etcd_members"]) + len(nodes)
    text = record.read_text()
    assert "token" not in data and "admin_token_file" not in data
    assert not any(t in text for t in tokens) and not any(k in text for k in keys)
    assert data["token_file"] == str(pki_dir / "node-token")
    assert data["pki_dir"] == str(pki_dir) and data["cert_path"] == str(admin)
    assert data["sockets"] == [str(c.run / "cp1.sock"), str(c.run / "cp2.sock")]
    assert all(stat.S_ISSOCK(os.stat(s).st_mode) for s in data["sockets"])
    leaks = [pid for pid, cmd in _cmdlines().items() if any(t in cmd for t in [*tokens, *keys])]
    assert leaks == []
    hint = next(line for line in c.printed.splitlines() if line.startswith("join another host"))
    assert hint.endswith(f"--token-file {c.state}/pki/node-token --listen HOST_ADDR:7701")
