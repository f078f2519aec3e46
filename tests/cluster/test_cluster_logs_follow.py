"""`orch logs` of a service on the real cluster: following it follows the
service (a replacement task joins, a gone node gets one notice and its
task's lines resume when it returns, every line once), and --since,
--until and --timestamps filter as `docker logs` does."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.cluster.conftest import LocalCluster, wait_for
from tests.cluster.test_cluster import manifest

# A numbered line every 0.1 s, from a fresh container each time.
COUNTER = "i=0; while :; do i=$((i+1)); echo n=$i; sleep 0.1; done"
LINE = re.compile(r"^(?P<task>\S+)@(?P<node>\S+) \| (?P<text>.*)$")


class Follower:
    """`orch logs -f SVC`, its stdout and stderr read into one queue."""

    def __init__(self, cluster: LocalCluster, service: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "orch", "logs", "-f", service],
                                     env=cluster.env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def until(self, want: re.Pattern[str], timeout: float = 60) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            self.seen.append(line)
            if m := want.search(line):
                return m
        raise AssertionError(f"no line matching {want.pattern} within {timeout} s; "
                             f"last lines: {self.seen[-20:]}")

    def read_for(self, seconds: float) -> None:
        """Take in what arrives within ``seconds`` (the other tasks never go quiet)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                self.seen.append(self.lines.get(timeout=left))
            except queue.Empty:
                return

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)

    def numbers(self, task: str) -> list[int]:
        out = []
        for line in self.seen:
            m = LINE.match(line)
            if m and m["task"] == task and m["text"].startswith("n="):
                out.append(int(m["text"][2:]))
        return out


def test_following_a_service_survives_its_node_and_takes_in_the_replacement(
        cluster: LocalCluster, tmp_path: Path) -> None:
    from orch.cluster.local import ClusterRecord, agent_pid, restart_agent

    path = manifest(tmp_path, f"""
        services:
          follow:
            image: busybox
            command: ["sh", "-c", "{COUNTER}"]
            stop_grace_period: 1s
            deploy:
              replicas: 3
    """)
    cluster.orch("deploy", "-f", path)
    follower = Follower(cluster, "follow")
    victim = ""
    try:
        tasks = {t["node"]: t for t in cluster.running("follow")}
        assert len(tasks) == 3, tasks  # one a node
        victim = "n3"
        gone = tasks[victim]
        seen_tasks: set[str] = set()
        while len(seen_tasks) < 3:
            seen_tasks.add(follower.until(LINE)["task"])
        [gone_name] = [name for name in seen_tasks if name.startswith(f"follow.{gone['slot']}.")]

        rec = ClusterRecord.load(str(cluster.run))
        node = next(n for n in rec.nodes if n.name == victim)
        os.kill(agent_pid(node), signal.SIGKILL)
        notice = follower.until(re.compile(rf"^{re.escape(gone_name)}@{victim} \| node {victim} is gone"))
        assert "resume" in notice.string
        # Its replacement elsewhere joins the stream with its own prefix.
        joined = follower.until(re.compile(rf"^follow\.{gone['slot']}\.(?!{gone_name.split('.')[2]})"
                                           rf"\S+@(?!{victim})\S+ \| n=1$"))
        assert joined
        before = follower.numbers(gone_name)
        # The node comes back: the gone task's lines resume where they
        # stopped (what it printed meanwhile included), then end as the
        # node stops the task that was replaced.
        restart_agent(str(cluster.run), victim)
        victim = ""
        wait_for(lambda: follower.read_for(0.5) or len(follower.numbers(gone_name)) > len(before) + 5,
                 timeout=60)

        def stopped() -> bool:
            return not any(t["id"] == gone["id"] and t["state"] == "running"
                           for t in cluster.tasks("follow"))

        wait_for(lambda: follower.read_for(0.2) or stopped(), timeout=60)
        follower.read_for(2.0)  # the stream's last lines, after its container stopped
        numbers = follower.numbers(gone_name)
        assert numbers == list(range(1, len(numbers) + 1)), numbers  # every line once, in order
        gone_lines = [line for line in follower.seen if " is gone " in line]
        assert len(gone_lines) == 1, gone_lines
        for name in seen_tasks - {gone_name}:  # the others never broke
            kept = follower.numbers(name)
            assert kept == list(range(1, len(kept) + 1))
    finally:
        follower.stop()
        if victim:
            restart_agent(str(cluster.run), victim)
        cluster.orch("rm", "follow")


def test_since_until_and_timestamps(cluster: LocalCluster, tmp_path: Path) -> None:
    path = manifest(tmp_path, """
        services:
          stamped:
            image: busybox
            command: ["sh", "-c", "echo first; sleep 2; echo second; echo oops >&2; exec sleep 3600"]
            stop_grace_period: 1s
    """)
    cluster.orch("deploy", "-f", path)
    try:
        def logs(*flags: str) -> subprocess.CompletedProcess[str]:
            return cluster.orch("logs", "stamped", *flags)

        wait_for(lambda: "second" in logs().stdout)
        out = logs("-t")
        stamps = {}
        for line in out.stdout.splitlines() + out.stderr.splitlines():
            m = re.fullmatch(r"stamped\.1\.\S+@n\d \| (\S+) (\w+)", line)
            assert m, line
            stamps[m[2]] = m[1]
        assert set(stamps) == {"first", "second", "oops"}
        assert logs().stderr.strip().endswith("| oops")
        # --since is inclusive, --until exclusive, both as stored times.
        assert _texts(logs("--since", stamps["second"])) == ["second"]
        assert _texts(logs("--until", stamps["second"])) == ["first"]
        assert _texts(logs("--since", "1h")) == ["first", "second"]
        assert _texts(logs("--since", "1ms")) == []
        bad = cluster.orch("logs", "stamped", "--since", "yesterday", check=False)
        assert bad.returncode == 1 and bad.stderr.startswith("orch: error: --since 'yesterday': expected")
        assert "Traceback" not in bad.stderr
    finally:
        cluster.orch("rm", "stamped")


def _texts(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return [line.split(" | ", 1)[1] for line in proc.stdout.splitlines()]
