"""``orch sim``: a local cluster whose nodes are simulated.

As ``orch up`` (``orch.cluster.local``: the same record, state and run
dirs, ports, CA and join tokens, etcd and control-plane replicas, started
by its own functions), but instead of agents one more process,
``python -m nodeagent.sim``, runs every node (``nodeagent.sim``): they join
with the node token and hold real sessions with the control planes. The
CLI then works on it as on any cluster (``orch deploy -f``, ``orch ps``,
``orch nodes``); nothing runs, so placement, failover and rollouts can be
tried at a size this machine could not run.

Where things are: the nodes' identities in ``<state>/sim/<name>``, the
process's log in ``<state>/sim.log``, its control socket (kill, revive,
status: ``nodeagent.sim.control``) in ``<run>/nodes/sim``. ``orch down``
stops it with the rest: its argv names those directories, so the sweep
finds it (``orch.cluster.sweep``), and ``<run>/nodes`` goes with the
record. The record lists no nodes (there are no agents to stop).

``orch sim`` starts one control-plane replica unless told more: a
replica's sessions run on its server's event loop (``common.aioserver``)
and hold no thread, so one serves every node.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from orch.cluster.flags import MAX_CONTROLPLANES, FlagError
from orch.cluster.local import (
    _admin_certificate,
    _Before,
    _check_ports_free,
    _spawn,
    _tail,
    _undo,
    plan_etcd,
    spawn_etcd,
    start_controlplane,
    wait_etcd,
)
from orch.cluster.record import CP_PORT, DEFAULT_RUN, DEFAULT_STATE, ClusterRecord, EtcdMembership, UpError

__all__ = ["SimFlags", "check_sim_flags", "control_socket", "sim_up"]

MAX_SIM_NODES = 65535  # nodeagent.sim.simulator.MAX_NODES
MAX_START_DELAY = 3600.0
READY_BASE = 60.0  # seconds to wait for every node: this, and READY_PER_NODE more a node
READY_PER_NODE = 0.05
_PREFIX = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,40}")
_LABEL_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_./-]{0,62}")


@dataclass
class SimFlags:
    nodes: int
    state_dir: str = DEFAULT_STATE
    run_dir: str = DEFAULT_RUN
    port: int = CP_PORT
    controlplanes: int = 1  # a replica's sessions hold no thread: one serves them all
    cpus: float = 4.0
    memory_bytes: int = 8 << 30
    start_delay: float = 0.0
    fail: float = 0.0
    flap: float = 0.0
    prefix: str = "sim-"
    labels: dict[str, str] = field(default_factory=dict)
    zones: int = 0
    beacons: bool = False
    seed: int | None = None


def check_sim_flags(f: SimFlags) -> int:
    """FlagError naming the first flag that cannot work; the replica count."""
    if not 1 <= f.nodes <= MAX_SIM_NODES:
        raise FlagError(f"--nodes {f.nodes}: a simulation has 1 to {MAX_SIM_NODES} nodes")
    replicas = f.controlplanes
    if not 1 <= replicas <= MAX_CONTROLPLANES:
        raise FlagError(f"--controlplanes {replicas}: a cluster has 1 to {MAX_CONTROLPLANES} "
                        "control-plane replicas")
    if f.port < 1 or f.port + replicas - 1 + 100 > 65535:
        raise FlagError(f"--port {f.port}: the replicas' ports (and their join and metrics ports, "
                        "+50 and +100) must stay within 1 to 65535")
    if not 0 <= f.start_delay <= MAX_START_DELAY:
        raise FlagError(f"--start-delay {f.start_delay:g}: 0 to {MAX_START_DELAY:g} seconds")
    if not 0 <= f.fail <= 1:
        raise FlagError(f"--fail {f.fail:g}: the share of starts that fail, 0 to 1")
    if not 0 <= f.flap <= 1:
        raise FlagError(f"--flap {f.flap:g}: the share of nodes that flap, 0 to 1")
    if not _PREFIX.fullmatch(f.prefix):
        raise FlagError(f"--prefix {f.prefix!r}: 1 to 41 letters, digits, '_', '.' or '-', starting "
                        "with a letter or digit")
    if not 0 <= f.zones <= f.nodes:
        raise FlagError(f"--zones {f.zones}: 0 (no zone label) to --nodes ({f.nodes})")
    for key in f.labels:
        if not _LABEL_KEY.fullmatch(key):
            raise FlagError(f"--label {key}: a label key is letters, digits and _ . / -, starting with a "
                            "letter or digit")
        if key == "node" or (key == "zone" and f.zones):
            raise FlagError(f"--label {key}: each node's own (node=NAME" + (", zone=zone-N with --zones)"
                                                                             if f.zones else ")"))
    return replicas


def control_socket(run_dir: str) -> str:
    """The simulation's control socket for the cluster of ``run_dir``."""
    return os.path.join(os.path.abspath(run_dir), "nodes", "sim", "control.sock")


