"""Restart policies and back-off (nodeagent/restart.py)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.errors import InvalidArgument
from nodeagent.restart import Backoff, RestartPolicy, parse_restart_policy, should_restart


@pytest.mark.parametrize(
    ("text", "policy", "canonical"),
    [
        ("no", RestartPolicy("no"), "no"),
        ("", RestartPolicy("no"), "no"),
        ("on-failure", RestartPolicy("on-failure", 0), "on-failure"),
        ("on-failure:3", RestartPolicy("on-failure", 3), "on-failure:3"),
        ("on-failure:0", RestartPolicy("on-failure", 0), "on-failure"),
        ("always", RestartPolicy("always"), "always"),
        ("unless-stopped", RestartPolicy("unless-stopped"), "unless-stopped"),
        (" always ", RestartPolicy("always"), "always"),
    ],
)
def test_parse_restart_policy(text: str, policy: RestartPolicy, canonical: str) -> None:
    parsed = parse_restart_policy(text)
    assert parsed == policy
    assert str(parsed) == canonical
    assert parse_restart_policy(str(parsed)) == parsed


@pytest.mark.parametrize(
    "text",
    ["sometimes", "On-Failure", "on-failure:", "on-failure:-1", "on-failure:x", "on-failure:1.5",
     "on-failure:²", "always:3", "no:1", "unless-stopped:2", "on-failure:3:4"],
)
def test_parse_restart_policy_rejects(text: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_restart_policy(text)
    assert repr(text) in info.value.message
    assert "unless-stopped" in info.value.message  # lists the accepted forms
    assert info.value.code == "invalid"


NO = RestartPolicy("no")
ON_FAILURE = RestartPolicy("on-failure")
ON_FAILURE_2 = RestartPolicy("on-failure", 2)
ALWAYS = RestartPolicy("always")
UNLESS = RestartPolicy("unless-stopped")

# policy, exit code, restarts so far, stopped by user -> restart?
SHOULD_RESTART = [
    (NO, 1, 0, False, False),
    (NO, 0, 0, False, False),
    (ON_FAILURE, 0, 0, False, False),
    (ON_FAILURE, 1, 0, False, True),
    (ON_FAILURE, 137, 1000, False, True),  # unlimited
    (ON_FAILURE, 1, 0, True, False),
    (ON_FAILURE_2, 1, 0, False, True),
    (ON_FAILURE_2, 1, 1, False, True),
    (ON_FAILURE_2, 1, 2, False, False),
    (ON_FAILURE_2, 0, 0, False, False),
    (ALWAYS, 0, 0, False, True),
    (ALWAYS, 1, 50, False, True),
    (ALWAYS, 0, 0, True, False),
    (UNLESS, 0, 0, False, True),
    (UNLESS, 2, 9, False, True),
    (UNLESS, 0, 0, True, False),
]


@pytest.mark.parametrize(("policy", "code", "count", "stopped", "expected"), SHOULD_RESTART)
def test_should_restart(
    policy: RestartPolicy, code: int, count: int, stopped: bool, expected: bool
) -> None:
    assert should_restart(policy, code, count, stopped) is expected


def test_backoff_sequence_and_reset() -> None:
    b = Backoff()
    delays = [b.next_delay(uptime=0.5) for _ in range(12)]
    assert delays[:5] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6])
    assert delays[-1] == 60.0
    # Ran for 10 s or more: the streak is over, next restart is quick again.
    assert b.next_delay(uptime=10.0) == pytest.approx(0.1)
    assert b.next_delay(uptime=9.99) == pytest.approx(0.2)
    b.reset()
    assert b.next_delay(uptime=0) == pytest.approx(0.1)


def test_backoff_resumes_from_persisted_streak() -> None:
    assert Backoff(consecutive=3).next_delay(uptime=1) == pytest.approx(0.8)


def test_backoff_huge_streak_is_capped() -> None:
    assert Backoff().delay_for(10_000) == 60.0


@given(st.lists(st.floats(min_value=0, max_value=9.99, allow_nan=False), max_size=200))
def test_backoff_monotone_and_capped_without_reset(uptimes: list[float]) -> None:
    b = Backoff()
    delays = [b.next_delay(u) for u in uptimes]
    assert all(0.1 <= d <= 60.0 for d in delays)
    assert all(a <= c for a, c in itertools.pairwise(delays))


@given(st.lists(st.floats(min_value=0, max_value=100, allow_nan=False), max_size=200))
def test_backoff_reset_rule(uptimes: list[float]) -> None:
    b = Backoff()
    previous = 0.0
    for u in uptimes:
        d = b.next_delay(u)
        assert d <= 60.0
        if u >= 10:
            assert d == pytest.approx(0.1)
        else:
            assert d == min(previous * 2, 60.0) or (previous == 0.0 and d == pytest.approx(0.1))
        previous = d
