"""``orch up``: a whole cluster on this machine; restarting one of its parts.

``up`` checks its flags and the host (ports, interfaces, namespaces) before
it creates anything; then starts etcd (``controlplane.etcd``, with its
compaction and quota; one member or several, ``--etcd-members``, their data
under ``<state>/etcd``, daemons ``down`` stops; a kept state's members start
again as they were), the control-plane replicas (each given every etcd
member) and N agents, each agent in its
own network namespace when N > 1, imports the busybox image on every node,
and returns once every node is ready. Everything it starts is recorded in
``<run-dir>/cluster.json`` (``orch.cluster.record``). Before etcd starts,
``up`` makes the cluster CA in ``<state>/pki`` (``controlplane.trust``): etcd
serves mutual TLS with member certificates from it, the control planes sign
the nodes' certificates with it, and the CLI over TCP uses the admin user's
certificate in ``<state>/pki/admin``. The node join token is a 0600 file the
control planes write there, passed by path, never in argv. If
``up`` fails it takes down what it started and deletes the state it did not
find there.

``restart_agent`` and ``restart_controlplane`` start one part again as
``up`` did. ``orch down`` is ``orch.cluster.down``.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from orch.cluster import sweep
from orch.cluster.down import DownReport, down, rm_tree
from orch.cluster.flags import FlagError, check_up_flags, etcd_ports
from orch.cluster.hostnet import HostNet, HostNetError, netns_path
from orch.cluster.record import (
    AGENT_PORT,
    CP_PORT,
    DEFAULT_RUN,
    DEFAULT_STATE,
    NODE_BRIDGE,
    ClusterRecord,
    EtcdMember,
    EtcdMembership,
    NodeRecord,
    UpError,
    agent_pid,
    cp_state,
    etcd_members,
    kept_membership,
    load_record,
    new_membership,
    node_subnet,
    read_pid,
    set_etcd_members,
)
from orch.pids import alive

if TYPE_CHECKING:
    from controlplane.etcd import EmbeddedEtcd

__all__ = ["DEFAULT_RUN", "DEFAULT_STATE", "ClusterRecord", "DownReport", "NodeRecord", "UpError",
           "agent_pid", "down", "restart_agent", "restart_controlplane", "up"]

ROOT = Path(__file__).resolve().parents[2]
TERM_TIMEOUT = 10.0  # a control plane: SIGTERM, then SIGKILL
ETCD_START_TIMEOUT = 20.0  # every member answering (several elect a leader first)
METRICS_PORT_OFFSET = 100  # a control plane's metrics port: its API port + this, on loopback
JOIN_PORT_OFFSET = 50  # its join port (common.identity, which a test holds to this)


def netns_exec(netns: str, cmd: list[str]) -> list[str]:
    """Run ``cmd`` in a node's network namespace only. (``ip netns exec`` would
    also remount /sys, hiding the host's cgroup hierarchies from the agent.)"""
    return ["nsenter", f"--net={netns_path(netns)}", "--", *cmd]


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
            raise UpError(f"{what} exited with code {proc.returncode}" + _tail(log))
        if check():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise UpError(f"{what} not ready within {timeout:.0f} s" + _tail(log))