def sim_up(f: SimFlags) -> ClusterRecord:
    """Start etcd, the control planes and the simulation; return the record
    once every simulated node is ready. UpError (one line) otherwise, with
    what was started taken down."""
    try:
        replicas = check_sim_flags(f)
    except FlagError as err:
        raise UpError(str(err))
    state_dir, run_dir = os.path.abspath(f.state_dir), os.path.abspath(f.run_dir)
    if state_dir == run_dir or "/" in (state_dir, run_dir):
        raise UpError(f"--state-dir {state_dir} and --run-dir {run_dir}: two distinct directories, not /")
    if (Path(run_dir) / "cluster.json").exists():
        raise UpError(f"a cluster is already up ({run_dir}/cluster.json); run: orch down")
    etcd = plan_etcd(state_dir, f.port, None)
    _check_ports_free("127.0.0.1", f.port, replicas, None, None, etcd)
    before = _Before.take(state_dir, run_dir)
    try:
        return _sim_up(f, state_dir, run_dir, replicas, etcd)
    except BaseException as err:
        try:
            remains = _undo(run_dir, state_dir, before)
        except Exception as undo_err:
            remains = [f"cleaning up failed: {undo_err}"]
        if not isinstance(err, Exception):
            raise
        message = str(err) if isinstance(err, UpError) else f"orch sim failed: {err}"
        if remains:
            message += (f"; cleaning up left {len(remains)} thing(s): {'; '.join(remains[:3])}: "
                        "run orch down --purge")
        raise UpError(message) from err


def _sim_up(f: SimFlags, state_dir: str, run_dir: str, replicas: int,
            etcd_plan: EtcdMembership) -> ClusterRecord:
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    Path(state_dir).mkdir(parents=True, exist_ok=True)
    pki_dir = str(Path(state_dir) / "pki")
    cert_path = _admin_certificate(pki_dir)
    ports = [f.port + i for i in range(replicas)]
    listens = [[f"127.0.0.1:{p}"] for p in ports]
    rec = ClusterRecord(state_dir=state_dir, run_dir=run_dir, controlplane=f"127.0.0.1:{f.port}",
                        join=",".join(listen[0] for listen in listens), listens=listens,
                        token_file=str(Path(pki_dir) / "node-token"), pki_dir=pki_dir, cert_path=cert_path,
                        sockets=[str(Path(run_dir) / f"cp{i + 1}.sock") for i in range(replicas)])
    rec.save()  # from here on, `orch down` can clean up whatever exists
    etcds = spawn_etcd(rec, etcd_plan)
    rec.save()
    wait_etcd(rec, etcds)
    for i in range(replicas):
        start_controlplane(rec, i)
    rec.save()
    proc, log = _spawn_sim(rec, f)
    _wait_ready(rec, f.nodes, proc, log)
    return rec


def _spawn_sim(rec: ClusterRecord, f: SimFlags) -> tuple[subprocess.Popen[bytes], str]:
    sim_state = str(Path(rec.state_dir) / "sim")
    sim_run = os.path.dirname(control_socket(rec.run_dir))
    os.makedirs(sim_state, mode=0o700, exist_ok=True)
    os.makedirs(sim_run, mode=0o700, exist_ok=True)
    log = str(Path(rec.state_dir) / "sim.log")
    cmd = [sys.executable, "-m", "nodeagent.sim", "--state-dir", sim_state, "--run-dir", sim_run,
           "--join", rec.join, "--token-file", rec.token_file, "--nodes", str(f.nodes),
           "--prefix", f.prefix, "--cpus", repr(f.cpus), "--memory", str(f.memory_bytes),
           "--start-delay", repr(f.start_delay), "--fail", repr(f.fail), "--flap", repr(f.flap),
           "--zones", str(f.zones)]
    for key, value in f.labels.items():
        cmd += ["--label", f"{key}={value}"]
    if f.beacons:
        cmd.append("--beacons")
    if f.seed is not None:
        cmd += ["--seed", str(f.seed)]
    return _spawn(cmd, log), log


def _wait_ready(rec: ClusterRecord, count: int, proc: subprocess.Popen[bytes], log: str) -> None:
    """Until ``count`` nodes are ready in the cluster; UpError if the
    simulation exits first or the time is up."""
    from orch.cli.client import Cluster
    from proto import cluster_pb2 as cpb

    api = Cluster(f"unix://{rec.sockets[0]}")
    timeout = READY_BASE + READY_PER_NODE * count
    deadline = time.monotonic() + timeout
    ready = 0
    try:
        while True:
            if proc.poll() is not None:
                raise UpError(f"the simulation exited with code {proc.returncode}" + _tail(log))
            try:
                nodes = api.call("ListNodes", cpb.ListRequest(), timeout=5).nodes
                ready = sum(1 for n in nodes if n.state == cpb.NODE_STATE_READY)
            except Exception:
                ready = 0
            if ready >= count:
                return
            if time.monotonic() >= deadline:
                raise UpError(f"{ready} of {count} simulated nodes ready within {timeout:.0f} s (see {log})")
            time.sleep(0.2)
    finally:
        api.close()
