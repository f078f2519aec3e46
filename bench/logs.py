"""Logs and build output, end to end, into a pipe.

    python bench/logs.py     (root)

Figures, one ``key=value`` a line:

- ``logs_lines_per_s`` (target >= 50,000): `orch logs SVC` of 20 tasks that
  each printed 10,000 lines, on a private 3-node cluster (bench/_cluster.py),
  through the control plane to a pipe; lines counted at the reader. Median
  of 3 (``logs_runs``).
- ``logs_cat_lines_per_s``: the floor's peer, the same lines read straight
  from the agents' log files with ``cat`` into a pipe, and
  ``logs_vs_cat_ratio``, how much of that `orch logs` keeps.
- ``build_output_lines_per_s`` (target >= 200,000): `orch build` of a
  Containerfile whose RUN step prints 2,000,000 short lines, on a throwaway
  engine agent, to a pipe: lines over the build's whole time (also printed,
  ``build_s``). Median of 3.
- ``build_quiet_s``: the same build with the output sent to /dev/null inside
  the step, the peer: what the build costs without the output.

Asserts nothing about timings; everything it starts goes with it.
"""

from __future__ import annotations

import glob
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._cluster import ENV, cluster, orch
from bench._common import ORCH, agent, busybox_rootfs, tempdir
from bench.network import emit

TASKS, LINES = 20, 10_000
BUILD_LINES = 2_000_000
ROUNDS = 3

SERVICE = f"""\
services:
  chatty:
    image: busybox
    command: [sh, -c, "seq 1 {LINES} | sed 's/^/a log line of ordinary length, number /'; exec sleep 3600"]
    stop_grace_period: 1s
    deploy:
      replicas: {TASKS}
"""


def count_lines(cmd: list[str], env: dict[str, str]) -> tuple[int, float]:
    """Run ``cmd`` with its stdout to a pipe read here; lines and seconds."""
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    lines = 0
    while chunk := proc.stdout.read(1 << 20):
        lines += chunk.count(b"\n")
    if proc.wait() != 0:
        raise SystemExit(f"{' '.join(cmd)}: exit {proc.returncode}")
    return lines, time.monotonic() - t0


def service_logs(state: str) -> None:
    path = Path(state) / "chatty.yaml"
    path.write_text(SERVICE)
    orch("deploy", "-f", str(path), "--timeout", "300")
    want = TASKS * LINES
    deadline = time.monotonic() + 300
    while count_lines([*ORCH, "logs", "chatty"], ENV)[0] < want:
        if time.monotonic() > deadline:
            raise SystemExit("the service did not print its lines")
        time.sleep(0.5)
    runs = []
    for _ in range(ROUNDS):
        lines, took = count_lines([*ORCH, "logs", "chatty"], ENV)
        if lines != want:
            raise SystemExit(f"orch logs gave {lines} lines, not {want}")
        runs.append(lines / took)
    # The cluster runs nothing else: every container log under its state is chatty's.
    files = glob.glob(f"{state}/**/container.log*", recursive=True)
    cat = []
    for _ in range(ROUNDS):
        lines, took = count_lines(["cat", *files], ENV)
        if lines != want:
            raise SystemExit(f"the log files hold {lines} lines, not {want}: {files[:3]}")
        cat.append(lines / took)
    emit("logs_lines_per_s", statistics.median(runs), 0)
    emit("logs_runs", ",".join(f"{r:.0f}" for r in runs))
    emit("logs_cat_lines_per_s", statistics.median(cat), 0)
    emit("logs_vs_cat_ratio", statistics.median(runs) / statistics.median(cat), 3)
    orch("rm", "chatty", check=False)


def build_output() -> None:
    with tempdir() as tmp_name:
        tmp = Path(tmp_name)
        rootfs = busybox_rootfs(tmp / "busybox")
        with agent(tmp) as env:
            subprocess.run([*ORCH, "image", "import", str(rootfs), "busybox"], check=True, env=env,
                           capture_output=True)
            figures: dict[str, list[float]] = {"loud": [], "quiet": []}
            for round_ in range(ROUNDS):
                for kind, sink in (("loud", ""), ("quiet", " > /dev/null")):
                    ctx = tmp / f"ctx-{kind}-{round_}"
                    ctx.mkdir()
                    # A fresh ARG value each round: the RUN step is never cached.
                    (ctx / "Containerfile").write_text(
                        f"FROM busybox\nRUN echo {kind} {round_} && seq 1 {BUILD_LINES}{sink}\n")
                    lines, took = count_lines([*ORCH, "build", "--no-cache", str(ctx)], env)
                    if kind == "loud" and lines < BUILD_LINES:
                        raise SystemExit(f"orch build printed {lines} lines, not {BUILD_LINES}")
                    figures[kind].append(took)
    loud = statistics.median(figures["loud"])
    emit("build_output_lines_per_s", BUILD_LINES / loud, 0)
    emit("build_s", loud)
    emit("build_quiet_s", statistics.median(figures["quiet"]))


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    t0 = time.monotonic()
    build_output()
    with cluster(3) as state:
        service_logs(state)
    emit("run_s", time.monotonic() - t0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
