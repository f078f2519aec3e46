"""``orch down``: stop a local cluster and remove everything it made here.

The control planes stop first, then each node (its containers get their
stop grace period, at most ``MAX_GRACE``, and the node ``STOP_MARGIN`` more),
then etcd, the registry and Prometheus. Then the sweep (``orch.cluster.sweep``) kills and
removes whatever the kernel ties to the cluster, whatever pid files say, and
the nodes' namespaces and links go, but never a namespace with a process
still in it. The record is deleted only once nothing is left; otherwise
``down`` reports what remains and keeps it, so ``down`` can run again.
Without ``purge`` the state is kept (a later ``up`` runs the same tasks
again); with it the state dir goes, its pki dir (the CA) last, also when no
cluster is up (the state an earlier ``down`` kept).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from orch.cluster import sweep
from orch.cluster.hostnet import HostNet, link_exists, netns_path
from orch.cluster.record import (
    DEFAULT_RUN,
    DEFAULT_STATE,
    NODE_BRIDGE,
    ClusterRecord,
    NodeRecord,
    UpError,
    agent_pid,
    cp_state,
    etcd_members,
    load_record,
    node_subnet,
    read_pid,
)
from orch.pids import wait_exit

# Docker's daemon gives its containers 15 s at shutdown; a node here gets
# its containers' longest grace period, at most MAX_GRACE, and STOP_MARGIN
# more to remove them and its network.
MAX_GRACE = 60.0
STOP_MARGIN = 10.0
TERM_TIMEOUT = 10.0  # control planes, etcd, the registry: SIGTERM, then SIGKILL
SWEEP_TIMEOUT = 10.0


@dataclass
class DownReport:
    record: ClusterRecord | None  # the cluster that was up, if one was
    removed: list[str] = field(default_factory=list)  # deleted state, for the user
    remains: list[str] = field(default_factory=list)  # what could not be removed


def down(run_dir: str, purge: bool = False, state_dir: str | None = None,
         graceful: bool = True) -> DownReport:
    """Stop the cluster of ``run_dir`` and remove everything it made on this
    machine but its state (and that too with ``purge``). Without a cluster,
    ``purge`` deletes the kept state in ``state_dir``. ``graceful=False``
    skips giving containers their stop grace period (a failed ``up``)."""
    run_dir = os.path.abspath(run_dir)
    from orch.cluster.chaos import heal_all  # chaos first: its timers, delays and cut links

    heal_all(run_dir)
    rec = load_record(run_dir) if (Path(run_dir) / "cluster.json").exists() else None
    if rec is None:
        state = os.path.abspath(state_dir or DEFAULT_STATE)
        return _purge_kept(run_dir, state) if purge else DownReport(None)
    if state_dir and os.path.abspath(state_dir) != rec.state_dir:
        raise UpError(f"--state-dir {state_dir}: the cluster of {run_dir} keeps its state in "
                      f"{rec.state_dir}")
    if graceful:
        _stop_gracefully(rec)
    target = _target(rec)
    sweep.sweep(target, SWEEP_TIMEOUT)
    remains = sweep.remains(target)
    if not remains:  # never delete a namespace with processes still in it
        _remove_network(rec)
    remains += _network_remains(rec)
    if remains:
        return DownReport(rec, remains=remains)
    for sock in rec.sockets:
        with contextlib.suppress(OSError):
            os.unlink(sock)
    rec.path.unlink()
    rm_tree(str(Path(run_dir) / "nodes"))  # the nodes' socket directories
    _rmdir_if_empty(Path(run_dir))
    report = DownReport(rec)
    if purge:
        _purge_state(rec.state_dir, report)
    return report


def _target(rec: ClusterRecord) -> sweep.Target:
    target = sweep.Target(dirs=[rec.state_dir, rec.run_dir],
                          netns=[n.netns for n in rec.nodes if n.netns])
    target.add_containers(rec.state_dir)
    state = Path(rec.state_dir)
    for pid in rec.controlplane_pids:
        target.pids[pid] = cp_state(rec)
    for member in etcd_members(rec):
        target.pids[member.pid] = member.data_dir
    target.pids[rec.registry_pid] = str(state / "registry")
    target.pids[rec.prometheus_pid] = str(state / "prometheus")
    target.pids.pop(0, None)
    return target


def _stop_gracefully(rec: ClusterRecord) -> None:
    """The control planes first: a cluster going down is not its nodes
    failing one by one. Stopped while the control plane watched, each node
    would be marked down and its tasks replaced (on nodes also going down);
    this way the state is kept as it was, and `orch up` restarts the same
    tasks on the same nodes. Then every node at once, then etcd (every member)."""
    sweep.terminate({pid: cp_state(rec) for pid in rec.controlplane_pids}, TERM_TIMEOUT)
    threads = [threading.Thread(target=_stop_node, args=(node,), daemon=True) for node in rec.nodes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    state = Path(rec.state_dir)
    others = {rec.registry_pid: str(state / "registry"), rec.prometheus_pid: str(state / "prometheus")}
    # Every etcd member at once (one left alone would wait for the others);
    # one already gone (killed) is skipped.
    sweep.terminate({**others, **{m.pid: m.data_dir for m in etcd_members(rec)}}, TERM_TIMEOUT)


def _stop_node(node: NodeRecord) -> None:
    """Ask the node's agent to stop with every container (or, the agent being
    gone, its supervisor: SIGTERM does the same); wait until both have
    exited, at most the containers' grace period and STOP_MARGIN."""
    from orch.cli.client import Agent
    from proto import agent_pb2 as pb

    deadline = time.monotonic() + min(MAX_GRACE, _longest_grace(node)) + STOP_MARGIN
    agent = sweep.verified(agent_pid(node), node.run_dir)
    sup = sweep.verified(read_pid(Path(node.run_dir) / "supervisor.pid"), node.run_dir)
    asked = False
    if agent:
        client = Agent(f"unix://{node.run_dir}/agent.sock")
        try:
            client.call("Shutdown", pb.ShutdownRequest(stop_containers=True),
                        timeout=max(0.1, deadline - time.monotonic()))
            asked = True
        except Exception:  # gone, hung or broken: the supervisor, then the sweep
            pass
        finally:
            client.close()
    if sup and not asked:
        with contextlib.suppress(ProcessLookupError):
            os.kill(sup, signal.SIGTERM)
    for pid in (agent, sup):
        if pid:
            wait_exit(pid, max(0.0, deadline - time.monotonic()))


