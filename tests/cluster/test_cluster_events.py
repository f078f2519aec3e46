"""`orch events` on the real cluster: a node labelled, a service deployed
with a health check (its tasks created, running, healthy), scaled down (a
task told to stop, then shut down)."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tests.cluster.conftest import LocalCluster
from tests.cluster.test_cluster_rollouts import _manifest, _web


def _until(lines: queue.Queue[dict[str, Any]], seen: list[dict[str, Any]], want: Any,
           timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            event = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            break
        seen.append(event)
        if want(event):
            return event
    raise AssertionError(f"no such event within {timeout} s; seen: {seen}")


def _json_lines(proc: subprocess.Popen[str]) -> queue.Queue[dict[str, Any]]:
    """``proc``'s stdout, a JSON object a line, read into a queue on a thread."""
    lines: queue.Queue[dict[str, Any]] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(json.loads(line))

    threading.Thread(target=read, daemon=True).start()
    return lines


def test_events_follow_nodes_services_and_tasks(cluster: LocalCluster, tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "orch", "events", "-o", "json"], env=cluster.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = _json_lines(proc)
    seen: list[dict[str, Any]] = []
    try:
        # The stream is open once a change made now shows (events before it are not printed).
        def labelled(event: dict[str, Any]) -> bool:
            return event["type"] == "node" and event["action"] == "label"

        for attempt in range(30):
            cluster.orch("node", "label", "n1", f"events-probe={attempt}")
            try:
                _until(lines, seen, labelled, timeout=1)
                break
            except AssertionError:
                continue
        cluster.orch("deploy", "-f", _manifest(tmp_path, "ev", _web("v1", 2).replace("  web:", "  evweb:")))
        _until(lines, seen, lambda e: e["type"] == "service" and e["action"] == "create"
               and e["name"] == "evweb")
        created = _until(lines, seen, lambda e: e["type"] == "task" and e["action"] == "create")
        assert created["name"].startswith("evweb.")
        assert created["attributes"]["state"] in ("pending", "assigned")  # placed before it is stored
        running = _until(lines, seen, lambda e: e["type"] == "task" and e["action"] == "running")
        assert running["attributes"]["node"] in ("n1", "n2", "n3")
        _until(lines, seen, lambda e: e["type"] == "task" and e["action"] == "health healthy")
        cluster.orch("scale", "evweb=1")
        _until(lines, seen, lambda e: e["type"] == "service" and e["action"] == "scale"
               and e["attributes"] == {"replicas": 1})
        stopped = _until(lines, seen, lambda e: e["type"] == "task" and e["action"] == "desired shutdown")
        _until(lines, seen, lambda e: e["id"] == stopped["id"] and e["action"] == "shutdown")
    finally:
        proc.terminate()
        proc.wait(10)
        cluster.orch("rm", "evweb", check=False)
        cluster.orch("node", "label", "n1", "events-probe-", check=False)


def test_events_since_replays_what_happened_before_the_stream(cluster: LocalCluster, tmp_path: Path) -> None:
    t0 = time.time()
    cluster.orch("deploy", "-f", _manifest(tmp_path, "past", _web("v1", 1).replace("  web:", "  pastweb:")))
    proc = subprocess.Popen([sys.executable, "-m", "orch", "events", "--since", str(t0 - 1), "-o", "json",
                             "-f", "type=service,service=pastweb"], env=cluster.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = _json_lines(proc)
    try:
        created = _until(lines, [], lambda e: e["action"] == "create")
        # The deploy was over before the stream opened: its creation comes
        # from the control plane's memory, with the time it happened.
        assert created["name"] == "pastweb" and created["type"] == "service"
        assert t0 - 1 <= created["time"] <= time.time()
        bad = cluster.orch("events", "--since", "last week", check=False)
        assert bad.returncode == 1 and bad.stderr.startswith("orch: error: --since 'last week'")
    finally:
        proc.terminate()
        proc.wait(10)
        cluster.orch("rm", "pastweb", check=False)
