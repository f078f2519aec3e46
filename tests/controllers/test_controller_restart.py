"""Restart condition, attempts and backoff (controlplane/controllers/restart.py)."""

from __future__ import annotations

import pytest
from controllers_helpers import service, task
from hypothesis import given
from hypothesis import strategies as st

from controlplane.controllers import MAX_RESTART_DELAY, restart_delay, restart_due
from model.objects import RestartPolicy
from model.objects import TaskState as T


@pytest.mark.parametrize(("delay", "attempt", "state", "expected"), [
    (5.0, 0, T.FAILED, 5.0),
    (5.0, 1, T.FAILED, 10.0),
    (5.0, 3, T.COMPLETE, 40.0),
    (5.0, 4, T.FAILED, MAX_RESTART_DELAY),
    (5.0, 10_000, T.FAILED, MAX_RESTART_DELAY),
    (90.0, 2, T.FAILED, 90.0),  # the cap never shortens a configured delay
    (0.0, 5, T.FAILED, 0.0),
    (5.0, 3, T.ORPHANED, 0.0),  # a lost node is not a crash loop
])
def test_restart_delay(delay: float, attempt: int, state: T, expected: float) -> None:
    t = task("t", service(), state=state, attempt=attempt)
    assert restart_delay(t, RestartPolicy(delay=delay)) == expected


def test_a_task_killed_with_its_supervisor_is_replaced_at_once() -> None:
    import dataclasses

    from nodeagent.supervisor.recovery import killed_error

    t = task("t", service(), state=T.FAILED, attempt=2)
    for error in (killed_error(1234), killed_error(0)):
        dead = dataclasses.replace(t, status=dataclasses.replace(t.status, error=error))
        assert restart_delay(dead, RestartPolicy(delay=5.0)) == 0.0
    exited = dataclasses.replace(t, status=dataclasses.replace(t.status, error="exit code 1"))
    assert restart_delay(exited, RestartPolicy(delay=5.0)) == 20.0


def test_restart_due_is_failure_time_plus_delay_or_never() -> None:
    t = task("t", service(), state=T.FAILED, at=100.0, attempt=1)
    assert restart_due(t, RestartPolicy(delay=2.0)) == 104.0
    assert restart_due(t, RestartPolicy(condition="none")) is None
    assert restart_due(t, RestartPolicy(max_attempts=1)) is None


@given(st.floats(0, 1000), st.integers(0, 100))
def test_backoff_is_monotonic_and_bounded(delay: float, attempt: int) -> None:
    policy = RestartPolicy(delay=delay)
    a = restart_delay(task("t", service(), state=T.FAILED, attempt=attempt), policy)
    b = restart_delay(task("t", service(), state=T.FAILED, attempt=attempt + 1), policy)
    assert delay <= a + 1e-9 or delay == 0
    assert a <= b <= max(MAX_RESTART_DELAY, delay)
