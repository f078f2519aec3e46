"""Task status only moves forward; terminal states are final (controlplane/controllers/transitions.py)."""

from __future__ import annotations

import pytest
from controllers_helpers import service, task
from hypothesis import given
from hypothesis import strategies as st

from controlplane.controllers import TransitionError, advance, can_advance
from model.objects import TaskState as T


@pytest.mark.parametrize(("current", "new", "ok"), [
    (T.NEW, T.PENDING, True),
    (T.PENDING, T.RUNNING, True),  # skipping states is fine: reports are batched
    (T.ASSIGNED, T.REJECTED, True),
    (T.RUNNING, T.FAILED, True),
    (T.RUNNING, T.ORPHANED, True),
    (T.RUNNING, T.STARTING, False),
    (T.FAILED, T.SHUTDOWN, False),  # terminal is final even when "forward"
    (T.ORPHANED, T.RUNNING, False),  # a returning node's late report
    (T.COMPLETE, T.FAILED, False),
])
def test_can_advance(current: T, new: T, ok: bool) -> None:
    assert can_advance(current, new) is ok


def test_advance_copies_and_stamps() -> None:
    t = task("t1", service(), state=T.STARTING, at=1.0)
    moved = advance(t, T.FAILED, now=7.0, error="exit 3", exit_code=3, container_id="c1")
    assert (moved.status.state, moved.status.timestamp, moved.status.exit_code,
            moved.status.container_id, moved.status.error) == (T.FAILED, 7.0, 3, "c1", "exit 3")
    assert t.status.state == T.STARTING and moved.version == t.version


def test_advance_to_the_same_state_is_the_task_itself() -> None:
    t = task("t1", service(), state=T.RUNNING)
    assert advance(t, T.RUNNING, now=5.0) is t


def test_backwards_move_names_task_and_states() -> None:
    t = task("t1", service(), state=T.RUNNING)
    with pytest.raises(TransitionError, match=r"t1 .*running -> starting"):
        advance(t, T.STARTING, now=1.0)


@given(st.lists(st.sampled_from(list(T)), max_size=12))
def test_any_report_sequence_only_moves_forward(reports: list[T]) -> None:
    t = task("t1", service(), state=T.NEW)
    for new in reports:
        before = t.status.state
        try:
            t = advance(t, new, now=0.0)
        except TransitionError:
            assert before.terminal or new < before
        assert t.status.state >= before
        assert not before.terminal or t.status.state == before
