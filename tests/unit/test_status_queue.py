"""The worker's status queue: "starting" waits its quiet time and gives way
to a later update; nothing else is held back or lost."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from model.objects import TaskState, TaskStatus
from nodeagent.cluster.session import JOIN_RETRY_MAX, RECONNECT_MAX, next_retry
from nodeagent.cluster.status import StatusQueue

S = TaskState
Update = tuple[str, TaskStatus]


def _u(tid: str, state: TaskState, at: float) -> Update:
    return tid, TaskStatus(state=state, timestamp=at)


def _states(batch: list[Update]) -> list[tuple[str, TaskState]]:
    return [(tid, status.state) for tid, status in batch]


def test_a_quick_start_sends_only_running() -> None:
    q = StatusQueue(quiet=0.25)
    assert not q.add(_u("t1", S.STARTING, 10.0))
    assert q.take(10.05) == []
    assert q.add(_u("t1", S.RUNNING, 10.1))
    assert _states(q.take(10.12)) == [("t1", S.RUNNING)]
    assert q.take(20.0) == [] and q.next_due() is None


def test_a_slow_start_is_shown_as_starting() -> None:
    q = StatusQueue(quiet=0.25)
    q.add(_u("t1", S.STARTING, 10.0))
    assert q.next_due() == 10.25
    assert q.take(10.2) == []
    assert _states(q.take(10.25)) == [("t1", S.STARTING)]
    q.add(_u("t1", S.RUNNING, 11.0))
    assert _states(q.take(11.0)) == [("t1", S.RUNNING)]


def test_a_failed_start_drops_its_starting() -> None:
    q = StatusQueue(quiet=0.25)
    q.add(_u("t1", S.STARTING, 10.0))
    q.add(_u("t2", S.RUNNING, 10.0))
    q.add(_u("t1", S.FAILED, 10.1))
    assert _states(q.take(10.1)) == [("t2", S.RUNNING), ("t1", S.FAILED)]
    assert q.next_due() is None


def test_a_resend_replaces_everything_held() -> None:
    q = StatusQueue(quiet=0.25)
    q.add(_u("t1", S.STARTING, 10.0))
    q.replace([_u("t1", S.STARTING, 10.0), _u("t2", S.RUNNING, 9.0)])
    assert _states(q.take(10.0)) == [("t1", S.STARTING), ("t2", S.RUNNING)]
    assert q.next_due() is None


_STEP = st.tuples(st.sampled_from(["a", "b", "c"]),
                  st.sampled_from([S.STARTING, S.RUNNING, S.FAILED, S.COMPLETE, S.SHUTDOWN]),
                  st.floats(min_value=0.0, max_value=1.0),  # time since the previous update
                  st.booleans())  # take a batch after this update


@given(st.lists(_STEP, max_size=30))
def test_nothing_but_a_superseded_starting_is_lost(steps: list) -> None:  # type: ignore[type-arg]
    """Whatever the timing: every update other than "starting" is sent once,
    in order; each task's last word is sent; a "starting" is sent only if it
    was still the task's latest update when its quiet time ran out."""
    q = StatusQueue(quiet=0.25)
    now, sent, added = 0.0, [], []
    for tid, state, gap, take in steps:
        now += gap
        if take:
            sent += q.take(now)
        update = _u(tid, state, now)
        q.add(update)
        added.append(update)
    sent += q.take(now + 1.0)
    assert ([u for u in sent if u[1].state != S.STARTING]
            == [u for u in added if u[1].state != S.STARTING])
    for tid in {t for t, _ in added}:
        assert [u for u in sent if u[0] == tid][-1] == [u for u in added if u[0] == tid][-1]
    for tid, status in sent:
        if status.state == S.STARTING:
            later = [v for t, v in added if t == tid and v.timestamp > status.timestamp]
            assert not later or later[0].timestamp >= status.timestamp + 0.25


def test_a_joining_node_retries_often_and_a_joined_one_backs_off() -> None:
    """Before its first session a node retries every JOIN_RETRY_MAX at most
    (`orch up` starts agents with the control plane); once joined, a lost
    control plane is retried with backoff up to RECONNECT_MAX."""
    delays = [0.05]
    for _ in range(8):
        delays.append(next_retry(delays[-1], joined=False))
    assert max(delays) == JOIN_RETRY_MAX < RECONNECT_MAX
    delays = [0.05]
    for _ in range(8):
        delays.append(next_retry(delays[-1], joined=True))
    assert delays[:4] == [0.05, 0.1, 0.2, 0.4] and max(delays) == RECONNECT_MAX