def _longest_grace(node: NodeRecord) -> float:
    """The longest stop grace period of the node's running containers."""
    longest = 0.0
    for record in Path(node.state_dir, "containers").glob("*/record.json"):
        try:
            lines = [ln for ln in record.read_bytes().splitlines() if ln.strip()]
            data = json.loads(lines[-1]) if lines else {}
            if data.get("state") in ("running", "restarting"):
                longest = max(longest, float(data["spec"].get("stop_timeout", 0)))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
    return longest


def _remove_network(rec: ClusterRecord) -> None:
    net = HostNet(rec.bridge or "orchup0", rec.subnet or "10.89.0.0/24", rec.prefix)
    for i, node in enumerate(rec.nodes, 1):
        if node.netns:
            net.remove_node(i)  # its overlay (VXLAN devices, rules, nft) goes with the namespace
            continue
        _remove_host_overlay()
        if _single_node_bridge(i):
            # A node on the host itself: its supervisor removes its bridge and
            # nft table when it stops; if it was killed, this does instead.
            from nodeagent.network.bridge_network import BridgeNetwork

            with contextlib.suppress(Exception):  # what stays is reported after
                BridgeNetwork(os.path.join(node.state_dir, "network"), NODE_BRIDGE,
                              node_subnet(i)).teardown()
    if rec.bridge:
        net.remove_bridge()


