"""What mutual TLS costs: the CLI's local fast path, a deploy driven over
mutual TLS against one over the local unix socket, and a fresh TLS
connection's first call.

    python bench/tls.py     (root; $ORCH_BENCH_SLOT picks the cluster's names)

Figures, one ``key=value`` a line (the medians with their runs as ``KEY_runs``):

- ``cli_ratio_vs_runc`` (target <= 0.8): bench/runtime_start.py's measurement
  (its functions): ``orch run --rm --network none`` of a busybox rootfs over a
  throwaway agent's unix socket against ``runc run`` of the same rootfs,
  alternating, 20 runs each after 3 untimed; medians ``orch_run_cli_ms`` and
  ``runc_ms``. ``cli_imports_grpc`` (target 0): whether that same ``orch run``
  imports grpcio (``PYTHONPROFILEIMPORTTIME``: the command as a user runs it).
  ``cluster_socket_cli_imports_grpc``: the same for a cluster command over the
  control plane's unix socket (``orch -C unix://... services``), for
  comparison.
- ``mtls_deploy_overhead`` (target <= 1.15): on one ``orch up --nodes 3``
  cluster (bench/_cluster.py), ``orch deploy -f`` of a 100-replica busybox
  service, timed from the start of the command to its exit (its own follow
  ends once every replica runs), driven (a) over TCP with mutual TLS (``-C
  127.0.0.1:PORT`` with the admin certificate of ``orch up`` as
  ``$ORCH_CERT_PATH``) and (b) over the root-only unix socket (``-C
  unix://SOCKET``, no certificate). One untimed pair first (the stack's
  network is made, the image is read); then 7 pairs, the order swapped every
  pair. Between runs the service is removed and the next run starts once no
  task of it is left (every one stopped) and no node holds a container of
  it (each node's agent, ``orch ps -a``). Medians ``deploy100_mtls_s`` and
  ``deploy100_socket_s``; the ratio is mTLS over socket.
  ``deploy_call_mtls_ms`` / ``deploy_call_socket_ms``: the part of those runs
  until the command prints ``deployed`` (the interpreter's start, imports,
  the connection with its handshake, the Deploy call), where the two links
  differ most; the rest, the follow until every replica runs, is mostly
  the cluster's work (its event stream rides the same link).
- ``tls_handshake_ms``: a new ``orch.cli.tlschannel.TLSChannel`` (the CLI's
  mutual-TLS channel over grpcio: its certificate files loaded and checked,
  TCP, the TLS handshake, HTTP/2) and its first call, ClusterAPI Info, until
  the answer; against ``h2_socket_call_ms``: a new ``orch.cli.h2grpc.Channel``
  on the unix socket and the same call. Alternating, 20 each after 2 untimed;
  ``tls_handshake_ratio`` is the first over the second. ``tls_warm_call_ms``
  and ``h2_socket_warm_call_ms``: a second call on each channel, for scale.
- ``setup_s`` (the cluster's ``orch up``), ``run_s`` (the whole bench).

Asserts nothing about timings. Everything goes at the end, also on failure
or SIGTERM: the agent with its containers, the cluster (``orch down
--purge``), the temporary directories.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._cluster import ENV, RUN, cluster, orch, running
from bench._common import ORCH, agent, busybox_rootfs, median_ms, tempdir
from bench.runtime_start import orch_cli, runc_bundle, runc_run

CLI_RUNS, CLI_WARMUP = 20, 3
SERVICE, REPLICAS, PAIRS = "tlsload", 100, 7
CALLS, CALL_WARMUP = 20, 2
INFO = "/orch.cluster.v1.ClusterAPI/Info"
TLS_ENV = ("ORCH_CERT_PATH", "ORCH_TLS_CACERT", "ORCH_TLS_CERT", "ORCH_TLS_KEY")


def emit(key: str, value: float | str, digits: int = 2) -> None:
    print(f"{key}={value:.{digits}f}" if isinstance(value, float) else f"{key}={value}", flush=True)


def emit_runs(key: str, samples: list[float], scale: float = 1.0, digits: int = 2) -> None:
    emit(f"{key}_runs", ",".join(f"{s * scale:.{digits}f}" for s in samples))


# ---- 1. the CLI's local path ------------------------------------------------------------

def imported(command: list[str], env: dict[str, str]) -> list[str]:
    """The modules ``command`` (a Python program) imports, from its
    ``-X importtime`` report; it must succeed."""
    proc = subprocess.run(command, env={**env, "PYTHONPROFILEIMPORTTIME": "1"}, text=True,
                          capture_output=True, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)}: exit {proc.returncode}: {proc.stderr.strip()[-500:]}")
    modules = [line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines()
               if line.startswith("import time:") and line.count("|") == 2]
    modules = [m for m in modules if m != "imported package"]  # the report's header
    if not modules:
        raise SystemExit(f"{' '.join(command)}: no import-time report (PYTHONPROFILEIMPORTTIME ignored?)")
    return modules


def grpc_among(modules: list[str]) -> int:
    return int(any(m == "grpc" or m.startswith("grpc.") for m in modules))


def cli_fast_path() -> None:
    with tempdir() as tmp_s:
        tmp = Path(tmp_s)
        rootfs = busybox_rootfs(tmp / "rootfs")
        bundle = runc_bundle(rootfs, tmp)
        with agent(tmp / "agent") as env:
            subprocess.run([*ORCH, "image", "import", str(rootfs), "bench-busybox"], check=True,
                           env=env, capture_output=True)
            command = [*ORCH, "run", "--rm", "--network", "none", "bench-busybox", "/bin/true"]
            uses_grpc = grpc_among(imported(command, env))
            cli: list[float] = []
            runc: list[float] = []
            for i in range(CLI_WARMUP + CLI_RUNS):
                a, b = orch_cli(env), runc_run(bundle)
                if i >= CLI_WARMUP:
                    cli.append(a)
                    runc.append(b)
    emit("orch_run_cli_ms", median_ms(cli), 1)
    emit_runs("orch_run_cli_ms", cli, 1000, 1)
    emit("runc_ms", median_ms(runc), 1)
    emit_runs("runc_ms", runc, 1000, 1)
    emit("cli_ratio_vs_runc", median_ms(cli) / median_ms(runc))
    emit("cli_imports_grpc", str(uses_grpc))


# ---- 2. deploy over mutual TLS and over the unix socket ----------------------------------

class Links:
    """The two ways the CLI reaches the cluster's control plane."""

    def __init__(self, record: dict[str, Any]) -> None:
        self.tcp = str(record["controlplane"])  # 127.0.0.1:PORT
        self.socket = f"unix://{record['sockets'][0]}"
        self.cert_path = str(record["cert_path"])
        self.nodes: list[dict[str, str]] = list(record["nodes"])
        plain = {k: v for k, v in ENV.items() if k not in TLS_ENV}
        self.how: dict[str, tuple[list[str], dict[str, str]]] = {
            "mtls": (["-C", self.tcp], {**plain, "ORCH_CERT_PATH": self.cert_path}),
            "socket": (["-C", self.socket], plain),
        }

    def command(self, link: str, *args: str) -> tuple[list[str], dict[str, str]]:
        flags, env = self.how[link]
        return [*ORCH, *flags, *args], env


