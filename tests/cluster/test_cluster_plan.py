"""`orch plan` on the session's cluster: what a deploy would do (created,
updated field by field, unchanged; where new tasks go, or why not) and what a
node's loss would need, with kubectl diff's exit codes; nothing is written."""

from __future__ import annotations

from pathlib import Path

from tests.cluster.conftest import LocalCluster

LOOP = "trap 'exit 0' TERM; while true; do sleep 1; done"


def _manifest(tmp: Path, replicas: int, memory: int = 0, name: str = "planned") -> str:
    reservation = f"\n      resources: {{reservations: {{memory: {memory}}}}}" if memory else ""
    path = tmp / f"{name}-{replicas}-{memory}.yaml"
    path.write_text(f"""services:
  {name}:
    image: busybox
    command: ["sh", "-c", "{LOOP}"]
    stop_grace_period: 1s
    network_mode: bridge
    deploy:
      replicas: {replicas}{reservation}
""")
    return str(path)


def test_plan_says_what_a_deploy_would_do_and_writes_nothing(cluster: LocalCluster, tmp_path: Path) -> None:
    two = _manifest(tmp_path, 2)
    p = cluster.orch("plan", "-f", two, check=False)
    assert p.returncode == 1, p.stderr
    assert "planned: created" in p.stdout and "starts 2:" in p.stdout
    assert not [t for t in cluster.tasks() if t["service"] == "planned"]  # nothing written
    cluster.orch("deploy", "-f", two)
    try:
        p = cluster.orch("plan", "-f", two, check=False)
        assert (p.returncode, p.stdout.strip()) == (0, "planned: unchanged"), p.stderr
        p = cluster.orch("plan", "-f", _manifest(tmp_path, 3), check=False)
        assert p.returncode == 1
        assert "planned: updated" in p.stdout and "replicas: 2 -> 3" in p.stdout
        assert "starts 1: planned.3 ->" in p.stdout
        assert len(cluster.running("planned")) == 2
    finally:
        cluster.orch("rm", "planned")


def test_plan_without_a_node_says_what_would_not_fit(cluster: LocalCluster, tmp_path: Path) -> None:
    memory = min(n["resources"]["memory_bytes"] for n in cluster.nodes())
    big = _manifest(tmp_path, 3, memory=int(memory * 0.6), name="big")  # one per node at most
    cluster.orch("deploy", "-f", big)
    try:
        assert sorted(cluster.per_node("big").values()) == [1, 1, 1]
        p = cluster.orch("plan", "--without", "n2", check=False)
        assert p.returncode == 1, p.stderr
        assert "big: affected" in p.stdout and "cannot place big." in p.stdout and "memory" in p.stdout
        p = cluster.orch("plan", "--without", "n2", "-o", "json", check=False)
        assert '"action": "affected"' in p.stdout
        # With the file too: the service is unchanged, but the loss still leaves a task out.
        assert cluster.orch("plan", "--without", "n2", "-f", big, check=False).returncode == 1
    finally:
        cluster.orch("rm", "big")
    p = cluster.orch("plan", "--without", "nosuch", check=False)
    assert p.returncode == 2 and "no such node: nosuch" in p.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("services:\n  x:\n    image: busybox\n    replicas: 2\n")
    p = cluster.orch("plan", "-f", str(bad), check=False)
    assert p.returncode == 2 and "bad.yaml:4" in p.stderr
    p = cluster.orch("plan", check=False)
    assert p.returncode == 2 and "nothing to plan" in p.stderr
