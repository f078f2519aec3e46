"""What the dispatcher sends a node when one of its tasks changes (pure)."""

from __future__ import annotations

import dataclasses
import json

from controllers_helpers import service, task

from controlplane.dispatcher import Dispatcher, _Session
from controlplane.model import TaskState, TaskStatus, task_from_dict
from controlplane.store import encode

SVC = service("s1")


def test_a_new_assignment_is_sent_then_its_status_reports_are_not_echoed() -> None:
    session = _Session("n1")
    t = task("t1", SVC, node_id="n1", state=TaskState.ASSIGNED)
    msg = Dispatcher._delta(session, t, False, None)
    assert msg is not None and [a.task_id for a in msg.tasks] == ["t1"]
    assert task_from_dict(json.loads(msg.tasks[0].json)) == dataclasses.replace(t, version=0)
    running = dataclasses.replace(t, status=TaskStatus(state=TaskState.RUNNING))
    assert Dispatcher._delta(session, running, False, t) is None  # the node's own report


def test_a_desired_state_change_is_sent_and_a_move_or_end_removes() -> None:
    session = _Session("n1")
    t = task("t1", SVC, node_id="n1", state=TaskState.RUNNING)
    Dispatcher._delta(session, t, False, None)
    stop = dataclasses.replace(t, desired_state=TaskState.SHUTDOWN)
    msg = Dispatcher._delta(session, stop, False, t)
    assert msg is not None and msg.tasks[0].task_id == "t1"
    done = dataclasses.replace(stop, status=TaskStatus(state=TaskState.SHUTDOWN))
    msg = Dispatcher._delta(session, done, False, stop)
    assert msg is not None and list(msg.removed) == ["t1"]
    assert Dispatcher._delta(session, done, True, done) is None  # already removed


def test_a_task_the_node_was_never_sent_is_sent_on_any_change() -> None:
    session = _Session("n1")  # e.g. it became assigned while the session was being set up
    t = task("t1", SVC, node_id="n1", state=TaskState.RUNNING)
    msg = Dispatcher._delta(session, t, False, dataclasses.replace(t, status=TaskStatus(TaskState.STARTING)))
    assert msg is not None
    assert encode(t).decode() == msg.tasks[0].json
