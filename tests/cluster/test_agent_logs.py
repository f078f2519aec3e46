"""A node's agent log: a task's start is one JSON line naming the node, the
service, the task and its container (bound by the worker and the engine)."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path
from typing import Any

from tests.cluster.conftest import LocalCluster, wait_for


def agent_lines(cluster: LocalCluster, node: str) -> list[dict[str, Any]]:
    [state_dir] = [n["state_dir"] for n in cluster.record()["nodes"] if n["name"] == node]
    lines = (Path(state_dir) / "agent.log").read_text(errors="replace").splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def test_a_tasks_start_is_logged_with_node_service_task_and_container(cluster: LocalCluster,
                                                                      tmp_path: Path) -> None:
    path = tmp_path / "logged.yaml"
    path.write_text(textwrap.dedent("""
        services:
          logged:
            image: busybox
            command: ["sleep", "3600"]
            stop_grace_period: 1s
    """))
    cluster.orch("deploy", "-f", str(path))
    try:
        [task] = cluster.running("logged")

        def started() -> list[dict[str, Any]]:
            return [line for line in agent_lines(cluster, task["node"])
                    if line["event"] == "container started" and line.get("task") == task["id"]]

        [line] = wait_for(started)
        assert (line["node"], line["service"], line["logger"], line["level"]) == (
            task["node"], "logged", "orch.engine", "info")
        assert re.fullmatch(r"[0-9a-f]{64}", line["container"]) and line["name"].startswith("logged.1.")
        assert line["timestamp"].endswith("Z")
    finally:
        cluster.orch("rm", "logged")
