"""Service networking on a private 3-node local cluster (bench/_cluster.py):
overlay throughput, the VIP's cost, DNS latency, the routing mesh's cost and
how fast a VIP drops a stopped task.

    python bench/network.py     (root; needs iperf3: apt-get install -y iperf3)

One stack, ``netbench``, on its default overlay network; n1 holds only the
client, the servers are pinned to n2 (``mover`` avoids n1)::

    client  n1   iperf image, idle: the client end of every measurement
    near    n2   iperf image, idle: the bridge peer of ``iperf``
    iperf   n2   iperf3 -s
    echo    n2   idle; the bench runs a tiny TCP responder in its netns
    web     n2   busybox httpd, published 18500:8080 (ingress)
    mover   n2/n3  2 idle replicas, killed in turn

Figures, one ``key=value`` a line, each target as ``KEY_target_min/max``:

- ``overlay_gbps`` / ``bridge_gbps`` / ``overlay_ratio_vs_bridge``: iperf3
  (-t 3, TCP, run inside containers of an image of busybox plus the host's
  iperf3 and its libraries: bench/_iperf_image.py) from ``client`` on n1 to
  ``iperf``'s overlay address on n2, against ``near`` to ``iperf``'s ``orch0``
  address (eth0) on n2; runs interleaved, median of 3 each.
- ``vip_connect_us_p50/p99``, ``direct_connect_us_p50/p99``,
  ``vip_added_us_p50``: TCP connect, 5 bytes out, 5 back, close, to ``echo``'s
  VIP and to its task address, alternately, 1,000 each (after 100 untimed).
  The client is the venv's Python run by ``nsenter --net`` in ``client``'s
  network namespace, and the responder the same in ``echo``'s: a network
  namespace is all the path depends on, Python's ``perf_counter_ns`` gives
  the precision busybox lacks, and an accept loop that does not fork (as
  busybox's servers do) keeps a fork's jitter out of a difference of tens
  of microseconds. Python's own cost is in both figures alike.
- ``dns_ms_p50/p99/max``: 1,000 lookups in turn (after 100 untimed) of
  service and ``tasks.`` names, from ``client``'s namespace to 127.0.0.11:53:
  the socket n1's agent holds for that container, as its programs use it.
- ``mesh_rps`` / ``direct_rps`` / ``mesh_rps_ratio``: HTTP/1.0 GETs (a new
  connection each, 2 at a time) from the host to port 18500 of n1, which
  has no replica (the mesh DNATs over the overlay to n2), against n2's (its
  own replica); 0.25 s slices taking turns, 3 s each in all, so both share
  the machine's noise.
- ``converge_after_move_ms``: a ``mover`` container's PID 1 is SIGKILLed (a
  crash: nobody warns the control plane; the task fails and the
  orchestrator starts a replacement elsewhere or there); the clock stops
  when n1's ``svc_<VIP>`` chain in ``ip orch_svc`` (polled every 5 ms, an
  ``nft`` process each) no longer jumps to the task's address.
  ``converge_dns_after_move_ms``: the same for ``tasks.mover`` asked from
  ``client`` every 2 ms. Median of 3 kills, each once the previous
  replacement runs and is in the VIP; ``converge_moves_ms`` lists them.
- ``setup_s``, ``run_s``: the cluster, image and deploy; the whole run.

Asserts nothing about timings. Everything goes with the cluster
(``orch down --purge``) and the temp dir, also on failure, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._cluster import ENV, RUN, cluster, running
from bench._common import ORCH, percentile, tempdir
from bench._iperf_image import IPERF, import_on_nodes, iperf_rootfs

STACK = "netbench"
NETWORK = f"{STACK}_default"
IMAGE = "netbench-iperf:1"
MESH_PORT = 18500
ECHO_PORT = 9000
IPERF_RUNS = 3
MOVES = 3
LOOP = "trap 'exit 0' TERM; while true; do sleep 1; done"


def on(node: str, op: str = "==") -> dict[str, Any]:
    return {"placement": {"constraints": [f"node.hostname {op} {node}"]}}


def idle(image: str, deploy: dict[str, Any]) -> dict[str, Any]:
    return {"image": image, "command": ["sh", "-c", LOOP], "stop_grace_period": "1s", "deploy": deploy}


# The manifest (JSON is YAML).
SERVICES: dict[str, dict[str, Any]] = {
    "client": idle(IMAGE, on("n1")),
    "near": idle(IMAGE, on("n2")),
    "iperf": {"image": IMAGE, "command": ["iperf3", "-s"], "stop_grace_period": "1s", "deploy": on("n2")},
    "echo": idle("busybox", on("n2")),
    "web": {"image": "busybox", "command": ["httpd", "-f", "-p", "8080", "-h", "/www"],
            "stop_grace_period": "1s", "ports": [f"{MESH_PORT}:8080"], "deploy": on("n2")},
    "mover": idle("busybox", {"replicas": 2, **on("n1", "!=")}),
}

# Run by the venv's Python in a container's network namespace.
RESPONDER = r"""
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(512)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    with c:
        if c.recv(64):
            c.sendall(b"pong\n")
