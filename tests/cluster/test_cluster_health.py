"""Health checks in the cluster (real nodes, real containers): a task with a
check gets traffic through its VIP and DNS only once healthy, and one that
turns unhealthy is replaced under its restart policy; `orch ps` shows it."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

from tests.cluster.conftest import LocalCluster, wait_for
from tests.cluster.test_service_networking import (
    WHO_SERVER,
    _address,
    _client,
    _exec,
    _hostname,
    _lookup,
    _requests,
    _stack,
    _vip,
    _vip_endpoints,
)


def _checked_api(replicas: int, health: dict[str, str], restart: str = "any") -> str:
    check = "".join(f"      {key}: {value}\n" for key, value in health.items())
    return ("  api:\n    image: busybox\n" + WHO_SERVER + "    healthcheck:\n" + check
            + "    deploy:\n"
            + f"      replicas: {replicas}\n"
            + f"      restart_policy: {{condition: {restart}, delay: 0s}}\n"
            + '      placement: {constraints: ["node.hostname != n1"]}\n')


def test_vip_and_dns_send_only_to_healthy_tasks(cluster: LocalCluster, tmp_path: Path) -> None:
    # Never unhealthy (1000 retries): a task is "starting" until /tmp/ready exists.
    health = {"test": '["CMD-SHELL", "test -f /tmp/ready"]', "interval": "300ms", "retries": "1000"}
    path = _stack(tmp_path, "hc", "services:\n" + _checked_api(2, health) + textwrap.indent(_client(), "  "))
    # Detached: `orch deploy` would wait for the replicas to pass their check.
    cluster.orch("deploy", "-d", "-f", path)
    try:
        def both_running() -> list[dict[str, Any]] | None:
            running = cluster.running("api")
            return running if len(running) == 2 and cluster.running("client") else None

        api = wait_for(both_running)
        vip = _vip(cluster, "hc_default", "api")
        wait_for(lambda: {t["health"] for t in cluster.running("api")} == {"starting"})
        assert "(starting)" in cluster.orch("ps", "api").stdout
        assert _lookup(cluster, "client.1", "tasks.api") == set()
        assert _vip_endpoints(cluster, "n1", vip) == set()
        ready = api[0]
        _exec(cluster, _hostname(ready), "touch /tmp/ready")
        wait_for(lambda: {t["id"]: t["health"] for t in cluster.running("api")}[ready["id"]] == "healthy")
        want = {_address(ready, "hc_default")}
        wait_for(lambda: _lookup(cluster, "client.1", "tasks.api") == want
                 and _vip_endpoints(cluster, "n1", vip) == want)
        answers = _requests(cluster, "client.1", "http://api:9000/cgi-bin/who", 10)
        assert {host for _, host in answers} == {_hostname(ready)}, answers
        assert "(healthy)" in cluster.orch("ps", "api").stdout
    finally:
        cluster.orch("rm", "api", "client", check=False)


def test_an_unhealthy_task_is_replaced(cluster: LocalCluster, tmp_path: Path) -> None:
    health = {"test": '["CMD-SHELL", "test ! -f /tmp/sick"]', "interval": "300ms", "retries": "2"}
    path = _stack(tmp_path, "sick", "services:\n" + _checked_api(1, health))
    cluster.orch("deploy", "-f", path)
    try:
        [first] = cluster.running("api")
        wait_for(lambda: [t["health"] for t in cluster.running("api")] == ["healthy"])
        _exec(cluster, _hostname(first), "touch /tmp/sick")

        def replaced() -> bool:
            tasks = json.loads(cluster.orch("ps", "api", "--all", "-o", "json").stdout)
            old = next(t for t in tasks if t["id"] == first["id"])
            new = [t for t in tasks if t["id"] != first["id"] and t["state"] == "running"]
            return old["state"] == "failed" and "unhealthy" in old["error"] and len(new) == 1 \
                and new[0]["health"] == "healthy"

        wait_for(replaced, timeout=60)
        assert len(cluster.running("api")) == 1
    finally:
        cluster.orch("rm", "api", check=False)
