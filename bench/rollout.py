"""Rolling updates on a private 3-node local cluster (bench/_cluster.py).

    python bench/rollout.py     (root)

Figures, one ``key=value`` a line:

- ``update_failed_requests`` (target 0) / ``update_requests`` /
  ``update_rps``: a 10-replica HTTP service (busybox httpd, an HTTP probe
  every 100 ms) gets steady load through its VIP from a client container on
  n1 (the venv's Python in the container's network namespace, 8 threads, a
  new connection per GET) while a start-first update (parallelism 2, monitor
  1 s) rolls through; requests counted from the deploy's start to its end.
  ``update_s``: that rollout's time.
- ``rollout_s_100`` (target <= 5): 100 replicas, parallelism 10, monitor 0,
  the probe passing at once: from `orch deploy` of a changed spec to its
  exit (every task of the new spec running and healthy). Median of 3, each
  started once the previous run's replaced tasks have stopped.
- ``rollback_s`` (target <= 5): 10 replicas, monitor 1 s, failure_action
  rollback; the new spec exits at once. From the first task of the new spec
  failing (its status event) to `orch deploy` exiting 3 (the old spec
  running, healthy and monitored again). Median of 3.
- ``setup_s``, ``run_s``.

Asserts nothing about timings. Everything goes with the cluster (``orch
down --purge``), also on failure or Ctrl-C.
"""

from __future__ import annotations

import json
import signal
import statistics
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._cluster import RUN, cluster, orch
from bench.network import Bench, emit, netns_python

NETWORK = "rollbench_default"

SERVER = """\
    image: busybox
    command: [sh, -c, "mkdir -p /www && echo $$VERSION > /www/index.html && exec httpd -f -p 9000 -h /www"]
    stop_grace_period: 2s
    environment: {{VERSION: "{version}"}}
    x-orch:
      healthcheck:
        http: {{port: 9000, path: /}}
    healthcheck: {{interval: 100ms, timeout: 2s, retries: 2, start_period: 10s, start_interval: 100ms}}
"""

LOAD = """
import socket, sys, threading
host, port, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ok = failed = 0
kinds = {}
lock = threading.Lock()
stop = threading.Event()
def get():
    global ok, failed
    while not stop.is_set():
        try:
            with socket.create_connection((host, port), timeout=5) as s:
                s.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
                data = b""
                while chunk := s.recv(4096):
                    data += chunk
            good = data.startswith(b"HTTP/1.") and b" 200 " in data.split(b"\\r\\n", 1)[0]
            why = "" if good else "bad answer: " + data[:40].decode(errors="replace")
        except OSError as err:
            good, why = False, type(err).__name__ + ": " + str(err)[:60]
        with lock:
            if good: ok += 1
            else:
                failed += 1
                kinds[why] = kinds.get(why, 0) + 1
workers = [threading.Thread(target=get) for _ in range(threads)]
print("ready", flush=True)
for w in workers: w.start()
sys.stdin.readline()  # a line: start counting afresh
with lock: ok = failed = 0
sys.stdin.readline()  # another: stop
stop.set()
for w in workers: w.join()
print(ok, failed, repr(kinds), flush=True)
"""


def manifest(state: str, name: str, body: str) -> str:
    path = Path(state) / f"{name}.yaml"
    path.write_text("name: rollbench\nservices:\n" + body)
    return str(path)


def server(version: str, replicas: int, update: str, command: str = "") -> str:
    text = SERVER.format(version=version)
    if command:
        text = text.replace(text.splitlines()[1], f"    command: {command}")
    return ("  web:\n" + text + "    deploy:\n" + f"      replicas: {replicas}\n"
            + "      restart_policy: {condition: any, delay: 0s}\n" + f"      update_config: {update}\n"
            + "      rollback_config: {parallelism: 0, monitor: 1s}\n")


CLIENT = textwrap.dedent("""\
      client:
        image: busybox
        command: [sleep, "3600"]
        stop_grace_period: 1s
        deploy:
          placement: {constraints: ["node.hostname == n1"]}
    """)


def deploy(path: str) -> tuple[int, float]:
    t0 = time.monotonic()
    proc = orch("deploy", "-f", path, "--timeout", "600", check=False)
    took = time.monotonic() - t0
    if proc.returncode == 3:
        print(f"# {proc.stderr.strip()}", flush=True)
    if proc.returncode not in (0, 3):
        raise SystemExit(f"orch deploy {path}: exit {proc.returncode}: {proc.stderr.strip()}")
    return proc.returncode, took


def remove(*names: str) -> None:
    orch("rm", *names, check=False)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and any(t["service"] in names for t in json.loads(
            orch("ps", "-o", "json").stdout)):
        time.sleep(0.2)


def update_under_load(state: str, bench: Bench) -> None:
    update = "{parallelism: 2, monitor: 1s, order: start-first}"
    deploy(manifest(state, "load1", server("v1", 10, update) + textwrap.indent(CLIENT, "  ")))
    [doc] = json.loads(bench.orch("network", "inspect", NETWORK))
    vip = str(next(s["vip"] for s in doc["services"] if s["name"] == "web")).split("/")[0]
    pid = bench.container(bench.task("client"))["pid"]
    load = subprocess.Popen(netns_python(f"/proc/{pid}/ns/net", LOAD, vip, "9000", "8"),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert load.stdin is not None and load.stdout is not None
        if load.stdout.readline().strip() != "ready":
            raise SystemExit("the load generator did not start")
        time.sleep(1.0)  # warm up: connections flowing before the count starts
        load.stdin.write("count\n")
        load.stdin.flush()
        v2 = server("v2", 10, update) + textwrap.indent(CLIENT, "  ")
        _, took = deploy(manifest(state, "load2", v2))
        load.stdin.write("stop\n")
        load.stdin.flush()
        ok_text, failed_text, kinds = load.stdout.readline().split(" ", 2)
        ok, failed = int(ok_text), int(failed_text)
        if failed:
            print(f"# failed requests by kind: {kinds.strip()}", flush=True)
    finally:
        load.kill()
        load.wait()
    emit("update_failed_requests", str(failed))
    emit("update_requests", str(ok + failed))
    emit("update_rps", (ok + failed) / took, 0)
    emit("update_s", took)
    remove("web", "client")


def settled(name: str, timeout: float = 120) -> None:
    """Until every task of ``name`` told to stop has stopped (a replaced
    httpd takes its 1 s drain and 2 s grace: it ignores SIGTERM)."""
    ended = ("complete", "failed", "shutdown", "rejected", "orphaned")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tasks = json.loads(orch("ps", name, "--all", "-o", "json").stdout)
        if all(t["state"] in ended for t in tasks if t["desired"] != "running"):
            return
        time.sleep(0.2)
    raise SystemExit(f"the replaced tasks of {name} did not stop within {timeout:.0f} s")


def rollout_100(state: str) -> None:
    update = "{parallelism: 10, monitor: 0s}"
    deploy(manifest(state, "big0", server("v0", 100, update)))
    took = []
    for i in range(1, 4):
        settled("web")  # each run times its own rollout, not the last one's teardown too
        _, seconds = deploy(manifest(state, f"big{i}", server(f"v{i}", 100, update)))
        took.append(seconds)
    emit("rollout_s_100", statistics.median(took))
    emit("rollout_s_100_runs", ",".join(f"{t:.2f}" for t in took))
    remove("web")


def first_failure(stop: threading.Event, seen: list[float]) -> None:
    """Stamps the first task event of ``web`` in state failed (the Events stream)."""
    import grpc

    from proto import cluster_pb2 as cpb
    from proto import cluster_pb2_grpc as cpb_grpc

    rec = json.loads((Path(RUN) / "cluster.json").read_text())
    channel = grpc.insecure_channel(f"unix://{rec['sockets'][0]}")
    stream = cpb_grpc.ClusterAPIStub(channel).Events(cpb.EventsRequest(services=["web"]))
    threading.Thread(target=lambda: (stop.wait(), stream.cancel()), daemon=True).start()
    try:
        for event in stream:
            if event.WhichOneof("object") == "task" and event.task.status.state == cpb.TASK_STATE_FAILED:
                seen.append(time.monotonic())
                return
    except grpc.RpcError:
        pass
    finally:
        channel.close()


def rollback(state: str) -> None:
    update = "{parallelism: 1, monitor: 1s, failure_action: rollback}"
    took = []
    for i in range(3):
        deploy(manifest(state, f"rb{i}a", server(f"good{i}", 10, update)))
        stop, seen = threading.Event(), list[float]()
        watcher = threading.Thread(target=first_failure, args=(stop, seen))
        watcher.start()
        time.sleep(0.3)  # the stream is open before the deploy
        bad = server(f"bad{i}", 10, update, command="[sh, -c, 'exit 1']")
        code, _ = deploy(manifest(state, f"rb{i}b", bad))
        ended = time.monotonic()
        stop.set()
        watcher.join(10)
        if code != 3 or not seen:
            raise SystemExit(f"the failing update was not rolled back (exit {code}): "
                             f"{orch('ps', 'web', '--all').stdout}")
        took.append(ended - seen[0])
    emit("rollback_s", statistics.median(took))
    emit("rollback_s_runs", ",".join(f"{t:.2f}" for t in took))
    remove("web")


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    t0 = time.monotonic()
    with cluster(3) as state:
        emit("setup_s", time.monotonic() - t0)
        bench = Bench()
        update_under_load(state, bench)
        rollout_100(state)
        rollback(state)
    emit("run_s", time.monotonic() - t0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
