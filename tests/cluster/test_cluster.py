"""The cluster end to end: real etcd, the real control plane, three agents in
network namespaces and real containers. Destructive tests (agent kill,
control-plane restart) come last: they share the session's cluster."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap
import time
from pathlib import Path

from tests.cluster.conftest import LocalCluster, wait_for
from tests.http_helpers import get_page

LOOP = "trap 'exit 0' TERM; while true; do sleep 1; done"


def manifest(tmp: Path, text: str) -> str:
    path = tmp / "m.yaml"
    path.write_text(textwrap.dedent(text))
    return str(path)


def looping(tmp: Path, name: str, replicas: int, grace: str = "1s") -> str:
    """A manifest of one service that idles and stops at once on SIGTERM."""
    return manifest(tmp, f"""
        services:
          {name}:
            image: busybox
            command: ["sh", "-c", "{LOOP}"]
            stop_grace_period: {grace}
            deploy:
              replicas: {replicas}
    """)


def spread_without(per_node: dict[str, int], total: int, node: str) -> bool:
    """``total`` tasks run, none of them on ``node`` (counts from one snapshot)."""
    return sum(per_node.values()) == total and node not in per_node


def test_nodes_are_ready(cluster: LocalCluster) -> None:
    nodes = cluster.nodes()
    assert sorted(n["name"] for n in nodes) == ["n1", "n2", "n3"]
    assert {n["state"] for n in nodes} == {"ready"}
    assert all(n["address"] for n in nodes)


def test_spread_then_scale_up_and_down(cluster: LocalCluster, tmp_path: Path) -> None:
    path = looping(tmp_path, "spread", 6, "2s")
    cluster.orch("deploy", "-f", path)
    assert sorted(cluster.per_node("spread").values()) == [2, 2, 2]
    cluster.orch("scale", "spread=9")
    wait_for(lambda: len(cluster.running("spread")) == 9)
    assert sorted(cluster.per_node("spread").values()) == [3, 3, 3]
    cluster.orch("scale", "spread=3")
    wait_for(lambda: len(cluster.running("spread")) == 3)
    assert sorted(t["slot"] for t in cluster.running("spread")) == [1, 2, 3]
    cluster.orch("rm", "spread")
    wait_for(lambda: cluster.tasks("") == [] or all(t["service"] != "spread" for t in cluster.tasks()))


def test_web_example_answers_on_every_node(cluster: LocalCluster) -> None:
    root = Path(__file__).resolve().parents[2]
    text = (root / "examples/web.yaml").read_text().replace('"8080:80"', '"18080:80"')
    path = cluster.state / "web.yaml"
    path.write_text(text)
    cluster.orch("deploy", "-f", str(path))
    try:
        for node in cluster.nodes():
            host = node["address"].rsplit(":", 1)[0]

            assert "hello from orch" in get_page(f"http://{host}:18080/")
    finally:
        cluster.orch("rm", "web")


def test_deploy_build_builds_pushes_and_pins_and_every_node_runs_it(
        cluster: LocalCluster, tmp_path: Path) -> None:
    """`orch deploy --build`: the service's build: built by the local cluster's first node,
    pushed to the cluster's registry and deployed pinned to its digest; every node pulls it."""
    root = Path(__file__).resolve().parents[2]
    rec = cluster.record()
    path = manifest(tmp_path, f"""
        name: built
        services:
          site:
            build:
              context: {root / "examples"}
              dockerfile: Containerfile
              args: {{VERSION: "2.0"}}
            ports: ["18081:8080"]
            stop_grace_period: 2s
            deploy:
              replicas: 3
    """)
    without = cluster.orch("deploy", "-f", path, check=False)
    assert without.returncode == 1 and "deploy it with 'orch deploy --build'" in without.stderr
    cluster.orch("deploy", "--build", "-f", path, timeout=300)
    try:
        services = json.loads(cluster.orch("services", "-o", "json").stdout)
        image = next(s["spec"]["image"] for s in services if s["spec"]["name"] == "site")
        assert image.startswith(f"{rec['registry']}/built/site@sha256:")  # pushed, then pinned
        assert len(cluster.per_node("site")) == 3  # every node pulled it
        for node in cluster.nodes():
            host = node["address"].rsplit(":", 1)[0]
            page = get_page(f"http://{host}:18081/")
            assert "built by orch build" in page and "2.0" in page
    finally:
        cluster.orch("rm", "site")


