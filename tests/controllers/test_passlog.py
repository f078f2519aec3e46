"""What a leader's pass logs (pure): a line naming each task that one thing
happens to (orphaned, replaced after it ended, not restarted), one line per
service for bulk changes, and no more than ``TASK_LINES`` per-task lines a
pass: the rest are counted in their service's line."""

from __future__ import annotations

import dataclasses

from controllers_helpers import Ids, node, service, task
from structlog.testing import capture_logs
from structlog.typing import EventDict

from controlplane.controllers import diff
from controlplane.passlog import TASK_LINES, PassReport
from model.objects import Node, Service, Task, TaskState, TaskStatus


def _report(tasks: list[Task], *svcs: Service, nodes: dict[str, Node],
            now: float = 100.0) -> list[EventDict]:
    """The lines of the pass ``diff`` makes of ``tasks``, reported against them."""
    changes = diff({s.id: s for s in svcs}, tasks, nodes, now, new_id=Ids())
    by_id = {t.id: t for t in tasks}
    report = PassReport()
    report.changes(changes, by_id.get)
    with capture_logs() as logs:
        report.emit()
    return logs


def test_each_task_acted_on_alone_is_named_and_bulk_changes_are_counted_per_service() -> None:
    web = service("web", replicas=2, condition="on-failure")
    db = service("db", replicas=1, condition="none")
    tasks = [
        task("w1", web, 1, node_id="n1", state=TaskState.FAILED),  # restarted
        task("w2", web, 2, node_id="gone", state=TaskState.RUNNING),  # its node is down: orphaned
        task("w3", web, 3, node_id="n1", state=TaskState.RUNNING),  # above replicas: retired
        task("d1", db, 1, node_id="n1", state=TaskState.FAILED),  # condition none: not restarted
    ]
    logs = _report(tasks, web, db, nodes={"n1": node("n1"), "gone": node("gone", state="down")})
    named = {(e["event"], e.get("task_id")) for e in logs if "task_id" in e}
    assert named == {("task orphaned: its node is down", "w2"), ("task replaced after it ended", "w1"),
                     ("task replaced after it ended", "w2"),
                     ("task not restarted: its restart policy declines", "d1")}
    for line in logs:
        if "task_id" in line:
            original = next(t for t in tasks if t.id == line["task_id"])
            assert (line["task"], line["service"]) == (original.name, original.service_name)
    [summary] = [e for e in logs if e["event"] == "service reconciled"]
    assert summary == {"event": "service reconciled", "service": "svc-web", "created": 2, "retired": 1,
                       "log_level": "info"}


def test_per_task_lines_stop_at_the_cap_and_the_rest_are_counted() -> None:
    big = service("big", replicas=TASK_LINES + 30)
    tasks = [task(f"t{i}", big, i, node_id="gone") for i in range(1, TASK_LINES + 31)]
    logs = _report(tasks, big, nodes={"gone": node("gone", state="down")})
    per_task = [e for e in logs if "task_id" in e]
    assert len(per_task) == TASK_LINES
    [summary] = [e for e in logs if e["event"] == "service reconciled"]
    # 80 orphaned and 80 replaced: 50 lines, the other 110 counted.
    assert summary["orphaned"] + summary["restarted"] == 2 * (TASK_LINES + 30) - TASK_LINES
    assert summary["created"] == TASK_LINES + 30


def test_placement_counts_assigned_tasks_and_groups_waiting_ones_by_explanation() -> None:
    web = service("web", replicas=3)
    waiting = TaskStatus(state=TaskState.PENDING, message="no node has 2 free CPUs")
    placed = [dataclasses.replace(task(f"t{i}", web, i, node_id=""), status=waiting) for i in (1, 2)]
    placed.append(task("t3", web, 3, node_id="n1", state=TaskState.ASSIGNED))
    report = PassReport()
    report.placed(placed)
    with capture_logs() as logs:
        report.emit()
    assert logs == [
        {"event": "service reconciled", "service": "svc-web", "assigned": 1, "log_level": "info"},
        {"event": "tasks wait for a node", "service": "svc-web", "tasks": 2,
         "explanation": "no node has 2 free CPUs", "log_level": "info"},
    ]
