"""Compose in a real cluster: a deploy starts a service's tasks only once
the service it depends on is healthy (depends_on), its tasks pending
meanwhile with the reason; `--profile` reaches the control plane and adds a
profile's service; a service's container settings reach its container."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.cluster.conftest import LocalCluster, wait_for
from tests.cluster.test_service_networking import _exec, _hostname, _stack

MANIFEST = """\
services:
  db:
    image: busybox
    command: sleep 3600
    network_mode: bridge
    healthcheck:
      test: ["CMD-SHELL", "test -f /tmp/ready"]
      interval: 300ms
      retries: 1000
  web:
    image: busybox
    command: sleep 3600
    network_mode: bridge
    depends_on:
      db: {condition: service_healthy}
  tools:
    image: busybox
    profiles: [debug]
"""


def _tasks(cluster: LocalCluster, service: str) -> list[dict[str, Any]]:
    return json.loads(cluster.orch("ps", service, "--all", "-o", "json").stdout)  # type: ignore[no-any-return]


def test_a_service_starts_once_its_dependency_is_healthy(cluster: LocalCluster, tmp_path: Path) -> None:
    path = _stack(tmp_path, "deps", MANIFEST)
    planned = json.loads(cluster.orch("plan", "-f", path, "--profile", "debug", "-o", "json",
                                      check=False).stdout)
    assert sorted(p["name"] for p in planned) == ["db", "tools", "web"]
    cluster.orch("deploy", "-d", "-f", path)
    try:
        [db] = wait_for(lambda: [t for t in cluster.running("db") if t["health"] == "starting"])
        waiting = wait_for(lambda: [t for t in _tasks(cluster, "web")
                                    if "waiting for db to be healthy (depends_on)" in t["message"]])
        assert [t["state"] for t in waiting] == ["pending"] and not waiting[0]["node"]
        _exec(cluster, _hostname(db), "touch /tmp/ready")
        [web] = wait_for(lambda: cluster.running("web"))
        assert web["id"] == waiting[0]["id"]  # the task that waited is the one that started
        assert not cluster.orch("ps", "tools", check=False).stdout.count("tools.")  # its profile is off
    finally:
        cluster.orch("rm", "web", "db", check=False)


SETTINGS = """\
services:
  box:
    image: busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
    stop_grace_period: 1s
    hostname: custom-host
    init: true
    cap_add: [NET_ADMIN]
    cap_drop: [MKNOD]
    ulimits: {nofile: {soft: 1024, hard: 2048}}
    sysctls: {net.core.somaxconn: "1024"}
    extra_hosts: ["db.example:10.1.2.3"]
    tmpfs: [/scratch]
    shm_size: 8m
    env_file: [box.env]
    environment: [B=2]
    volumes: ["data:/data"]
volumes:
  data:
"""

CHECKS = ("hostname; ulimit -n; ulimit -Hn; cat /proc/sys/net/core/somaxconn; "
          "grep db.example /etc/hosts | cut -f1; awk '$2 == \"/scratch\" || $2 == \"/data\" {print $2, $3}' "
          "/proc/mounts; awk '$2 == \"/dev/shm\" {print $4}' /proc/mounts; "
          "grep CapEff /proc/self/status | cut -f2; echo $A $B; cat /proc/1/comm")


def test_a_services_container_settings_reach_its_container(cluster: LocalCluster, tmp_path: Path) -> None:
    """Compose's container keys travel with the task to its node and take effect there."""
    path = _stack(tmp_path, "settings", SETTINGS)
    Path(path).with_name("box.env").write_text("A=1\nB=from-file\n")
    cluster.orch("deploy", "-f", path)
    try:
        [box] = cluster.running("box")
        lines = _exec(cluster, _hostname(box), CHECKS).stdout.splitlines()
        host, soft, hard, somaxconn, db, *mounts, shm, caps, env, init = lines
        assert (host, soft, hard, somaxconn, db) == ("custom-host", "1024", "2048", "1024", "10.1.2.3")
        assert sorted(mounts) == ["/data ext4", "/scratch tmpfs"] or sorted(m.split()[0] for m in mounts) == [
            "/data", "/scratch"], mounts
        assert "size=8192k" in shm, shm
        bits = int(caps, 16)
        assert bits & (1 << 12) and not bits & (1 << 27), caps  # CAP_NET_ADMIN in, CAP_MKNOD out
        assert env == "1 2"  # environment wins over the env file
        assert init == "orch-init"
    finally:
        cluster.orch("rm", "box", check=False)