def test_constraints_pin_and_unplaceable_exits_2(cluster: LocalCluster, tmp_path: Path) -> None:
    cluster.orch("node", "label", "n2", "zone=b")
    path = manifest(tmp_path, f"""
        services:
          pinned:
            image: busybox
            command: ["sh", "-c", "{LOOP}"]
            stop_grace_period: 2s
            deploy:
              replicas: 3
              placement:
                constraints: ["node.labels.zone==b"]
    """)
    cluster.orch("deploy", "-f", path)
    assert cluster.per_node("pinned") == {"n2": 3}
    bad = manifest(tmp_path, f"""
        services:
          nowhere:
            image: busybox
            command: ["sh", "-c", "{LOOP}"]
            deploy:
              replicas: 1
              placement:
                constraints: ["node.labels.zone==mars"]
    """)
    p = cluster.orch("deploy", "-f", bad, check=False, timeout=60)
    assert p.returncode == 2, p
    assert "no suitable node" in p.stderr and "zone==mars" in p.stderr
    cluster.orch("rm", "pinned")
    cluster.orch("rm", "nowhere")
    cluster.orch("node", "label", "n2", "zone-")


def test_an_update_that_fits_once_the_old_tasks_stop_is_not_unplaceable(cluster: LocalCluster,
                                                                         tmp_path: Path) -> None:
    """One task per node on three nodes: each replacement waits for the task it
    replaces to stop (stop-first), and `orch deploy` waits with it, then exits 0."""
    def one_per_node(version: int) -> str:
        return manifest(tmp_path, f"""
            services:
              solo:
                image: busybox
                command: ["sh", "-c", "{LOOP}"]
                environment: {{VERSION: "{version}"}}
                stop_grace_period: 2s
                deploy:
                  replicas: 3
                  placement: {{max_replicas_per_node: 1}}
        """)

    cluster.orch("deploy", "-f", one_per_node(1))
    try:
        before = {t["id"] for t in cluster.running("solo")}
        p = cluster.orch("deploy", "-f", one_per_node(2), check=False, timeout=120)
        assert p.returncode == 0, p
        # (`orch deploy` may see the old tasks still running before the leader
        # has replaced them: its follow does not tell spec versions apart yet.)
        wait_for(lambda: len(after := cluster.running("solo")) == 3
                 and not before & {t["id"] for t in after}, timeout=60)
        assert sorted(cluster.per_node("solo").values()) == [1, 1, 1]
    finally:
        cluster.orch("rm", "solo")


def test_drain_moves_tasks_off_a_node(cluster: LocalCluster, tmp_path: Path) -> None:
    path = looping(tmp_path, "drainme", 4, "2s")
    cluster.orch("deploy", "-f", path)
    assert "n1" in cluster.per_node("drainme")
    cluster.orch("node", "drain", "n1")
    try:
        wait_for(lambda: spread_without(cluster.per_node("drainme"), 4, "n1"))
    finally:
        cluster.orch("node", "activate", "n1")
        cluster.orch("rm", "drainme")


def test_logs_arrive_from_every_node_and_exec_works(cluster: LocalCluster, tmp_path: Path) -> None:
    talk = "trap 'exit 0' TERM; while true; do echo hello from $(hostname); sleep 0.5; done"
    path = manifest(tmp_path, f"""
        services:
          talker:
            image: busybox
            command: ["sh", "-c", "{talk}"]
            deploy:
              replicas: 3
    """)
    cluster.orch("deploy", "-f", path)
    try:
        assert len(cluster.per_node("talker")) == 3

        def every_node() -> set[str]:
            out = cluster.orch("logs", "talker", "--tail", "5").stdout
            nodes = {line.split(" | ")[0].split("@")[1] for line in out.splitlines() if " | " in line}
            return nodes if nodes == {"n1", "n2", "n3"} else set()

        wait_for(every_node, timeout=15)
        task = cluster.running("talker")[0]
        p = cluster.orch("exec", task["id"], "hostname")
        assert p.stdout.strip() and p.returncode == 0
    finally:
        cluster.orch("rm", "talker")


def test_bad_manifests_name_the_field(cluster: LocalCluster, tmp_path: Path) -> None:
    path = manifest(tmp_path, """
        services:
          oops:
            image: busybox
            deploy:
              replica: 3
    """)
    p = cluster.orch("deploy", "-f", path, check=False)
    assert p.returncode == 1
    assert "m.yaml:6" in p.stderr and "replica" in p.stderr and "Traceback" not in p.stderr
    path = manifest(tmp_path, """
        services:
          oops:
            image: busybox
            deploy:
              resources:
                limits:
                  memory: lots
    """)
    p = cluster.orch("deploy", "-f", path, check=False)
    assert p.returncode == 1 and "memory" in p.stderr and "m.yaml:8" in p.stderr
    # The control plane parses the manifest; what the CLI cannot read is
    # reported by the CLI, naming the file.
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"services:\n  caf\xe9:\n    image: busybox\n")
    p = cluster.orch("deploy", "-f", str(latin), check=False)
    assert p.returncode == 1 and "latin.yaml:2: not UTF-8 text" in p.stderr  # the line of the bad byte
    p = cluster.orch("deploy", "-f", str(tmp_path / "nope.yaml"), check=False)
    assert p.returncode == 1 and "nope.yaml: cannot read the manifest" in p.stderr
    assert "Traceback" not in p.stderr


