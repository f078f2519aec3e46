"""Values that break things, through the real control plane of a real cluster:
an absurd replica count or stop grace period is refused with file:line and the
control plane's memory does not move; a service already stored in etcd with an
absurd count is skipped (logged), not expanded into tasks; and every task's
container gets a pids limit: the node's default (4096), the manifest's, or none
with -1, read from the container's own cgroup."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.cluster.conftest import LocalCluster, wait_for

LOOP = "trap 'exit 0' TERM; while true; do sleep 1; done"
RSS_NOISE_KB = 20 * 1024  # the bug grew the control plane by ~45 MB a second


def _manifest(tmp: Path, name: str, body: str = "", command: str = '[sh, -c, "sleep 1"]') -> str:
    """A manifest of one service ``name``; ``body``'s keys go below its image and command
    (its first line is line 5 of the file)."""
    path = tmp / f"{name}.yaml"
    path.write_text(f"services:\n  {name}:\n    image: busybox\n    command: {command}\n"
                    + textwrap.indent(textwrap.dedent(body), "    "))
    return str(path)


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def _controlplane_rss(cluster: LocalCluster) -> dict[int, int]:
    return {pid: _rss_kb(pid) for pid in cluster.record()["controlplane_pids"] if pid}


def _looping(tmp: Path, name: str, extra: str = "", marker: str = "") -> str:
    """One replica that idles; ``marker`` lands in its process's command line ($0 of sh)."""
    command = json.dumps(["sh", "-c", LOOP, *([marker] if marker else [])])
    return _manifest(tmp, name, "stop_grace_period: 1s\n" + extra, command)


def _converges(cluster: LocalCluster, tmp: Path, name: str) -> None:
    """Deploy a small service and wait until it runs: the orchestrator has made passes
    since anything before it, and is not stuck creating tasks."""
    cluster.orch("deploy", "-f", _looping(tmp, name))
    wait_for(lambda: len(cluster.running(name)) == 1, timeout=60)


def _assert_memory_unchanged(before: dict[int, int], after: dict[int, int]) -> None:
    for pid, kb in before.items():
        assert after[pid] - kb < RSS_NOISE_KB, f"control plane {pid}: RSS {kb} kB -> {after[pid]} kB"


def test_absurd_values_are_refused_with_file_and_line(cluster: LocalCluster, tmp_path: Path) -> None:
    before = _controlplane_rss(cluster)
    cases = [
        ("huge", "deploy:\n  replicas: 1000000000000\n",
         ":6: services.huge.deploy.replicas: 1000000000000 is too large: at most 100000 replicas per "
         "service (orch's limit)"),
        ("forever", "stop_grace_period: 99999999999999h\n",
         ":5: services.forever.stop_grace_period: '99999999999999h' is too long: at most 24h"),
    ]
    for name, body, message in cases:
        path = _manifest(tmp_path, name, body)
        proc = cluster.orch("deploy", "-f", path, check=False)
        assert proc.returncode == 1, proc
        assert proc.stderr.strip() == f"orch: error: {path}{message}", proc.stderr
    empty = str(tmp_path / "empty.yaml")
    Path(empty).write_text("# nothing but a comment\n")
    proc = cluster.orch("deploy", "-f", empty, check=False)
    assert proc.returncode == 1 and f"{empty}:1: the manifest is empty" in proc.stderr, proc
    services = {s["spec"]["name"] for s in json.loads(cluster.orch("services", "-o", "json").stdout)}
    assert not services & {"huge", "forever", "empty"}
    try:
        _converges(cluster, tmp_path, "after-refusals")
        _assert_memory_unchanged(before, _controlplane_rss(cluster))
    finally:
        cluster.orch("rm", "after-refusals", check=False)


def _skipped_in_logs(cluster: LocalCluster, name: str) -> bool:
    for log in Path(cluster.record()["state_dir"]).glob("controlplane*.log"):
        for line in log.read_text(errors="replace").splitlines():
            if "service skipped" in line and f'"service": "{name}"' in line:
                return True
    return False


def test_a_stored_service_with_an_absurd_count_is_skipped(cluster: LocalCluster, tmp_path: Path) -> None:
    """Written straight into etcd (as a store from before the limit would hold it): the
    leader logs it and creates no task; everything else keeps working."""
    from controlplane.store import Store
    from controlplane.trust import etcd_client_tls, load_ca
    from model.objects import Service, ServiceSpec

    before = _controlplane_rss(cluster)
    name = f"stored-{secrets.token_hex(2)}"
    rec = cluster.record()
    tls = etcd_client_tls(load_ca(rec["pki_dir"]), "bad-values-test", [rec["etcd_endpoint"]])
    with Store([rec["etcd_endpoint"]], tls=tls) as store:
        store.create(Service(id=secrets.token_hex(12), spec=ServiceSpec(
            name=name, image="busybox", command=["sleep", "3600"], replicas=10**12)))
    try:
        wait_for(lambda: _skipped_in_logs(cluster, name), timeout=60)
        _converges(cluster, tmp_path, "beside-stored")
        assert cluster.tasks(name) == []
        _assert_memory_unchanged(before, _controlplane_rss(cluster))
    finally:
        cluster.orch("rm", name, check=False)
        cluster.orch("rm", "beside-stored", check=False)


def _pids_max_of(marker: str) -> str:
    """pids.max of the cgroup of the process whose command line holds ``marker``."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker.encode() not in (entry / "cmdline").read_bytes():
                continue
            lines = (entry / "cgroup").read_text().splitlines()
        except OSError:
            continue  # gone meanwhile
        for line in lines:
            _, controllers, path = line.split(":", 2)
            if "pids" in controllers.split(","):
                return Path(f"/sys/fs/cgroup/pids{path}/pids.max").read_text().strip()
            if controllers == "" and Path("/sys/fs/cgroup/cgroup.controllers").exists():
                return Path(f"/sys/fs/cgroup{path}/pids.max").read_text().strip()
    raise AssertionError(f"no process with {marker!r} in its command line")


def test_every_task_gets_a_pids_limit(cluster: LocalCluster, tmp_path: Path) -> None:
    tag = secrets.token_hex(3)
    cases = {
        "pids-default": ("", "4096"),
        "pids-service": ("pids_limit: 100", "100"),
        "pids-deploy": ("deploy:\n  resources:\n    limits: {pids: 200}", "200"),
        "pids-unlimited": ("pids_limit: -1", "max"),
    }
    try:
        for name, (extra, _) in cases.items():
            cluster.orch("deploy", "--detach", "-f", _looping(tmp_path, name, extra, f"{name}-{tag}"))
        for name, (_, expected) in cases.items():
            wait_for(lambda name=name: len(cluster.running(name)) == 1, timeout=60)
            assert _pids_max_of(f"{name}-{tag}") == expected, name
    finally:
        for name in cases:
            cluster.orch("rm", name, check=False)


def test_nodes_report_their_default_pids_limit(cluster: LocalCluster) -> None:
    node = cluster.record()["nodes"][0]
    env = {**cluster.env, "ORCH_HOST": f"unix://{node['run_dir']}/agent.sock"}
    proc = subprocess.run([sys.executable, "-m", "orch", "info", "-o", "json"], env=env, text=True,
                          capture_output=True, timeout=60, check=True)
    assert int(json.loads(proc.stdout)["default_pids_limit"]) == 4096
    assert os.path.exists(f"{node['run_dir']}/agent.sock")