def _tail(log: str) -> str:
    """": <the log's last line>", for an error: a failed ``up`` deletes the
    logs it wrote along with the rest of its state."""
    try:
        lines = [ln.strip() for ln in Path(log).read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return f": {lines[-1][:300]}" if lines else ""


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


# ---- the parts ---------------------------------------------------------------------

def plan_etcd(state_dir: str, port: int, members: int | None) -> EtcdMembership:
    """The etcd members ``up`` starts: those the kept state holds data for
    (``members``, if given, must be their count), or ``members`` (default 1)
    new ones on the ports ``orch.cluster.flags.etcd_ports`` gives."""
    import secrets

    kept = kept_membership(state_dir)
    if kept is None:
        count = 1 if members is None else members
        return new_membership(state_dir, etcd_ports(port, count), f"orch-{secrets.token_hex(8)}")
    if members is not None and members != len(kept.members):
        raise UpError(f"--etcd-members {members}: the state in {state_dir} holds an etcd of "
                      f"{len(kept.members)} member(s); omit --etcd-members to start it again, or "
                      "start afresh with orch down --purge")
    return kept


def etcd_process(rec: ClusterRecord, member: EtcdMember, token: str = "", new: bool = False) -> EmbeddedEtcd:
    """The etcd of ``member`` (``controlplane.etcd``, with its compaction and
    quota), on its recorded ports: a lone member without them takes free
    ones. Members of several know each other by their peer addresses; a
    ``new`` one bootstraps the cluster with ``token``, others rejoin it
    (etcd reads neither once its data dir holds data)."""
    from controlplane.etcd import EmbeddedEtcd
    from controlplane.trust import etcd_tls, load_ca

    members = etcd_members(rec)
    several = len(members) > 1
    ca = load_ca(rec.pki_dir)
    tls = etcd_tls(ca, rec.pki_dir, f"etcd-{member.name}", ["127.0.0.1"]) if ca is not None else None
    return EmbeddedEtcd(member.data_dir, _url_port(member.client), _url_port(member.peer), member.name,
                        log_path=f"{member.data_dir}.log",
                        peers={m.name: _https(m.peer) if tls else m.peer for m in members} if several
                        else None,
                        cluster_state="new" if new or not several else "existing", cluster_token=token,
                        tls=tls)


def _https(url: str) -> str:
    return "https://" + url.split("://", 1)[-1] if url else url


def _url_port(url: str) -> int:
    return int(url.rsplit(":", 1)[1]) if url else 0


def spawn_etcd(rec: ClusterRecord, membership: EtcdMembership) -> list[EmbeddedEtcd]:
    """Start every etcd member as a daemon that outlives ``up``: ``down``
    stops them by the pids recorded here and the data dirs their argv
    names. All at once: a member of several serves only once a majority
    runs. ``wait_etcd`` waits until they serve."""
    membership.save(rec.state_dir)
    set_etcd_members(rec, [dataclasses.replace(m, pid=0) for m in membership.members])
    etcds = [etcd_process(rec, m, membership.token, membership.new) for m in rec.etcd_members]
    for etcd in etcds:
        etcd.spawn()
        note_etcd(rec, etcd)
    return etcds


def note_etcd(rec: ClusterRecord, etcd: EmbeddedEtcd) -> None:
    """Record ``etcd``'s pid and addresses in its member's entry."""
    members = [dataclasses.replace(m, pid=etcd.pid or 0, client=etcd.endpoint, peer=etcd.peer_url,
                                   metrics=etcd.metrics_url)
               if m.name == etcd.name else m for m in etcd_members(rec)]
    set_etcd_members(rec, members)


def wait_etcd(rec: ClusterRecord, etcds: list[EmbeddedEtcd], timeout: float = ETCD_START_TIMEOUT) -> None:
    from controlplane.etcd import EtcdStartError

    deadline = time.monotonic() + timeout
    waiting = ""
    try:
        for etcd in etcds:
            waiting = etcd.name
            # Once it answers: the control planes wait for its leader themselves,
            # and their start overlaps the 1-2 s a restarted etcd takes to elect it.
            etcd.wait_ready(max(1.0, deadline - time.monotonic()), leader=False)
    except EtcdStartError as err:
        what = "etcd" if len(etcd_members(rec)) == 1 else f"etcd member {waiting}"
        raise UpError(f"{what} did not start: {err}")
    finally:  # a port taken meanwhile made a lone etcd start again, on other ports
        for etcd in etcds:
            note_etcd(rec, etcd)
        rec.save()


def metrics_address(listen: list[str]) -> str:
    """A control plane's /metrics and /sd/agents: loopback, its port + METRICS_PORT_OFFSET."""
    return f"127.0.0.1:{int(listen[0].rsplit(':', 1)[1]) + METRICS_PORT_OFFSET}"


def start_controlplane(rec: ClusterRecord, index: int) -> None:
    listen = rec.listens[index]
    log = str(Path(rec.state_dir) / f"controlplane{index + 1}.log")
    etcd = ",".join(m.client for m in etcd_members(rec))  # every member: the store fails over
    proc = _spawn([sys.executable, "-m", "orch", "controlplane", "--etcd", etcd,
                   "--listen", ",".join(listen), "--pki-dir", rec.pki_dir, "--socket", rec.sockets[index],
                   "--id", f"cp{index + 1}", "--state-dir", cp_state(rec),
                   "--metrics-listen", metrics_address(listen)], log)
    while len(rec.controlplane_pids) <= index:
        rec.controlplane_pids.append(0)
    rec.controlplane_pids[index] = proc.pid
    host, port = listen[0].rsplit(":", 1)
    _wait("the control plane", lambda: _port_open(host, int(port)), 30, proc, log)


def start_agent(rec: ClusterRecord, node: NodeRecord, index: int) -> subprocess.Popen[bytes]:
    """``orch agent --detach`` for ``node``, in its namespace; it returns once
    the agent is ready (or failed: its stderr says why)."""
    from registry.transport import INSECURE_ENV

    os.makedirs(node.state_dir, exist_ok=True)
    cmd = [sys.executable, "-m", "orch", "agent", "--detach", "--state-dir", node.state_dir,
           "--run-dir", node.run_dir, "--bridge", NODE_BRIDGE, "--subnet", node_subnet(index),
           "--join", rec.join, "--token-file", rec.token_file,
           "--listen", f"{node.address}:{AGENT_PORT}",
           "--name", node.name, "--label", f"node={node.name}",
           # A node never sends traffic out: names its DNS server does not know fail at once.
           "--dns-upstream", "none",
           # The nodes share this machine's CPUs: each starts as many
           # containers at once as its share is (each start keeps about one busy).
           "--max-starting", str(max(1, len(os.sched_getaffinity(0)) // max(1, len(rec.nodes))))]
    if node.netns:
        cmd = netns_exec(node.netns, cmd)
    env = dict(os.environ)
    if rec.registry:  # plain http to the cluster's registry, also for an agent restarted later
        env[INSECURE_ENV] = ",".join(r for r in {*env.get(INSECURE_ENV, "").split(","), rec.registry} if r)
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)


def restart_agent(run_dir: str, name: str, timeout: float = 30.0) -> NodeRecord:
    """Stop node ``name``'s agent if it runs (its containers keep running),
    then start it again in the node's namespace as ``orch up`` did: it
    reconnects to its supervisor, or starts one, and adopts the containers."""
    rec = load_record(run_dir)
    found = [(i, n) for i, n in enumerate(rec.nodes, 1) if n.name == name]
    if not found:
        raise UpError(f"no node {name!r} in the cluster of {run_dir} "
                      f"(its nodes: {', '.join(n.name for n in rec.nodes)})")
    index, node = found[0]
    if node.netns and not os.path.exists(netns_path(node.netns)):
        raise UpError(f"node {name}'s network namespace {node.netns} is gone; "
                      "bring the cluster down and up again")
    pid = sweep.verified(agent_pid(node), node.run_dir)
    if pid:
        sweep.terminate({pid: node.run_dir}, timeout)
    _settle_supervisor(node, timeout)
    proc = start_agent(rec, node, index)
    _, err = proc.communicate()
    if proc.returncode != 0:
        raise UpError(f"agent {name} failed to start: {err.decode(errors='replace').strip()}")
    return node


def _settle_supervisor(node: NodeRecord, timeout: float) -> None:
    """Wait while a supervisor of the node is starting (one the stopped agent
    was starting after its supervisor died): the new agent must find it
    serving and adopt it, not start a second one beside it. A supervisor
    writes its pid file once it serves."""
    deadline = time.monotonic() + timeout
    pid_file = Path(node.run_dir) / "supervisor.pid"
    while time.monotonic() < deadline:
        starting = [pid for pid in _supervisors(node) if pid != read_pid(pid_file)]
        if not starting:
            return
        time.sleep(0.05)


def _supervisors(node: NodeRecord) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            args = sweep.argv(int(entry))
            if "nodeagent.supervisor" in args and node.run_dir in args and alive(int(entry)):
                found.append(int(entry))
    return found


def restart_controlplane(run_dir: str, index: int = 0) -> None:
    """Stop a control-plane replica and start it again on the same etcd."""
    rec = load_record(run_dir)
    sweep.terminate({rec.controlplane_pids[index]: cp_state(rec)}, TERM_TIMEOUT)
    start_controlplane(rec, index)
    rec.save()


def start_registry(rec: ClusterRecord, host: str, port: int) -> None:
    """Debian's docker-registry on the cluster's network, so nodes in other
    network namespaces pull over the network. Plain http: it is listed in
    $ORCH_INSECURE_REGISTRIES for everything `orch up` starts."""
    from registry.transport import INSECURE_ENV

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


# ---- up ------------------------------------------------------------------------------

def up(nodes: int, state_dir: str, run_dir: str, subnet: str, bridge: str, prefix: str,
       port: int = CP_PORT, controlplanes: int = 1, registry_port: int | None = None,
       monitoring_port: int | None = None, etcd_members: int | None = None) -> ClusterRecord:
    """Start the cluster and return its record once every node is ready.
    ``etcd_members``: how many etcd members (None: as many as the kept
    state has, or 1). UpError, with nothing created, for flags or a host
    that cannot work; on a later failure (or an interrupt) what was started
    and created goes."""
    try:
        check_up_flags(nodes, controlplanes, port, registry_port, subnet, bridge, prefix,
                       1 if etcd_members is None else etcd_members)
    except FlagError as err:
        raise UpError(str(err))
    if monitoring_port is not None and not 1 <= monitoring_port <= 65535:
        raise UpError(f"--monitoring {monitoring_port}: a port is 1 to 65535")
    state_dir, run_dir = os.path.abspath(state_dir), os.path.abspath(run_dir)
    if state_dir == run_dir or "/" in (state_dir, run_dir):
        raise UpError(f"--state-dir {state_dir} and --run-dir {run_dir}: two distinct directories, not /")
    if (Path(run_dir) / "cluster.json").exists():
        raise UpError(f"a cluster is already up ({run_dir}/cluster.json); run: orch down")
    net = HostNet(bridge, subnet, prefix)
    multi = nodes > 1
    etcd = plan_etcd(state_dir, port, etcd_members)
    _check_ports_free("0.0.0.0" if multi else "127.0.0.1", port, controlplanes, registry_port,
                      monitoring_port, etcd)
    if monitoring_port:
        from orch.cluster.monitoring import prometheus_binary

        prometheus_binary()  # refused before anything starts
    if multi:
        try:
            net.preflight(nodes)
        except HostNetError as err:
            raise UpError(str(err))
    before = _Before.take(state_dir, run_dir)
    try:
        return _up(nodes, state_dir, run_dir, net, port, controlplanes, registry_port, monitoring_port,
                   etcd)
    except BaseException as err:
        try:
            remains = _undo(run_dir, state_dir, before)
        except Exception as undo_err:
            remains = [f"cleaning up failed: {undo_err}"]
        if not isinstance(err, Exception):  # interrupted: cleaned up, now stop
            raise
        message = str(err) if isinstance(err, UpError) else f"orch up failed: {err}"
        if remains:
            message += (f"; cleaning up left {len(remains)} thing(s): {'; '.join(remains[:3])}: "
                        "run orch down --purge")
        raise UpError(message) from err


def _check_ports_free(host: str, port: int, controlplanes: int, registry: int | None,
                      monitoring: int | None = None, etcd: EtcdMembership | None = None) -> None:
    wanted = [("--port", p, host) for p in range(port, port + controlplanes)]
    wanted += [("--port", p + METRICS_PORT_OFFSET, host) for p in range(port, port + controlplanes)]
    wanted += [("--port", p + JOIN_PORT_OFFSET, host) for p in range(port, port + controlplanes)]
    if registry:
        wanted.append(("--registry", registry, host))
    if monitoring:
        wanted.append(("--monitoring", monitoring, "127.0.0.1"))
    # etcd's own ports: new ones follow --port; kept ones are the state's.
    kept = etcd is not None and not etcd.new
    for member in etcd.members if etcd else []:
        wanted += [(_KEPT_ETCD if kept else "--port", _url_port(url), "127.0.0.1")
                   for url in (member.client, member.peer) if url]
    seen: dict[int, str] = {}
    for flag, p, _ in wanted:
        if seen.get(p, flag) != flag:
            raise UpError(f"port {p} would serve both {seen[p]} and {flag}: pick another port")
        seen[p] = flag
    for flag, p, host in wanted:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, p))
            except OSError as err:
                if flag == _KEPT_ETCD:
                    raise UpError(f"port {p} of the kept etcd members is in use here ({err.strerror}): "
                                  "stop what holds it, or start afresh with orch down --purge")
                raise UpError(f"{flag}: port {p} is in use here ({err.strerror}): another cluster? "
                              f"pick another {flag}")


_KEPT_ETCD = "the kept etcd members"


def _admin_certificate(pki_dir: str) -> str:
    """The cluster CA (made if there is none), the first join tokens (the
    control planes adopt them, ``controlplane.trust``: the agents start
    before them) and the admin user's certificate for the CLI over TCP, in
    ``<pki>/admin``; that directory."""
    from common import pki
    from common.auth import write_private
    from controlplane.trust import TOKEN_FILES, create_ca, issue_local

    ca = create_ca(pki_dir)
    admin = os.path.join(pki_dir, "admin")
    for name in TOKEN_FILES.values():
        if not os.path.exists(os.path.join(pki_dir, name)):
            write_private(os.path.join(pki_dir, name), (pki.make_token(ca.cert_pem) + "\n").encode())
    if not os.path.exists(os.path.join(admin, "key.pem")):
        cert, key = issue_local(ca, "admin", "user", days=pki.NODE_DAYS)
        write_private(os.path.join(admin, "ca.pem"), ca.cert_pem)
        write_private(os.path.join(admin, "cert.pem"), cert)
        write_private(os.path.join(admin, "key.pem"), key)
    # Kept files made wider since are made private again (as the CA key is
    # refused if it is: that one a control plane checks).
    for path in [*(os.path.join(pki_dir, n) for n in TOKEN_FILES.values()),
                 *(os.path.join(admin, n) for n in ("ca.pem", "cert.pem", "key.pem"))]:
        os.chmod(path, 0o600)
    os.chmod(admin, 0o700)
    return admin


def _up(nodes: int, state_dir: str, run_dir: str, net: HostNet, port: int, controlplanes: int,
        registry_port: int | None, monitoring_port: int | None, etcd_plan: EtcdMembership) -> ClusterRecord:
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    Path(state_dir).mkdir(parents=True, exist_ok=True)
    pki_dir = str(Path(state_dir) / "pki")
    cert_path = _admin_certificate(pki_dir)
    multi = nodes > 1
    agent_side = net.gateway if multi else "127.0.0.1"
    ports = [port + i for i in range(controlplanes)]
    listens = [[f"127.0.0.1:{p}"] + ([f"{net.gateway}:{p}"] if multi else []) for p in ports]
    rec = ClusterRecord(state_dir=state_dir, run_dir=run_dir, controlplane=f"127.0.0.1:{port}",
                        join=",".join(f"{agent_side}:{p}" for p in ports), listens=listens,
                        token_file=str(Path(pki_dir) / "node-token"), pki_dir=pki_dir, cert_path=cert_path,
                        sockets=[str(Path(run_dir) / f"cp{i + 1}.sock") for i in range(controlplanes)],
                        bridge=net.bridge if multi else "", subnet=str(net.subnet), prefix=net.prefix)
    rec.save()  # from here on, `orch down` can clean up whatever exists
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
    etcds = spawn_etcd(rec, etcd_plan)
    rec.save()
    procs = [start_agent(rec, n, i) for i, n in enumerate(rec.nodes, 1)]
    rootfs = build_busybox(rec)
    wait_etcd(rec, etcds)
    for i in range(controlplanes):
        start_controlplane(rec, i)
    rec.save()
    for node, proc in zip(rec.nodes, procs, strict=True):
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise UpError(f"agent {node.name} failed to start: {err.decode().strip()}")
    import_busybox(rec, rootfs)
    wait_nodes_ready(rec, nodes, 30)
    if monitoring_port:
        start_prometheus(rec, monitoring_port)
        rec.save()
    return rec


def start_prometheus(rec: ClusterRecord, port: int) -> None:
    """Debian's Prometheus, scraping the cluster (``orch.cluster.monitoring``)."""
    from orch.cluster import monitoring

    cmd, log = monitoring.prepare(rec, [metrics_address(listen) for listen in rec.listens], port)
    proc = _spawn(cmd, log)
    rec.prometheus, rec.prometheus_pid = f"127.0.0.1:{port}", proc.pid
    rec.save()
    _wait("prometheus", lambda: monitoring.ready(port), 30, proc, log)


@dataclass
class _Before:
    """What existed before ``up``: a failed ``up`` deletes only what it made."""

    state_dir: str
    run_dir: str
    new_roots: list[str]  # the highest directories up creates (state, run, missing parents)
    state_entries: set[str]
    node_entries: set[str]

    @classmethod
    def take(cls, state_dir: str, run_dir: str) -> _Before:
        roots = [r for r in (_first_missing(state_dir), _first_missing(run_dir)) if r]
        return cls(state_dir, run_dir, roots, set(_listdir(state_dir)),
                   set(_listdir(os.path.join(state_dir, "nodes"))))

    def created(self) -> list[str]:
        """What exists now that did not before (whole directories up made)."""
        if any(_inside(self.state_dir, r) for r in self.new_roots):
            return [r for r in self.new_roots if os.path.lexists(r)]
        out = [r for r in self.new_roots if os.path.lexists(r)]
        out += [os.path.join(self.state_dir, e) for e in _listdir(self.state_dir)
                if e not in self.state_entries]
        nodes = os.path.join(self.state_dir, "nodes")
        if "nodes" in self.state_entries:
            out += [os.path.join(nodes, e) for e in _listdir(nodes) if e not in self.node_entries]
        return out


def _first_missing(path: str) -> str:
    """The highest missing directory on the way to ``path`` ("" if it exists)."""
    missing = ""
    p = Path(path)
    while not p.exists():
        missing = str(p)
        if p.parent == p:
            break
        p = p.parent
    return missing


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _undo(run_dir: str, state_dir: str, before: _Before) -> list[str]:
    """Take down what a failed ``up`` started and delete what it created;
    what could not be removed, one line each."""
    report = down(run_dir, graceful=False, state_dir=state_dir)
    if report.remains:
        return report.remains
    for path in before.created():
        rm_tree(path)
    return [f"{p}: not deleted" for p in before.created()]


def wait_nodes_ready(rec: ClusterRecord, count: int, timeout: float) -> None:
    from orch.cli.client import Cluster

    # The local replica's root-only socket needs no token.
    api = Cluster(f"unix://{rec.sockets[0]}" if rec.sockets else rec.controlplane)

    def ready() -> bool:
        from proto import cluster_pb2 as cpb

        try:
            nodes = api.call("ListNodes", cpb.ListRequest(), timeout=2).nodes
        except Exception:
            return False
        return sum(1 for n in nodes if n.state == cpb.NODE_STATE_READY) >= count

    try:
        _wait(f"{count} nodes", ready, timeout)
    finally:
        api.close()
