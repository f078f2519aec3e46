"""The control plane's cost against the cluster's size: `orch sim` (the real
control plane and etcd, simulated nodes) at a series of points.

    python bench/scale.py [--points 100x10000,1000x100000,5000x1000000]
                          [--budget SECONDS] [--replicas R] [--out bench/out]   (root)

Each point NODESxTASKS starts its own simulation (``orch sim --nodes
NODES``, one control-plane replica, private dirs and ports) and deploys a
C1M-shaped stack: ``TASKS / 1000`` services (at least 10) of equal
replicas, a quarter held off one zone (``node.labels.zone != zone-0``), a
quarter at most ``2 * TASKS / NODES / SERVICES`` a node, a quarter spread
over the zones (``preferences: spread``), a quarter free; each reserves
0.01 CPU and 16 MiB. The services have no network (``network_mode:
none``): this measures the control plane's scheduling, store and
sessions, as C1M did (its tasks had no networking either).

One line a point, ``key=value``:

- ``converge_s``: from `orch deploy -f` to its exit (every replica
  running, as its own event stream tells it); ``placements_per_s`` =
  tasks / converge_s;
- ``cp_rss_mib`` (the replica's peak resident memory, sampled every
  0.2 s) and ``cp_cpu_s`` (its user + system seconds while converging);
- ``etcd_db_mib``: etcd's database file once converged;
- ``api_p50_ms`` / ``api_p99_ms`` (and per call): list services, get one
  task (``ListTasks`` of a one-task service), scale that service 1 <-> 2,
  called in turn by a client thread while the deploy converges;
- ``failover_s``: 1 % of the nodes (at least 1) killed at once
  (`orch sim --kill`), to every replica running again with none on them;
- ``rollout_s``: a changed environment in every service (parallelism 10 %
  of its replicas, monitor 0), from `orch deploy -f` to its exit.

A point that does not converge within ``--budget`` (default 600 s), or
whose nodes do not all join (`orch sim` gives them 60 s and 0.05 s a
node), prints how far it got, and the larger points are skipped. A plot of converge_s
and the peak RSS against the task count goes to ``--out``
(``scale.png``), with the lines in ``scale.txt``.

Asserts nothing about timings. Each simulation goes with ``orch down
--purge``, also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import glob
import math
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import ORCH, ROOT, cpu_seconds, percentile, rss_kib

DEFAULT_POINTS = "100x10000,1000x100000,5000x1000000"
ZONES = 10


@dataclass
class Point:
    nodes: int
    tasks: int

    @property
    def services(self) -> int:
        return max(10, self.tasks // 1000)

    @property
    def replicas(self) -> int:
        return self.tasks // self.services

    def label(self) -> str:
        return f"{self.nodes}x{self.tasks}"


@dataclass
class Sim:
    state: str
    run: str
    port: int
    env: dict[str, str]
    pid: int = 0  # the control plane's
    api: Any = None

    def orch(self, *args: str, check: bool = True, timeout: float | None = None,
             ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([*ORCH, *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout)
        if check and proc.returncode != 0:
            raise RuntimeError(f"orch {' '.join(args[:2])} exited {proc.returncode}: "
                               f"{(proc.stderr or proc.stdout).strip()[-400:]}")
        return proc


def parse_points(text: str) -> list[Point]:
    points = []
    for part in text.split(","):
        nodes, _, tasks = part.strip().lower().partition("x")
        try:
            point = Point(int(nodes), int(tasks))
        except ValueError:
            raise SystemExit(f"--points {part!r}: NODESxTASKS, e.g. 100x10000") from None
        if point.nodes < 1 or point.tasks < point.services:
            raise SystemExit(f"--points {part!r}: at least 1 node and {point.services} tasks")
        points.append(point)
    return points


def manifest(p: Point, version: str) -> str:
    per_node = max(1, math.ceil(2 * p.replicas / p.nodes))
    lines = ["name: scale", "services:"]
    for i in range(p.services):
        lines += [f"  s{i:04d}:", "    image: busybox", '    command: ["sleep", "86400"]',
                  "    network_mode: none", f"    environment: {{VERSION: '{version}'}}",
                  "    deploy:", f"      replicas: {p.replicas}",
                  "      resources: {reservations: {cpus: '0.01', memory: 16Mi}}",
                  f"      update_config: {{parallelism: {max(1, p.replicas // 10)}, monitor: 0s, "
                  "order: start-first}"]
        kind = i % 4
        if kind == 0:
            lines += ["      placement: {constraints: ['node.labels.zone != zone-0']}"]
        elif kind == 1:
            lines += [f"      placement: {{max_replicas_per_node: {per_node}}}"]
        elif kind == 2:
            lines += ["      placement: {preferences: [{spread: node.labels.zone}]}"]
    lines += ["  probe:", "    image: busybox", '    command: ["sleep", "86400"]', "    network_mode: none"]
    return "\n".join(lines) + "\n"


# ---- the control plane's process ------------------------------------------------

def etcd_db_bytes(state: str) -> int:
    return sum(os.path.getsize(p) for p in glob.glob(f"{state}/**/member/snap/db", recursive=True))


class Probe(threading.Thread):
    """Calls the API in turn (list services, get a task, scale) and samples
    the control plane's RSS until stopped; the calls' latencies by name."""

    def __init__(self, sim: Sim) -> None:
        super().__init__(daemon=True)
        self.sim = sim
        self.stop = threading.Event()
        self.latency: dict[str, list[float]] = {"list_services": [], "get_task": [], "scale": []}
        self.errors = 0
        self.peak_rss = 0

    def run(self) -> None:
        from proto import cluster_pb2 as cpb

        api, replicas = self.sim.api, 1
        calls = [("list_services", lambda: api.call("ListServices", cpb.ListRequest(), timeout=30)),
                 ("get_task", lambda: api.call("ListTasks", cpb.ListTasksRequest(service="probe"),
                                               timeout=30)),
                 ("scale", lambda: api.call("Scale", cpb.ScaleRequest(service="probe",
                                                                      replicas=replicas), timeout=30))]
        k = 0
        while not self.stop.wait(0.05):
            self.peak_rss = max(self.peak_rss, rss_kib(self.sim.pid))
            name, call = calls[k % len(calls)]
            if name == "scale":
                replicas = 3 - replicas
            t0 = time.monotonic()
            try:
                call()
                self.latency[name].append(time.monotonic() - t0)
            except Exception:
                self.errors += 1
            k += 1


def pct_ms(samples: list[float], p: float) -> float:
    return percentile(samples, p) * 1000 if samples else float("nan")


# ---- one point ----------------------------------------------------------------

def start(point: Point, tmp: str) -> Sim:
    from orch.cli.client import Cluster

    tag = secrets.token_hex(3)
    port = 21000 + int(tag, 16) % 2000 * 2
    run = f"/run/orch-scale-{tag}"
    sim = Sim(state=f"{tmp}/state-{tag}", run=run, port=port,
              env={**os.environ, "ORCH_CLUSTER_RUN_DIR": run})
    sim.env.pop("ORCH_HOST", None)
    sim.env.pop("ORCH_CLUSTER", None)
    cpus = max(4, math.ceil(point.tasks / point.nodes * 0.02))
    memory = max(8, math.ceil(point.tasks / point.nodes * 32 / 1024))
    sim.orch("sim", "--nodes", str(point.nodes), "--zones", str(ZONES), "--controlplanes", "1",
             "--cpus", str(cpus), "--memory", f"{memory}Gi", "--state-dir", sim.state, "--run-dir", run,
             "--port", str(port))
    import json

    with open(f"{run}/cluster.json") as f:
        sim.pid = json.load(f)["controlplane_pids"][0]
    sim.api = Cluster(f"unix://{run}/cp1.sock")
    return sim


def stop(sim: Sim) -> None:
    if sim.api is not None:
        sim.api.close()
    proc = sim.orch("down", "--run-dir", sim.run, "--purge", check=False)
    if proc.returncode != 0:
        print(f"# orch down: {proc.stdout}{proc.stderr}", file=sys.stderr)


def deploy(sim: Sim, path: str, budget: float) -> tuple[float, str]:
    """`orch deploy -f` to its exit: (seconds, "" or why it did not converge)."""
    t0 = time.monotonic()
    try:
        proc = sim.orch("deploy", "-f", path, "--timeout", str(budget), check=False, timeout=budget + 30)
    except subprocess.TimeoutExpired:
        return time.monotonic() - t0, f"not converged within {budget:.0f} s"
    took = time.monotonic() - t0
    if proc.returncode != 0:
        return took, f"orch deploy exited {proc.returncode}: {(proc.stderr or proc.stdout).strip()[-300:]}"
    return took, ""


def running_on(sim: Sim, away: set[str]) -> tuple[int, int]:
    """Tasks running and desired running; how many of them on ``away``."""
    from proto import cluster_pb2 as cpb

    tasks = sim.api.call("ListTasks", cpb.ListTasksRequest(), timeout=120).tasks
    live = [t for t in tasks if t.status.state == cpb.TASK_STATE_RUNNING
            and t.desired_state == cpb.TASK_STATE_RUNNING and t.service_name != "probe"]
    return len(live), sum(1 for t in live if t.node_id in away)


def failover(sim: Sim, point: Point, path: str, budget: float) -> tuple[float, str]:
    """Kill 1 % of the nodes; seconds to every replica running again, none on them."""
    from proto import cluster_pb2 as cpb

    count = max(1, point.nodes // 100)
    step = max(1, point.nodes // count)
    names = [f"sim-{1 + step * k}" for k in range(count)]
    by_name = {n.name: n.id for n in sim.api.call("ListNodes", cpb.ListRequest(), timeout=30).nodes}
    away = {by_name[n] for n in names}
    t0 = time.monotonic()
    sim.orch("sim", "--kill", ",".join(names), "--run-dir", sim.run)
    deadline = t0 + budget
    while True:  # the killed nodes are down...
        nodes = sim.api.call("ListNodes", cpb.ListRequest(), timeout=30).nodes
        if all(n.state != cpb.NODE_STATE_READY for n in nodes if n.id in away):
            break
        if time.monotonic() > deadline:
            return time.monotonic() - t0, "the killed nodes were not marked down"
        time.sleep(0.05)
    while True:  # ...and their tasks run elsewhere: the deploy's own wait, then the store's word
        _, why = deploy(sim, path, max(1.0, deadline - time.monotonic()))
        if why:
            return time.monotonic() - t0, why
        took = time.monotonic() - t0
        live, stranded = running_on(sim, away)
        if live == point.services * point.replicas and not stranded:
            return took, ""
        if time.monotonic() > deadline:
            return took, f"{live} running, {stranded} on killed nodes"


def measure(point: Point, budget: float, tmp: str) -> dict[str, Any]:
    out: dict[str, Any] = {"nodes": point.nodes, "tasks": point.services * point.replicas,
                           "services": point.services}
    t_start = time.monotonic()
    try:
        sim = start(point, tmp)
    except RuntimeError as err:  # the nodes did not all join: `orch sim` took itself down
        out["failed"] = str(err).replace("\n", " ")
        return out
    try:
        out["sim_up_s"] = round(time.monotonic() - t_start, 1)
        path = f"{tmp}/scale-{point.label()}.yaml"
        Path(path).write_text(manifest(point, "1"))
        cpu0 = cpu_seconds(sim.pid)
        probe = Probe(sim)
        probe.start()
        took, why = deploy(sim, path, budget)
        probe.stop.set()
        probe.join()
        out["cp_cpu_s"] = round(cpu_seconds(sim.pid) - cpu0, 1)
        out["cp_rss_mib"] = round(max(probe.peak_rss, rss_kib(sim.pid)) / 1024)
        out["etcd_db_mib"] = round(etcd_db_bytes(sim.state) / 2**20, 1)
        every = [s for v in probe.latency.values() for s in v]
        out["api_p50_ms"], out["api_p99_ms"] = round(pct_ms(every, 50), 1), round(pct_ms(every, 99), 1)
        for name, samples in probe.latency.items():
            out[f"{name}_p99_ms"] = round(pct_ms(samples, 99), 1)
        out["api_calls"], out["api_errors"] = len(every), probe.errors
        if why:
            out["converge_s"] = round(took, 1)
            out["failed"] = why
            return out
        out["converge_s"] = round(took, 2)
        out["placements_per_s"] = round(out["tasks"] / took)
        took, why = failover(sim, point, path, budget)
        out["failover_s"] = round(took, 2)
        if why:
            out["failed"] = f"failover: {why}"
            return out
        Path(path).write_text(manifest(point, "2"))
        took, why = deploy(sim, path, budget)
        out["rollout_s"] = round(took, 2)
        if why:
            out["failed"] = f"rollout: {why}"
        out["cp_rss_end_mib"] = round(rss_kib(sim.pid) / 1024)
        return out
    finally:
        stop(sim)


def plot(rows: list[dict[str, Any]], dest: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in rows if "placements_per_s" in r]
    if not done:
        return
    tasks = [r["tasks"] for r in done]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(tasks, [r["converge_s"] for r in done], "o-", label="converge (s)")
    for key, label in (("failover_s", "failover of 1 % (s)"), ("rollout_s", "full rollout (s)")):
        pts = [(r["tasks"], r[key]) for r in done  # not a phase that failed ("rollout: ...")
               if key in r and not str(r.get("failed", "")).startswith(key.split("_")[0])]
        if pts:
            ax.plot(*zip(*pts, strict=True), "s--", label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("tasks")
    ax.set_ylabel("seconds")
    mem = ax.twinx()
    mem.plot(tasks, [r["cp_rss_mib"] for r in done], "^:", color="tab:red", label="control plane RSS (MiB)")
    mem.set_ylabel("MiB")
    mem.set_yscale("log")
    lines = ax.get_legend_handles_labels()
    more = mem.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], loc="upper left")
    ax.set_title("orch sim: one control-plane replica on 2 cores")
    fig.tight_layout()
    fig.savefig(dest, dpi=100)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", default=DEFAULT_POINTS)
    parser.add_argument("--budget", type=float, default=600.0, help="seconds a deploy may take")
    parser.add_argument("--out", default=str(ROOT / "bench" / "out"))
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/scale.py needs root (orch sim, as orch up)", file=sys.stderr)
        return 2
    points = parse_points(args.points)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="orch-scale-") as tmp:
        for k, point in enumerate(points):
            row = measure(point, args.budget, tmp)
            rows.append(row)
            print(" ".join(f"{key}={value}" for key, value in row.items()), flush=True)
            if "placements_per_s" not in row:
                for later in points[k + 1:]:
                    print(f"nodes={later.nodes} tasks={later.tasks} skipped=a smaller point did not converge",
                          flush=True)
                break
    text = "\n".join(" ".join(f"{k}={v}" for k, v in row.items()) for row in rows) + "\n"
    (out / "scale.txt").write_text(text)
    plot(rows, out / "scale.png")
    rates = [r["placements_per_s"] for r in rows if "placements_per_s" in r]
    if len(rates) >= 2:
        print(f"placements_per_s_ratio_last_first={rates[-1] / rates[0]:.2f}")
    print(f"plot={out / 'scale.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