def test_controlplane_restart_loses_and_restarts_nothing(cluster: LocalCluster, tmp_path: Path) -> None:
    from orch.cluster.local import restart_controlplane

    path = looping(tmp_path, "steady", 3, "2s")
    cluster.orch("deploy", "-f", path)
    before = {t["id"] for t in cluster.running("steady")}
    restart_controlplane(str(cluster.run), 0)
    # Every agent has a session with the new control plane, and has heartbeated on it.
    nodes = cluster.heartbeats_after(time.time())
    after = wait_for(lambda: {t["id"] for t in cluster.running("steady")} or None)
    assert after == before
    assert {n["state"] for n in nodes} == {"ready"}
    cluster.orch("rm", "steady")


def test_leader_failover_keeps_tasks(cluster: LocalCluster, tmp_path: Path) -> None:
    from orch.cli.client import Cluster
    from orch.cluster.local import ClusterRecord, restart_controlplane
    from proto import cluster_pb2 as cpb

    path = looping(tmp_path, "keep", 3, "1s")
    cluster.orch("deploy", "-f", path)
    before = {t["id"] for t in cluster.running("keep")}
    rec = ClusterRecord.load(str(cluster.run))
    apis = [Cluster(f"unix://{sock}") for sock in rec.sockets]
    leader = next(i for i, api in enumerate(apis) if api.call("Info", cpb.InfoRequest()).leader)
    other = 1 - leader
    os.kill(rec.controlplane_pids[leader], signal.SIGKILL)
    t0 = time.monotonic()
    wait_for(lambda: apis[other].call("Info", cpb.InfoRequest()).leader, timeout=10, interval=0.1)
    print(f"new leader after {time.monotonic() - t0:.1f} s")
    try:
        # The CLI knows every replica (from the cluster's record) and moves
        # on from the dead one by itself: no ORCH_CLUSTER needed. Beats newer
        # than the new leader come from the live replica: the agents of the
        # dead one moved over, none went down meanwhile.
        nodes = cluster.heartbeats_after(time.time())
        assert {n["state"] for n in nodes} == {"ready"}
        assert {t["id"] for t in cluster.running("keep")} == before
        restart_controlplane(str(cluster.run), leader)
        cluster.orch("rm", "keep")
    finally:
        for api in apis:
            api.close()


def test_killed_and_cut_off_node_is_replaced_then_converges(cluster: LocalCluster,
                                                            tmp_path: Path) -> None:
    from orch.cluster.hostnet import HostNet
    from orch.cluster.local import ClusterRecord, agent_pid, restart_agent

    path = looping(tmp_path, "ha", 6, "1s")
    cluster.orch("deploy", "-f", path)
    rec = ClusterRecord.load(str(cluster.run))
    victim = next(n for n in rec.nodes if n.name == "n3")
    index = 3
    net = HostNet(rec.bridge, rec.subnet, rec.prefix)
    lost = {t["id"] for t in cluster.running("ha") if t["node"] == "n3"}
    assert lost
    os.kill(agent_pid(victim), signal.SIGKILL)
    net.cut(index)
    t0 = time.monotonic()
    # One snapshot per check: two `orch ps` calls could see n3's tasks still
    # running in the first and already orphaned in the second.
    wait_for(lambda: spread_without(cluster.per_node("ha"), 6, "n3"), timeout=20, interval=0.1)
    print(f"replaced in {time.monotonic() - t0:.1f} s")
    assert len(cluster.running("ha")) == 6  # exactly the desired count
    # The node comes back: it gets a full assignment set without the moved
    # tasks and stops them; no duplicates remain.
    net.restore(index)
    restart_agent(str(cluster.run), "n3")
    wait_for(lambda: {n["name"]: n["state"] for n in cluster.nodes()}["n3"] == "ready")
    env = {**os.environ, "ORCH_HOST": f"unix://{victim.run_dir}/agent.sock"}

    def old_gone() -> bool:
        out = subprocess.run([*_orch(), "ps", "-o", "json"], env=env, text=True,
                             capture_output=True).stdout
        names = [c["name"] for c in json.loads(out or "[]")]
        return not any(name.endswith(tid[:8]) for name in names for tid in lost)

    wait_for(old_gone, timeout=20)
    cluster.heartbeats_after(time.time())  # n3's reports since have reached the control plane
    assert len(cluster.running("ha")) == 6
    cluster.orch("rm", "ha")


def _orch() -> list[str]:
    import sys

    return [sys.executable, "-m", "orch"]