def manifest(state: str) -> str:
    path = Path(state) / f"{SERVICE}.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: tlsbench
        services:
          {SERVICE}:
            image: busybox
            command: ["sleep", "3600"]
            stop_grace_period: 1s
            deploy:
              replicas: {REPLICAS}
    """))
    return str(path)


def timed_deploy(links: Links, link: str, path: str) -> tuple[float, float]:
    """Seconds until ``orch deploy`` exits, and until it says ``deployed``
    (its start, the connection and the Deploy call, before the follow)."""
    command, env = links.command(link, "deploy", "-f", path, "--timeout", "600")
    called = 0.0
    output = []
    t0 = time.monotonic()
    with subprocess.Popen(command, env=env, text=True, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if not called and line.startswith("deployed "):
                called = time.monotonic() - t0
            output.append(line)
    took = time.monotonic() - t0
    if proc.returncode != 0 or not called:
        raise SystemExit(f"orch deploy over {link}: exit {proc.returncode}: {''.join(output[-5:]).strip()}")
    count = len(running(SERVICE))
    if count != REPLICAS:
        raise SystemExit(f"orch deploy over {link} exited with {count} of {REPLICAS} replicas running")
    return took, called


def until(what: str, pred: Callable[[], bool], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.2)


def containers(node: dict[str, str]) -> int:
    """The containers a node's agent holds, stopped ones too."""
    env = {**ENV, "ORCH_HOST": f"unix://{node['run_dir']}/agent.sock"}
    return len(subprocess.run([*ORCH, "ps", "-a", "-q"], env=env, text=True, capture_output=True,
                              check=True).stdout.split())


def remove(links: Links) -> None:
    """Remove the service; back once no task of it is left (every one
    stopped), and then once the nodes hold none of its containers (an agent
    removes a stopped task's container a few seconds later: a deploy started
    meanwhile would share the nodes with that work). The cluster runs
    nothing else."""
    orch("rm", SERVICE)

    def stopped() -> bool:
        services = json.loads(orch("services", "-o", "json").stdout)
        tasks = json.loads(orch("ps", "-o", "json").stdout)
        return (not any(s["spec"]["name"] == SERVICE for s in services)
                and not any(t["service"] == SERVICE for t in tasks))

    until(f"the tasks of {SERVICE} to stop", stopped)
    until(f"the containers of {SERVICE} to go", lambda: not any(map(containers, links.nodes)))


def deploy_overhead(state: str, links: Links) -> None:
    path = manifest(state)
    for link in ("socket", "mtls"):  # untimed: the stack's network, the image read on each node
        timed_deploy(links, link, path)
        remove(links)
    took: dict[str, list[float]] = {"mtls": [], "socket": []}
    called: dict[str, list[float]] = {"mtls": [], "socket": []}
    for i in range(PAIRS):
        for link in ("mtls", "socket") if i % 2 == 0 else ("socket", "mtls"):
            whole, call = timed_deploy(links, link, path)
            took[link].append(whole)
            called[link].append(call)
            remove(links)
    mtls, sock = statistics.median(took["mtls"]), statistics.median(took["socket"])
    emit("deploy100_mtls_s", mtls)
    emit_runs("deploy100_mtls_s", took["mtls"])
    emit("deploy100_socket_s", sock)
    emit_runs("deploy100_socket_s", took["socket"])
    emit("mtls_deploy_overhead", mtls / sock)
    print("# mtls_deploy_overhead isolates the CLI's own link: the agents' sessions and the control "
          "plane's calls to the nodes are mutual TLS in both runs (there is no plaintext mode to "
          "compare with), and those sessions handshake once, when a node connects, not per deploy.",
          flush=True)
    for link in ("mtls", "socket"):
        emit(f"deploy_call_{link}_ms", median_ms(called[link]), 1)
        emit_runs(f"deploy_call_{link}_ms", called[link], 1000, 1)
    command, env = links.command("socket", "services")
    emit("cluster_socket_cli_imports_grpc", str(grpc_among(imported(command, env))))


# ---- 3. a fresh TLS connection's first call ----------------------------------------------

def handshakes(links: Links) -> None:
    from orch.cli.h2grpc import Channel
    from orch.cli.tlschannel import CERT_PATH_FILES, CLITLS, TLSChannel
    from proto import cluster_pb2 as cpb

    ca, cert, key = (os.path.join(links.cert_path, f) for f in CERT_PATH_FILES)
    tls = CLITLS(ca, cert, key)
    sock = links.socket.removeprefix("unix://")

    def first_and_warm(open_channel: Callable[[], Any]) -> tuple[float, float]:
        t0 = time.perf_counter()
        channel = open_channel()
        try:
            reply = channel.unary(INFO, b"", timeout=10)
            t1 = time.perf_counter()
            channel.unary(INFO, b"", timeout=10)
            t2 = time.perf_counter()
        finally:
            channel.close()
        if not cpb.InfoResponse.FromString(reply).controlplane_id:
            raise SystemExit("ClusterAPI Info answered without a control-plane id")
        return t1 - t0, t2 - t1

    contenders = {"tls": lambda: TLSChannel(links.tcp, tls), "h2": lambda: Channel(sock)}
    first: dict[str, list[float]] = {k: [] for k in contenders}
    warm: dict[str, list[float]] = {k: [] for k in contenders}
    for i in range(CALL_WARMUP + CALLS):
        order = list(contenders) if i % 2 == 0 else list(reversed(contenders))
        for name in order:
            a, b = first_and_warm(contenders[name])
            if i >= CALL_WARMUP:
                first[name].append(a)
                warm[name].append(b)
    emit("tls_handshake_ms", median_ms(first["tls"]))
    emit_runs("tls_handshake_ms", first["tls"], 1000)
    emit("h2_socket_call_ms", median_ms(first["h2"]))
    emit_runs("h2_socket_call_ms", first["h2"], 1000)
    emit("tls_handshake_ratio", median_ms(first["tls"]) / median_ms(first["h2"]))
    emit("tls_warm_call_ms", median_ms(warm["tls"]))
    emit("h2_socket_warm_call_ms", median_ms(warm["h2"]))


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    t0 = time.monotonic()
    cli_fast_path()
    t1 = time.monotonic()
    with cluster(3) as state:
        emit("setup_s", time.monotonic() - t1)
        links = Links(json.loads((Path(RUN) / "cluster.json").read_text()))
        deploy_overhead(state, links)
        handshakes(links)
    emit("run_s", time.monotonic() - t0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
