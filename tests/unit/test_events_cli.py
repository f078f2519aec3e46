"""`orch events`: what changed between two versions of an object (pure)."""

from __future__ import annotations

import dataclasses

import pytest

from model.objects import Node, Service, ServiceSpec, Task, TaskState, TaskStatus, UpdateStatus
from orch.cli.client import CLIError
from orch.cli.eventscmd import describe, parse_filters, wanted

SPEC = ServiceSpec(name="web", image="busybox", replicas=2)
SVC = Service(id="s1", spec=SPEC)
TASK = Task(id="t1234567890", service_id="s1", service_name="web", slot=1, spec=SPEC, node_id="n1id",
            status=TaskStatus(state=TaskState.PENDING, message="created"))


def _status(task: Task, **kw: object) -> Task:
    return dataclasses.replace(task, status=dataclasses.replace(task.status, **kw))  # type: ignore[arg-type]


def test_a_task_moving_health_and_desired_state() -> None:
    assert describe("task", None, TASK) == [("create", {"state": "pending"})]
    running = _status(TASK, state=TaskState.RUNNING, message="running", health="starting")
    assert describe("task", TASK, running) == [("running", {"node_id": "n1id"}), ("health starting", {})]
    healthy = _status(running, health="healthy")
    assert describe("task", running, healthy) == [("health healthy", {})]
    stopping = dataclasses.replace(healthy, desired_state=TaskState.SHUTDOWN)
    assert describe("task", healthy, stopping) == [("desired shutdown", {})]
    failed = _status(healthy, state=TaskState.FAILED, error="exit code 3")
    assert describe("task", healthy, failed) == [("failed", {"node_id": "n1id", "error": "exit code 3"})]
    assert describe("task", failed, None) == [("remove", {})]
    why = "no suitable node (memory on 3 nodes)"
    assert describe("task", TASK, _status(TASK, message=why)) == [("pending", {"message": why})]


def test_a_service_updated_scaled_and_its_rollout() -> None:
    updated = dataclasses.replace(SVC, revision=2, note="deploy", update_status=UpdateStatus(
        state="updating", started_at=5.0, total=2, message="update in progress"))
    assert describe("service", SVC, updated) == [
        ("update", {"revision": 2, "note": "deploy"}),
        ("rollout updating", {"message": "update in progress", "updated": 0, "total": 2})]
    progressed = dataclasses.replace(updated, update_status=dataclasses.replace(updated.update_status,
                                                                                updated=1))
    assert describe("service", updated, progressed) == []  # progress alone is no event
    paused = dataclasses.replace(progressed, update_status=dataclasses.replace(
        progressed.update_status, state="paused", message="update paused: task web.1 failed"))
    assert describe("service", progressed, paused) == [
        ("rollout paused", {"message": "update paused: task web.1 failed", "updated": 1, "total": 2})]
    scaled = dataclasses.replace(paused, spec=dataclasses.replace(SPEC, replicas=5))
    assert describe("service", paused, scaled) == [("scale", {"replicas": 5})]


def test_a_node_down_back_and_drained() -> None:
    node = Node(id="n1id", name="n1", address="10.0.0.1:7701", state="ready")
    down = dataclasses.replace(node, state="down")
    assert describe("node", node, down) == [("down", {"address": "10.0.0.1:7701"})]
    drained = dataclasses.replace(node, availability="drain")
    assert describe("node", node, drained) == [("drain", {})]
    assert describe("node", node, dataclasses.replace(node, last_heartbeat=9.0)) == []  # a heartbeat


def test_filters() -> None:
    assert parse_filters(["type=task", "type=node", "service=web"]) == {"type": {"task", "node"},
                                                                         "service": {"web"}}
    for bad in ("type=pod", "colour=red", "service", "node="):
        with pytest.raises(CLIError, match="invalid filter"):
            parse_filters([bad])
    nodes = {"n1id": "n1"}
    assert wanted("task", TASK, parse_filters(["service=web", "node=n1"]), nodes)
    assert not wanted("task", TASK, parse_filters(["node=n2"]), nodes)
    assert not wanted("service", SVC, parse_filters(["type=task"]), nodes)
    assert wanted("service", SVC, parse_filters(["service=web"]), nodes)
    assert not wanted("node", Node(id="n2id", name="n2"), parse_filters(["service=web"]), nodes)


def test_filters_may_be_comma_separated() -> None:
    from orch.cli.eventscmd import parse_filters

    assert parse_filters(["type=task,service=web", "service=db"]) == {
        "type": {"task"}, "service": {"web", "db"}}


def test_a_stored_time_back_to_unix_seconds() -> None:
    from model.logtime import parse_log_time, stamp, to_unix

    assert to_unix(stamp(1_714_564_800, 250_000_000)) == 1_714_564_800.25
    assert abs(to_unix(parse_log_time("10m", "--since", now=1_000_000.0)) - 999_400.0) < 1e-6