"""

CONNECTS = r"""
import json, socket, sys, time
targets, port, n = sys.argv[1].split(","), int(sys.argv[2]), int(sys.argv[3])
out = {t: [] for t in targets}
for i in range(n + 100):
    for t in targets:
        t0 = time.perf_counter_ns()
        with socket.create_connection((t, port), timeout=5) as s:
            s.sendall(b"ping\n")
            reply = s.recv(64)
        t1 = time.perf_counter_ns()
        assert reply == b"pong\n", (t, reply)
        if i >= 100:
            out[t].append((t1 - t0) / 1e3)
print(json.dumps(out))
"""

LOOKUPS = r"""
import json, socket, sys, time
from dnslib import DNSRecord
names, n = sys.argv[1].split(","), int(sys.argv[2])
queries = [DNSRecord.question(names[i % len(names)]).pack() for i in range(n + 100)]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect(("127.0.0.11", 53))
s.settimeout(5)
out = []
for i, q in enumerate(queries):
    t0 = time.perf_counter_ns()
    s.send(q)
    reply = s.recv(4096)
    t1 = time.perf_counter_ns()
    parsed = DNSRecord.parse(reply)
    assert parsed.header.id == DNSRecord.parse(q).header.id and parsed.header.rcode == 0 and parsed.rr, parsed
    if i >= 100:
        out.append((t1 - t0) / 1e6)
print(json.dumps(out))
"""

# Asks for NAME every 2 ms; says "ready" once ADDRESS is among the answers,
# then prints time.monotonic() (the same clock as the bench's) when it is not.
DNS_WATCH = r"""
import socket, sys, time
from dnslib import DNSRecord
name, address = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect(("127.0.0.11", 53))
s.settimeout(1)
seen, deadline = False, time.monotonic() + 60
while time.monotonic() < deadline:
    q = DNSRecord.question(name)
    s.send(q.pack())
    try:
        reply = DNSRecord.parse(s.recv(4096))
    except socket.timeout:
        continue
    now = time.monotonic()
    there = reply.header.id == q.header.id and address in {str(rr.rdata) for rr in reply.rr}
    if there and not seen:
        seen = True
        print("ready", flush=True)
    elif seen and not there and reply.header.id == q.header.id:
        print(now, flush=True)
        break
    time.sleep(0.002)
else:
    print("timeout", flush=True)
"""


class Bench:
    """The cluster as the measurements see it: its record, tasks, containers."""

    def __init__(self) -> None:
        rec = json.loads((Path(RUN) / "cluster.json").read_text())
        self.nodes: dict[str, dict[str, str]] = {n["name"]: n for n in rec["nodes"]}

    def orch(self, *args: str, host: str = "", timeout: float = 120) -> str:
        env = {**ENV, "ORCH_HOST": f"unix://{self.nodes[host]['run_dir']}/agent.sock"} if host else ENV
        proc = subprocess.run([*ORCH, *args], env=env, text=True, capture_output=True, timeout=timeout)
        if proc.returncode != 0:
            raise SystemExit(f"orch {' '.join(args)}: exit {proc.returncode}: {proc.stderr.strip()}")
        return proc.stdout

    def task(self, service: str) -> dict[str, Any]:
        tasks = running(service)
        if not tasks:
            raise SystemExit(f"no running task of {service}")
        return tasks[0]

    def container(self, task: dict[str, Any]) -> dict[str, Any]:
        """The task's container as its node's agent shows it (pid, orch0 address)."""
        [doc] = json.loads(self.orch("inspect", ref(task), host=task["node"]))
        return dict(doc)

    def vip(self, service: str) -> str:
        [doc] = json.loads(self.orch("network", "inspect", NETWORK))
        return str(next(s["vip"] for s in doc["services"] if s["name"] == service)).split("/")[0]

    def node_host(self, node: str) -> str:
        return self.nodes[node]["address"]

    def node_netns(self, node: str) -> str:
        return f"/run/netns/{self.nodes[node]['netns']}"


def ref(task: dict[str, Any]) -> str:
    return f"{task['service']}.{task['slot']}.{task['id'][:8]}"


def overlay_address(task: dict[str, Any]) -> str:
    [attachment] = [n for n in task["networks"] if n["network"] == NETWORK]
    return str(attachment["address"]).split("/")[0]


def netns_python(netns: str, code: str, *args: str) -> list[str]:
    return ["nsenter", f"--net={netns}", sys.executable, "-c", code, *args]


def netns_run(netns: str, code: str, *args: str) -> str:
    proc = subprocess.run(netns_python(netns, code, *args), capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise SystemExit(f"helper in {netns} failed: {proc.stderr.strip()}")
    return proc.stdout


@contextlib.contextmanager
def netns_process(netns: str, code: str, *args: str) -> Iterator[subprocess.Popen[str]]:
    """A helper Python in ``netns`` that prints ``ready`` first; killed after."""
    proc = subprocess.Popen(netns_python(netns, code, *args), stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if line != "ready":
            raise SystemExit(f"helper in {netns} did not start: {line!r}")
        yield proc
    finally:
        proc.kill()
        proc.wait()


def emit(key: str, value: float | str, digits: int = 2) -> None:
    print(f"{key}={value:.{digits}f}" if isinstance(value, float) else f"{key}={value}", flush=True)


# ---- throughput ---------------------------------------------------------------------------

def iperf_gbps(bench: Bench, client: dict[str, Any], server: str) -> float:
    out = bench.orch("exec", ref(client), "iperf3", "-c", server, "-t", "3", "-J", timeout=60)
    return float(json.loads(out)["end"]["sum_received"]["bits_per_second"]) / 1e9


def throughput(bench: Bench) -> None:
    server = bench.task("iperf")
    overlay_ip, bridge_ip = overlay_address(server), bench.container(server)["ip_address"]
    client, near = bench.task("client"), bench.task("near")
    assert client["node"] != server["node"] == near["node"], (client, server, near)
    overlay, bridge = [], []
    for _ in range(IPERF_RUNS):
        overlay.append(iperf_gbps(bench, client, overlay_ip))
        bridge.append(iperf_gbps(bench, near, bridge_ip))
    ov, br = statistics.median(overlay), statistics.median(bridge)
    emit("overlay_gbps_runs", ",".join(f"{g:.2f}" for g in overlay))
    emit("bridge_gbps_runs", ",".join(f"{g:.2f}" for g in bridge))
    emit("overlay_gbps", ov)
    emit("bridge_gbps", br)
    emit("overlay_ratio_vs_bridge", ov / br)
    emit("overlay_ratio_vs_bridge_target_min", 0.6, 1)


# ---- VIP connect latency ------------------------------------------------------------------

def connect_latency(bench: Bench, n: int = 1000) -> None:
    echo, client = bench.task("echo"), bench.task("client")
    vip, direct = bench.vip("echo"), overlay_address(echo)
    server_ns = f"/proc/{bench.container(echo)['pid']}/ns/net"
    client_ns = f"/proc/{bench.container(client)['pid']}/ns/net"
    with netns_process(server_ns, RESPONDER, str(ECHO_PORT)):
        samples = json.loads(netns_run(client_ns, CONNECTS, f"{vip},{direct}", str(ECHO_PORT), str(n)))
    for name, addr in (("vip", vip), ("direct", direct)):
        emit(f"{name}_connect_us_p50", percentile(samples[addr], 50), 1)
        emit(f"{name}_connect_us_p99", percentile(samples[addr], 99), 1)
    emit("vip_added_us_p50", percentile(samples[vip], 50) - percentile(samples[direct], 50), 1)
    emit("vip_added_us_p50_target_max", 50.0, 0)


# ---- DNS ----------------------------------------------------------------------------------

def dns_latency(bench: Bench, n: int = 1000) -> None:
    client_ns = f"/proc/{bench.container(bench.task('client'))['pid']}/ns/net"
    names = "echo,tasks.mover,web,tasks.echo"
    samples = json.loads(netns_run(client_ns, LOOKUPS, names, str(n)))
    emit("dns_lookups", str(len(samples)))
    emit("dns_ms_p50", percentile(samples, 50), 3)
    emit("dns_ms_p99", percentile(samples, 99), 3)
    emit("dns_ms_max", max(samples), 3)
    emit("dns_ms_p99_target_max", 2.0, 1)


# ---- routing mesh -------------------------------------------------------------------------

def http_get(host: str, port: int) -> None:
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.0\r\nHost: bench\r\n\r\n")
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    if not reply.startswith(b"HTTP/1.") or b" 200 " not in reply.split(b"\r\n", 1)[0]:
        raise SystemExit(f"{host}:{port}: unexpected reply {reply[:60]!r}")


def drive(host: str, port: int, seconds: float, concurrency: int) -> tuple[int, float]:
    """Requests done and time taken by ``concurrency`` sequential clients."""
    counts = [0] * concurrency
    errors: list[OSError | SystemExit] = []
    stop = time.monotonic() + seconds

    def client(i: int) -> None:
        try:
            while time.monotonic() < stop:
                http_get(host, port)
                counts[i] += 1
        except (OSError, SystemExit) as err:  # reported below, in the main thread
            errors.append(err)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(concurrency)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise SystemExit(f"{host}:{port}: {errors[0]}")
    return sum(counts), time.monotonic() - t0


def mesh(bench: Bench, slices: int = 12, slice_s: float = 0.25, concurrency: int = 2) -> None:
    web = running("web")
    [replica] = web
    spare = next(n for n in sorted(bench.nodes) if all(t["node"] != n for t in web))
    targets = {"mesh": bench.node_host(spare), "direct": bench.node_host(replica["node"])}
    totals = {k: [0, 0.0] for k in targets}
    for host in targets.values():
        http_get(host, MESH_PORT)  # warm: ARP, the first connection's conntrack
    for _ in range(slices):
        for key, host in targets.items():
            done, took = drive(host, MESH_PORT, slice_s, concurrency)
            totals[key][0] += done
            totals[key][1] += took
    rps = {k: c / t for k, (c, t) in totals.items()}
    emit("mesh_rps", rps["mesh"], 0)
    emit("direct_rps", rps["direct"], 0)
    emit("mesh_rps_ratio", rps["mesh"] / rps["direct"])
    emit("mesh_rps_ratio_target_min", 0.8, 1)


# ---- convergence --------------------------------------------------------------------------

def vip_targets(bench: Bench, node: str, vip: str) -> str | None:
    """n1's ``svc_<VIP>`` chain as JSON text (None while nft cannot list it)."""
    chain = "svc_" + vip.replace(".", "_")
    proc = subprocess.run(["nsenter", f"--net={bench.node_netns(node)}", "nft", "-j", "list", "chain",
                           "ip", "orch_svc", chain], capture_output=True, text=True)
    return proc.stdout if proc.returncode == 0 else None


def in_vip(chain: str | None, address: str) -> bool:
    return chain is not None and json.dumps("ep_" + address.replace(".", "_")) in chain


def until(pred: Callable[[], bool], what: str, timeout: float = 60, interval: float = 0.005) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return time.monotonic()
        time.sleep(interval)
    raise SystemExit(f"timed out waiting for {what}")


def settled(bench: Bench, node: str, vip: str) -> list[dict[str, Any]]:
    """Both movers run and both are in the VIP as ``node`` has it."""
    def ready() -> bool:
        tasks[:] = running("mover")
        chain = vip_targets(bench, node, vip)
        return len(tasks) == 2 and all(in_vip(chain, overlay_address(t)) for t in tasks)

    tasks: list[dict[str, Any]] = []
    until(ready, "both movers in the VIP", interval=0.2)
    return tasks


def converge(bench: Bench) -> None:
    client = bench.task("client")
    node, vip = client["node"], bench.vip("mover")
    client_ns = f"/proc/{bench.container(client)['pid']}/ns/net"
    vip_ms, dns_ms = [], []

    def dropped(address: str) -> bool:
        chain = vip_targets(bench, node, vip)  # None (nft failed) decides nothing
        return chain is not None and not in_vip(chain, address)

    for i in range(MOVES):
        victim = sorted(settled(bench, node, vip), key=lambda t: str(t["id"]))[i % 2]
        address, pid = overlay_address(victim), int(bench.container(victim)["pid"])
        with netns_process(client_ns, DNS_WATCH, "tasks.mover", address) as watch:
            t0 = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            gone = until(functools.partial(dropped, address), "the VIP to drop it")
            assert watch.stdout is not None
            line = watch.stdout.readline().strip()
            if line in ("", "timeout"):
                raise SystemExit(f"tasks.mover still answered {address} after 60 s")
        vip_ms.append((gone - t0) * 1000)
        dns_ms.append((float(line) - t0) * 1000)
    emit("converge_moves_ms", ",".join(f"{v:.0f}" for v in vip_ms))
    emit("converge_after_move_ms", statistics.median(vip_ms), 0)
    emit("converge_dns_after_move_ms", statistics.median(dns_ms), 0)
    emit("converge_after_move_ms_target_max", 1000.0, 0)


# ---- main ---------------------------------------------------------------------------------

def deploy(bench: Bench, state: str) -> None:
    stack = Path(state) / STACK  # the stack is named after the manifest's directory
    stack.mkdir()
    (stack / "stack.yaml").write_text(json.dumps({"services": SERVICES}, indent=2))
    bench.orch("deploy", "-f", str(stack / "stack.yaml"), timeout=300)


def stop(signum: int, _frame: object) -> None:
    """SIGTERM unwinds through the clean-ups like Ctrl-C; a second one
    does not cut them short."""
    signal.signal(signum, signal.SIG_IGN)
    raise SystemExit(128 + signum)


def main() -> int:
    if os.geteuid() != 0:
        print("bench/network.py needs root (a local cluster)", file=sys.stderr)
        return 1
    if not shutil.which("iperf3") or not os.path.exists(IPERF):
        print(f"bench/network.py needs {IPERF}: apt-get install -y iperf3 (scripts/setup lists it)",
              file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, stop)
    t0 = time.monotonic()
    with tempdir() as tmp, cluster(3) as state:
        bench = Bench()
        rootfs = iperf_rootfs(Path(tmp) / "rootfs")
        import_on_nodes(rootfs, IMAGE, [n["run_dir"] for n in bench.nodes.values()])
        deploy(bench, state)
        emit("setup_s", time.monotonic() - t0, 1)
        throughput(bench)
        connect_latency(bench)
        dns_latency(bench)
        mesh(bench)
        converge(bench)
    emit("run_s", time.monotonic() - t0, 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