def _remove_host_overlay() -> None:
    """A node on the host itself: its overlay (``vx-*`` devices, the mesh's
    policy rules, table ``ip orch_svc``), which its agent removes when it
    stops with its containers; if it was killed, this does instead."""
    from nodeagent.network.overlay import remove_here

    with contextlib.suppress(Exception):  # what stays is reported after
        remove_here()


def _single_node_bridge(index: int) -> bool:
    """Whether this host has the bridge of host node ``index`` (orch0 with
    that node's gateway: a standalone agent's orch0 has another subnet)."""
    from orch.cluster.hostnet import host_addresses

    gateway = node_subnet(index).replace(".0/24", ".1/24")
    return any(ifname == NODE_BRIDGE and str(addr) == gateway for ifname, addr in host_addresses())


def _network_remains(rec: ClusterRecord) -> list[str]:
    net = HostNet(rec.bridge or "orchup0", rec.subnet or "10.89.0.0/24", rec.prefix)
    out = []
    for i, node in enumerate(rec.nodes, 1):
        if node.netns:
            if os.path.exists(netns_path(node.netns)):
                out.append(f"network namespace {node.netns}")
            if link_exists(net.node(i).host_veth):
                out.append(f"interface {net.node(i).host_veth}")
        else:
            from nodeagent.network.overlay import leftovers

            out += [f"{thing} (node {node.name})" for thing in leftovers()]
            if _single_node_bridge(i):
                out.append(f"interface {NODE_BRIDGE} (node {node.name})")
    if rec.bridge and link_exists(rec.bridge):
        out.append(f"interface {rec.bridge}")
    return out


def _purge_kept(run_dir: str, state_dir: str) -> DownReport:
    """``down --purge`` with no cluster up: the state an earlier ``down``
    kept (or a failed ``up`` left), after sweeping whatever still runs from it."""
    report = DownReport(None)
    if not os.path.isdir(state_dir):
        return report
    if not _is_cluster_state(state_dir):
        raise UpError(f"{state_dir} does not look like the state of an orch cluster (no pki/, "
                      "etcd/ or nodes/ in it): not deleting it")
    target = sweep.Target(dirs=[state_dir, run_dir])
    target.add_containers(state_dir)
    sweep.sweep(target, SWEEP_TIMEOUT)
    report.remains = sweep.remains(target)
    if report.remains:
        return report
    rm_tree(str(Path(run_dir) / "nodes"))
    _rmdir_if_empty(Path(run_dir))
    _purge_state(state_dir, report)
    return report


def _is_cluster_state(path: str) -> bool:
    p = Path(path)
    if p.parent == p or p.parent == Path("/"):
        return False  # never / or a top-level directory such as /var
    return (p / "pki").is_dir() or (p / "etcd").is_dir() or (p / "nodes").is_dir()


def _purge_state(state_dir: str, report: DownReport) -> None:
    """Delete the state dir, its pki dir last: a dir that could not be
    deleted whole is still known as a cluster's to the next ``down --purge``."""
    size = _disk_usage(state_dir)
    for entry in _listdir(state_dir):
        if entry != "pki":
            rm_tree(os.path.join(state_dir, entry))
    if _listdir(state_dir) in ([], ["pki"]):
        rm_tree(state_dir)
    if os.path.lexists(state_dir):
        report.remains.append(f"directory {state_dir}: not fully deleted")
    else:
        report.removed.append(f"{state_dir} ({size / 1e6:.1f} MB)")


def _disk_usage(path: str) -> int:
    total = 0
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
    return total


def rm_tree(path: str) -> None:
    """rm -rf, never crossing into another filesystem (a mount left under it)."""
    if os.path.lexists(path):
        subprocess.run(["rm", "-rf", "--one-file-system", "--", path], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _rmdir_if_empty(path: Path) -> None:
    """The run dir, and the default one's parent (/run/orch), when nothing else lives there."""
    with contextlib.suppress(OSError):
        path.rmdir()
        if path.parent == Path(DEFAULT_RUN).parent:
            path.parent.rmdir()


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []
