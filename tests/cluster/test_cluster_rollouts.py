"""Rolling updates on a real cluster (real control planes, agents, containers):
the order of stop-first and start-first in the event stream, a failing
update rolled back by itself (`orch deploy` exits 3), history and
`rollback --to`, pause and resume, a leader killed mid-rollout, and
rebalancing onto a node that comes back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.cluster.conftest import LocalCluster, wait_for
from tests.cluster.test_service_networking import _client, _exec, _vip

SERVER = textwrap.indent(textwrap.dedent("""\
    command:
      - sh
      - -c
      - |
        mkdir -p /www/cgi-bin
        echo "$VERSION" > /www/index.html
        echo '#!/bin/sh' > /www/cgi-bin/who
        echo 'echo Content-Type: text/plain; echo; echo "$REMOTE_ADDR $(hostname)"' >> /www/cgi-bin/who
        chmod +x /www/cgi-bin/who
        exec httpd -f -p 9000 -h /www
    stop_grace_period: 1s
"""), "    ")


def _web(version: str, replicas: int, update: str = "", command: str = "", probe: bool = True,
         rebalance: bool = True) -> str:
    """A web service on port 9000 (/ says its version, /cgi-bin/who who answers),
    with an HTTP probe of / (a file: no process per probe on a busy machine),
    and its environment naming ``version``; ``rebalance=False`` opts it out
    of rebalancing (a node of the shared cluster coming back must not move
    its tasks in the middle of what a test watches)."""
    check = ("    x-orch:\n" + ("" if rebalance else "      rebalance: false\n")
             + "      healthcheck:\n        http: {port: 9000, path: /}\n"
             "    healthcheck: {interval: 1s, timeout: 5s, retries: 3, start_period: 20s, "
             "start_interval: 100ms}\n") if probe else ""
    body = command or SERVER
    return ("  web:\n    image: busybox\n" + body + check
            + f"    environment: {{VERSION: {version}}}\n"
            + "    deploy:\n"
            + f"      replicas: {replicas}\n"
            + "      restart_policy: {condition: any, delay: 0s}\n"
            + (f"      update_config: {update}\n" if update else ""))


def _manifest(tmp: Path, stack: str, body: str) -> str:
    """A manifest of stack ``stack`` (its top-level name: each version of a
    test's stack is the same stack, on the same network) in a new directory."""
    d = tmp / f"{stack}-{len(list(tmp.glob(f'{stack}-*')))}"
    d.mkdir()
    (d / "stack.yaml").write_text(f"name: {stack}\nservices:\n{body}")
    return str(d / "stack.yaml")


def _services(cluster: LocalCluster) -> dict[str, dict[str, Any]]:
    return {s["spec"]["name"]: s for s in json.loads(cluster.orch("services", "-o", "json").stdout)}


def _status(cluster: LocalCluster, name: str = "web") -> dict[str, Any]:
    return _services(cluster)[name]["update_status"] or {}


def _completed(cluster: LocalCluster, timeout: float = 60) -> None:
    """Wait for web's rollout to complete; on a timeout, say where it stands and what its tasks do."""
    try:
        wait_for(lambda: _status(cluster).get("state") == "completed", timeout=timeout)
    except AssertionError:
        raise AssertionError(f"rollout not completed: {_status(cluster)}\n"
                             f"{cluster.orch('ps', 'web', '--all').stdout}") from None


def _versions(cluster: LocalCluster) -> list[str]:
    """The VERSION each running web container really has (asked of the container)."""
    out = []
    for t in cluster.running("web"):
        out.append(_exec(cluster, t["id"], "echo $VERSION").stdout.strip())
    return sorted(out)


@contextmanager
def _events(cluster: LocalCluster, service: str) -> Iterator[list[tuple[str, str, str, str]]]:
    """Task events of ``service`` while the block runs, in the order the
    control plane's Events stream sent them: (task id, desired, state,
    health). The block starts once the stream has sent the current state."""
    import grpc

    from orch.cluster.local import ClusterRecord
    from proto import cluster_pb2 as cpb
    from proto import cluster_pb2_grpc as cpb_grpc

    rec = ClusterRecord.load(str(cluster.run))
    channel = grpc.insecure_channel(f"unix://{rec.sockets[0]}")
    stream = cpb_grpc.ClusterAPIStub(channel).Events(cpb.EventsRequest(services=[service], initial=True))
    seen: list[tuple[str, str, str, str]] = []
    synced = threading.Event()

    def read() -> None:
        try:
            for event in stream:
                if event.action == cpb.EVENT_ACTION_SYNCED:
                    synced.set()
                elif event.WhichOneof("object") == "task" and synced.is_set():
                    t = event.task
                    desired = t.desired_state if t.HasField("desired_state") else cpb.TASK_STATE_RUNNING
                    seen.append((t.id, cpb.TaskState.Name(desired), cpb.TaskState.Name(t.status.state),
                                 t.status.health))
        except grpc.RpcError:
            pass  # cancelled at the end of the block

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert synced.wait(30), "the event stream did not start"
        yield seen
    finally:
        stream.cancel()
        reader.join(10)
        channel.close()


def _stopped(seen: list[tuple[str, str, str, str]], tasks: Iterable[str]) -> bool:
    """Whether every one of ``tasks`` has been told to stop in ``seen``."""
    told = {tid for tid, desired, _, _ in seen if desired == "TASK_STATE_SHUTDOWN"}
    return set(tasks) <= told


def _first(seen: list[tuple[str, str, str, str]], task: str, desired: str = "",
           state: str = "", health: str = "") -> int:
    """The index of the first event of ``task`` matching what is given."""
    for i, (tid, d, s, h) in enumerate(seen):
        if tid == task and (not desired or d == desired) and (not state or s == state) \
                and (not health or h == health):
            return i
    raise AssertionError(f"no event of {task} with {desired or state or health}: {seen}")


def test_stop_first_and_start_first_order_in_the_events(cluster: LocalCluster, tmp_path: Path) -> None:
    path = _manifest(tmp_path, "order", _web("v1", 2, "{monitor: 0s}", rebalance=False))
    cluster.orch("deploy", "-f", path)
    try:
        old = {t["slot"]: t["id"] for t in cluster.running("web")}
        with _events(cluster, "web") as seen:
            path = _manifest(tmp_path, "order", _web("v2", 2, "{monitor: 0s, order: stop-first}",
                                                     rebalance=False))
            cluster.orch("deploy", "-f", path)
            wait_for(lambda: _stopped(seen, old.values()))  # the stream's reader caught up
        new = {t["slot"]: t["id"] for t in cluster.running("web")}
        for slot in (1, 2):  # the old task is told to stop before its replacement exists
            assert _first(seen, old[slot], desired="TASK_STATE_SHUTDOWN") < _first(seen, new[slot])
        assert _versions(cluster) == ["v2", "v2"]

        old = new
        with _events(cluster, "web") as seen:
            path = _manifest(tmp_path, "order", _web("v3", 2, "{monitor: 0s, order: start-first}",
                                                     rebalance=False))
            cluster.orch("deploy", "-f", path)
            wait_for(lambda: _stopped(seen, old.values()))
        new = {t["slot"]: t["id"] for t in cluster.running("web")}
        for slot in (1, 2):  # the replacement is healthy before the old task is told to stop
            healthy = _first(seen, new[slot], state="TASK_STATE_RUNNING", health="healthy")
            assert healthy < _first(seen, old[slot], desired="TASK_STATE_SHUTDOWN")
        assert _versions(cluster) == ["v3", "v3"]
        assert _status(cluster)["state"] == "completed"
    finally:
        cluster.orch("rm", "web", check=False)


def test_a_failing_update_rolls_back_by_itself_and_deploy_exits_3(cluster: LocalCluster,
                                                                  tmp_path: Path) -> None:
    update = "{monitor: 2s, failure_action: rollback}"
    path = _manifest(tmp_path, "fail", _web("v1", 3, update))
    cluster.orch("deploy", "-f", path)
    try:
        # v2 exits at once: its first task fails, and the update goes back to v1.
        crash = "    command: [sh, -c, 'exit 3']\n"
        path = _manifest(tmp_path, "fail", _web("v2", 3, update, command=crash, probe=False))
        proc = cluster.orch("deploy", "-f", path, check=False)
        assert proc.returncode == 3, proc.stdout + proc.stderr
        assert "rolled back" in proc.stderr and "automatic rollback" in proc.stderr, proc.stderr
        # Its status says so, unless a rebalance (the rollback placed tasks anew) followed it.
        status = _status(cluster)
        assert status["state"] == "rollback_completed" or status["message"].startswith("rebalanced"), status
        assert len(cluster.running("web")) == 3
        assert _versions(cluster) == ["v1", "v1", "v1"]
        history = json.loads(cluster.orch("history", "web", "-o", "json").stdout)
        assert [h["revision"] for h in history] == [1, 2, 3]
        assert history[2]["current"] and history[2]["note"].startswith("automatic rollback: task web.")
        assert {"field": "env", "old": '["VERSION=v2"]', "new": '["VERSION=v1"]'} in history[2]["changes"]
    finally:
        cluster.orch("rm", "web", check=False)


def test_history_and_rollback_to_a_revision(cluster: LocalCluster, tmp_path: Path) -> None:
    update = "{monitor: 0s, parallelism: 0}"
    for version in ("v1", "v2", "v3"):
        path = _manifest(tmp_path, "hist", _web(version, 2, update))
        cluster.orch("deploy", "-f", path)
    try:
        history = json.loads(cluster.orch("history", "web", "-o", "json").stdout)
        assert [(h["revision"], h["current"]) for h in history] == [(1, False), (2, False), (3, True)]
        assert history[1]["changes"] == [{"field": "env", "old": '["VERSION=v1"]', "new": '["VERSION=v2"]'}]
        table = cluster.orch("history", "web").stdout
        assert "3 *" in table and 'env: ["VERSION=v2"] -> ["VERSION=v3"]' in table, table

        bad = cluster.orch("rollback", "web", "--to", "9", check=False)
        assert bad.returncode == 1 and "has no revision 9: kept are 1-2 and the current 3" in bad.stderr
        proc = cluster.orch("rollback", "web", "--to", "1")
        assert "rollback to 1 (now revision 4)" in proc.stdout, proc.stdout
        assert _versions(cluster) == ["v1", "v1"]
        status = _status(cluster)  # (or a rebalance's, which may follow it)
        assert status["state"] == "rollback_completed" or status["message"].startswith("rebalanced"), status
        cluster.orch("rollback", "web")  # the previous revision: 3
        assert _versions(cluster) == ["v3", "v3"]
        assert json.loads(cluster.orch("history", "web", "-o", "json").stdout)[-1]["revision"] == 5
    finally:
        cluster.orch("rm", "web", check=False)


def test_pause_and_resume(cluster: LocalCluster, tmp_path: Path) -> None:
    path = _manifest(tmp_path, "pause", _web("v1", 3, "{monitor: 0s}"))
    cluster.orch("deploy", "-f", path)
    try:
        # Each task must pass 2 s of monitoring: time enough to pause after the first.
        path = _manifest(tmp_path, "pause", _web("v2", 3, "{monitor: 2s, delay: 1s}"))
        cluster.orch("deploy", "-d", "-f", path)
        assert "rollout paused" in cluster.orch("update", "web", "--pause").stdout
        status = _status(cluster)
        assert status["state"] == "paused" and status["message"] == "paused by a user"
        cluster.heartbeats_after(time.time() + 3.5)  # past a task's monitor and delay: still paused
        assert _status(cluster)["state"] == "paused"
        assert _versions(cluster).count("v2") <= 1  # the first task, under way when it paused
        assert "ROLLOUT" in cluster.orch("services").stdout and "paused" in cluster.orch("services").stdout
        again = cluster.orch("update", "web", "--pause", check=False)
        assert again.returncode == 1 and "no rollout to pause (its rollout: paused)" in again.stderr
        cluster.orch("update", "web", "--resume")
        _completed(cluster)
        assert _versions(cluster) == ["v2", "v2", "v2"]
    finally:
        cluster.orch("rm", "web", check=False)


def test_a_leader_killed_mid_rollout_leaves_the_rollout_to_the_next(cluster: LocalCluster,
                                                                     tmp_path: Path) -> None:
    from orch.cli.client import Cluster
    from orch.cluster.local import ClusterRecord, restart_controlplane
    from proto import cluster_pb2 as cpb

    path = _manifest(tmp_path, "lead", _web("v1", 6, "{monitor: 0s, parallelism: 0}"))
    cluster.orch("deploy", "-f", path)
    rec = ClusterRecord.load(str(cluster.run))
    apis = [Cluster(f"unix://{sock}") for sock in rec.sockets]
    leader = next(i for i, api in enumerate(apis) if api.call("Info", cpb.InfoRequest()).leader)
    try:
        path = _manifest(tmp_path, "lead", _web("v2", 6, "{monitor: 1s, parallelism: 2}"))
        cluster.orch("deploy", "-d", "-f", path)
        wait_for(lambda: _status(cluster).get("updated", 0) >= 2, timeout=60, interval=0.1)
        os.kill(rec.controlplane_pids[leader], signal.SIGKILL)
        wait_for(lambda: apis[1 - leader].call("Info", cpb.InfoRequest()).leader, timeout=15, interval=0.1)
        _completed(cluster, timeout=90)
        tasks = json.loads(cluster.orch("ps", "web", "-o", "json").stdout)
        live = [t for t in tasks if t["desired"] == "running"]
        assert sorted(t["slot"] for t in live) == [1, 2, 3, 4, 5, 6], live  # no slot twice, none missing
        wait_for(lambda: len(cluster.running("web")) == 6)
        assert _versions(cluster) == ["v2"] * 6
        # Real processes, not only the store (a replaced one drains for a second before it stops).
        wait_for(lambda: _containers(cluster, "web") == 6, timeout=30)
    finally:
        restart_controlplane(str(cluster.run), leader)
        for api in apis:
            api.close()
        cluster.orch("rm", "web", check=False)


def _containers(cluster: LocalCluster, service: str) -> int:
    """Containers of ``service`` running on the nodes, as each node's engine lists them
    (a task's container is named SERVICE.SLOT.ID)."""
    total = 0
    for node in ("n1", "n2", "n3"):
        env = {**cluster.env, "ORCH_HOST": f"unix://{cluster.run}/nodes/{node}/agent.sock"}
        out = subprocess.run([sys.executable, "-m", "orch", "ps", "-o", "json"], env=env, text=True,
                             capture_output=True, timeout=60, check=True).stdout
        total += sum(1 for c in json.loads(out) if c["name"].startswith(f"{service}.")
                     and c["state"] == "running")
    return total


def test_rebalance_onto_a_node_that_comes_back(cluster: LocalCluster, tmp_path: Path) -> None:
    from orch.cluster.local import ClusterRecord, agent_pid, restart_agent

    path = _manifest(tmp_path, "reb", _web("v1", 6, "{monitor: 1s, order: start-first}")
                     + textwrap.indent(_client(), "  "))
    cluster.orch("deploy", "-f", path)
    rec = ClusterRecord.load(str(cluster.run))
    victim = next(n for n in rec.nodes if n.name == "n3")
    try:
        assert cluster.per_node("web").get("n3", 0) >= 1
        os.kill(agent_pid(victim), signal.SIGKILL)
        wait_for(lambda: cluster.per_node("web") == {"n1": 3, "n2": 3}
                 or cluster.per_node("web") == {"n2": 3, "n1": 3}, timeout=60)
        restart_agent(str(cluster.run), "n3")
        wait_for(lambda: {n["name"]: n["state"] for n in cluster.nodes()}["n3"] == "ready", timeout=60)
        vip = _vip(cluster, "reb_default", "web")
        # Steady load through the VIP while tasks move: none may fail.
        script = f"i=0; while [ $i -lt 400 ]; do timeout 5 wget -q -O- http://{vip}:9000/cgi-bin/who " \
                 "> /dev/null || echo FAIL; i=$((i+1)); sleep 0.05; done; echo DONE"
        load = threading.Thread(target=lambda: results.append(
            _exec(cluster, "client.1", script, timeout=300).stdout))
        results: list[str] = []
        load.start()
        wait_for(lambda: sorted(cluster.per_node("web").values()) == [2, 2, 2], timeout=90)
        load.join(300)
        assert results and "DONE" in results[0], results
        assert results[0].count("FAIL") == 0, results[0]
        _completed(cluster)
        assert _status(cluster)["message"].startswith("rebalanced: moved 1 task(s) to n3")
        assert len(cluster.running("web")) == 6
    finally:
        cluster.orch("rm", "web", "client", check=False)
