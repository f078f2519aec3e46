"""The node's engine and the worker's executor above it: a request becomes a
checked record with the node's defaults, each verb one supervisor call, and
a task's log lines carry node, service, task and container.

The engine, the executor and specbuild are the real ones; below them a
supervisor client that records what it was asked (tests/unit/engine_fakes)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from structlog.testing import capture_logs
from structlog.typing import FilteringBoundLogger

from common.errors import InvalidArgument, NotFound
from common.logging import get_logger
from model.objects import ServiceSpec, Task
from nodeagent.cluster.executor import SERVICE_LABEL, TASK_LABEL, TaskExecutor, container_request
from nodeagent.cluster.worker import Worker
from proto import agent_pb2 as pb
from tests.unit.engine_fakes import engine

ROOT = Path(__file__).resolve().parents[2]


def _task(tid: str = "t0", image: str = "busybox", grace: float = 10.0) -> Task:
    spec = ServiceSpec(name="web", image=image, command=["sleep", "1"], stop_grace_period=grace)
    return Task(id=tid, service_id="s", service_name="web", slot=1, spec=spec)


def test_a_request_becomes_a_record_with_the_nodes_default_pids_limit(tmp_path: Path) -> None:
    eng, _ = engine(tmp_path, default_pids_limit=321)
    record = eng.record(pb.ContainerConfig(image="busybox", name="one", network="none"))
    assert record["spec"]["name"] == "one" and record["spec"]["resources"]["pids_limit"] == 321
    assert record["config"] == {"image": "busybox", "name": "one", "network": "none"}
    assert (record["image"], record["restart_policy"]) == ("busybox", "no")


@pytest.mark.parametrize(("cfg", "error"), [
    (pb.ContainerConfig(), "no image given"),
    (pb.ContainerConfig(image="busybox", name="a b"), "invalid container name"),
    (pb.ContainerConfig(image="busybox", pids_limit=-2), "pids"),
])
def test_a_bad_request_is_refused_before_the_supervisor_hears_of_it(tmp_path: Path, cfg: pb.ContainerConfig,
                                                                   error: str) -> None:
    eng, sup = engine(tmp_path)
    with pytest.raises(InvalidArgument, match=error):
        eng.run(cfg)
    assert sup.calls == []


def test_a_missing_image_is_not_found(tmp_path: Path) -> None:
    eng, sup = engine(tmp_path)
    with pytest.raises(NotFound, match="nosuch"):
        eng.create(pb.ContainerConfig(image="nosuch"))
    assert sup.calls == []


def test_a_local_run_is_one_supervisor_call_and_says_which_container(tmp_path: Path) -> None:
    eng, sup = engine(tmp_path)
    with capture_logs() as logs:
        eng.run(pb.ContainerConfig(image="busybox", name="one", network="none"))
    [(op, args)] = sup.calls
    assert op == "run" and args["record"]["spec"]["name"] == "one"
    assert [e for e in logs if e["event"] == "container started"] == [
        {"event": "container started", "log_level": "info", "container": "c-one", "name": "one",
         "image": "busybox"}]


def test_a_tasks_request_is_the_one_adapters(tmp_path: Path) -> None:
    """The controller's record is the engine's record of container_request(task)."""
    eng, sup = engine(tmp_path)
    ctl = TaskExecutor(eng).controller(_task(), _logger())
    ctl.prepare()
    ctl.start(lambda rec, err: None)
    [(record, _)] = sup.runs
    expected = eng.record(container_request(_task()))
    assert record["config"] == expected["config"]
    assert record["spec"]["labels"] == {TASK_LABEL: "t0", SERVICE_LABEL: "web"}
    assert record["spec"]["process"]["args"] == ["sleep", "1"]


def test_a_controller_stops_with_its_tasks_grace_and_a_found_one_with_the_default(tmp_path: Path) -> None:
    eng, sup = engine(tmp_path)
    executor = TaskExecutor(eng)
    executor.found("t0", "c0", _logger(), _task(grace=2.5)).shutdown()
    executor.found("t1", "c1", _logger()).shutdown()
    executor.found("t1", "c1", _logger()).terminate()
    executor.found("t1", "c1", _logger()).remove()
    assert sup.calls == [("stop", {"id": "c0", "timeout": 2.5}), ("stop", {"id": "c1", "timeout": 10.0}),
                         ("kill", {"id": "c1", "signal": 9}), ("remove", {"id": "c1", "force": True})]


def test_the_executor_fences_ports_and_finds_task_containers(tmp_path: Path) -> None:
    eng, sup = engine(tmp_path)
    executor = TaskExecutor(eng)
    executor.configure([7701, 2379, 7701, 17000])
    sup.listed = [{"id": "a", "labels": {TASK_LABEL: "t0"}}, {"id": "b", "labels": {}}, {"id": "c"}]
    assert [rec["id"] for rec in executor.task_containers()] == ["a"]
    assert sup.calls[0] == ("protect", {"ports": [2379, 7701, 17000]})
    node = executor.describe()
    assert node.cpus >= 1 and node.memory_bytes > 0


def test_a_tasks_start_logs_node_service_task_and_container(tmp_path: Path) -> None:
    """The worker binds the node, then service and task; the engine the container."""
    eng, sup = engine(tmp_path)
    w = Worker(TaskExecutor(eng), "127.0.0.1:1", "t", "n1", "127.0.0.1:2", {}, str(tmp_path),
               max_starting=1)
    with capture_logs() as logs:
        w.reconciler.reconcile({"t0": _task()})
        sup.answer(0, cid="c0")
        w.on_event("exited", {"id": "c0", "exit_code": 0, "labels": {TASK_LABEL: "t0", SERVICE_LABEL: "web"}})
    started = [e for e in logs if e["event"] == "container started"]
    assert started == [{"event": "container started", "log_level": "info", "logger": "orch.engine",
                        "node": "n1", "service": "web", "task": "t0", "container": "c0",
                        "name": "web.1.t0", "image": "busybox"}]
    exited = [e for e in logs if e["event"] == "task's container exited"]
    assert [(e["node"], e["service"], e["task"], e["container"]) for e in exited] == [
        ("n1", "web", "t0", "c0")]


def test_a_task_that_cannot_start_says_so_with_its_context(tmp_path: Path) -> None:
    eng, _ = engine(tmp_path)
    w = Worker(TaskExecutor(eng), "127.0.0.1:1", "t", "n1", "127.0.0.1:2", {}, str(tmp_path))
    with capture_logs() as logs:
        w.reconciler.reconcile({"t0": _task(image="nosuch")})
    [line] = [e for e in logs if e["event"] == "task did not start"]
    assert (line["node"], line["service"], line["task"], line["state"]) == ("n1", "web", "t0", "rejected")
    assert "nosuch" in line["error"]


AGENT_LINES = """
import sys
from nodeagent.agent.daemon import _configure_logging, _import_grpc
from common.logging import get_logger

_import_grpc()
_configure_logging()
get_logger("orch.worker").bind(node="n1").bind(service="web", task="t0").info("hello", n=1)
print(" ".join(sorted(m for m in ("rich", "pygments", "ssl") if m in sys.modules)))
"""


def test_the_agents_lines_are_json_with_context_and_skip_structlogs_console_extras() -> None:
    """One JSON object per line with event, level, timestamp, logger and the
    bound fields; structlog loads without rich (about 5.5 MB of the agent's
    RSS) or ssl (grpc's import keeps it out)."""
    proc = subprocess.run([sys.executable, "-c", AGENT_LINES], cwd=ROOT, capture_output=True, text=True,
                          check=True, timeout=60)
    assert proc.stdout.strip() == ""
    [line] = [json.loads(raw) for raw in proc.stderr.splitlines()]
    assert line.pop("timestamp").endswith("Z")
    assert line == {"event": "hello", "level": "info", "logger": "orch.worker", "node": "n1",
                    "service": "web", "task": "t0", "n": 1}


def _logger() -> FilteringBoundLogger:
    return get_logger("test").bind(node="n1")
