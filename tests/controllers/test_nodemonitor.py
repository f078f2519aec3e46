"""Node liveness from heartbeat age (controlplane/controllers/nodemonitor.py)."""

from __future__ import annotations

import dataclasses

import pytest
from controllers_helpers import node

from common.beacon import INTERVAL as BEACON_INTERVAL
from controlplane.controllers import NODE_GRACE, NodeMonitor
from controlplane.dispatcher import BEAT_TICK, WRITE_AGE


@pytest.mark.parametrize(("state", "heartbeat", "now", "expected"), [
    ("ready", 10.0, 12.9, None),
    ("ready", 10.0, 13.0, "down"),  # exactly grace old: expired
    ("ready", 10.0, 99.0, "down"),
    ("down", 10.0, 99.0, None),
    ("down", 98.0, 99.0, "ready"),  # heartbeats again
    ("unknown", 98.0, 99.0, "ready"),  # first heartbeat
    ("unknown", 0.0, 99.0, "down"),  # registered, never heard from
])
def test_observe(state: str, heartbeat: float, now: float, expected: str | None) -> None:
    n = dataclasses.replace(node("n1", state=state), last_heartbeat=heartbeat)
    changed = NodeMonitor(grace=3.0).observe([n], now)
    assert [c.state for c in changed] == ([expected] if expected else [])
    assert n.state == state  # input untouched
    if changed:
        # only the state changes, and ready_since with it when the node becomes ready
        assert changed[0].ready_since == (now if expected == "ready" else n.ready_since)
        assert dataclasses.replace(changed[0], state=state, ready_since=n.ready_since) == n


def test_a_one_second_blip_does_not_flap_but_a_dead_node_is_down_within_grace() -> None:
    mon = NodeMonitor()
    n = dataclasses.replace(node("n1"), last_heartbeat=0.0)
    # beacons every INTERVAL, then a 1 s blip (plus the chaos timer's slack),
    # then beacons again; the store holds a beat once the stored one is
    # WRITE_AGE old, a tick (BEAT_TICK) and a slow write (0.1 s) later
    beats = [i * BEACON_INTERVAL for i in range(20)]
    beats += [beats[-1] + 1.05 + BEACON_INTERVAL * (i + 1) for i in range(20)]
    lag = BEAT_TICK + 0.1
    t, stored = 0.0, 0.0
    while t < beats[-1]:
        heard = max((b for b in beats if b <= t - lag), default=0.0)
        if heard - stored >= WRITE_AGE or t - stored >= WRITE_AGE + lag:
            stored = heard
        n = dataclasses.replace(n, last_heartbeat=stored)
        assert mon.observe([n], t) == [], f"flapped at {t:.2f}"
        t += 0.01
    assert NODE_GRACE + 0.4 <= 2.0  # leaves ~0.4 s to place and start a replacement
    assert [c.state for c in mon.observe([n], beats[-1] + NODE_GRACE)] == ["down"]


def test_next_check_is_the_earliest_expiry_of_a_ready_node() -> None:
    mon = NodeMonitor(grace=3.0)
    nodes = [dataclasses.replace(node("a"), last_heartbeat=10.0),
             dataclasses.replace(node("b"), last_heartbeat=8.0),
             dataclasses.replace(node("c", state="down"), last_heartbeat=1.0)]
    assert mon.next_check(nodes, 10.5) == 11.0
    assert mon.observe(nodes, 11.0)[0].id == "b"
    assert mon.next_check(nodes, 11.0) == 13.0  # b expires now: observe marks it, no timer
    assert mon.next_check(nodes[2:], 11.0) is None


def test_grace_must_be_positive() -> None:
    with pytest.raises(ValueError, match="grace"):
        NodeMonitor(grace=0)


def test_the_leaders_own_lag_is_allowed_then_the_node_expires() -> None:
    """``slack``: the replica read its heartbeats late (its loop stalled),
    so a beat that looks grace old is not yet proof of a dead node."""
    mon = NodeMonitor(grace=1.5)
    n = dataclasses.replace(node("n1"), last_heartbeat=10.0)
    assert mon.observe([n], 12.0, slack=1.0) == []
    assert mon.next_check([n], 12.0, slack=1.0) == 12.5
    assert [c.state for c in mon.observe([n], 12.5, slack=1.0)] == ["down"]
    assert [c.state for c in mon.observe([n], 12.0)] == ["down"]


def test_loop_lag_is_the_current_stall_or_the_worst_recent_lateness() -> None:
    from controlplane.dispatcher import LAG_MEMORY, LAG_TICK, LoopLag

    now = [100.0]
    lag = LoopLag(clock=lambda: now[0])
    assert lag.allowance() == 0.0  # no tick yet: no loop to be late
    lag.record(100.0, 100.0 + LAG_TICK)  # on time
    now[0] = 100.0 + LAG_TICK
    assert lag.allowance() == 0.0
    now[0] += 2.0  # no tick for 2 s, one due every LAG_TICK: the loop is stalled now
    assert lag.allowance() == pytest.approx(2.0 - LAG_TICK)
    lag.record(100.0 + LAG_TICK, now[0])  # it ran again, 2 s late
    assert lag.allowance() == pytest.approx(2.0 - LAG_TICK)  # its backlog may still be read
    lag.record(now[0], now[0] + LAG_TICK)
    now[0] += LAG_MEMORY + 2 * LAG_TICK
    lag.record(now[0] - LAG_TICK, now[0])
    assert lag.allowance() == 0.0  # forgotten after LAG_MEMORY
