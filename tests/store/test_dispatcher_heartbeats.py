"""Which heartbeats a dispatcher stores: a follower's every WRITE_AGE, the
leader's own sessions' only every LEADER_WRITE_AGE (its monitor reads them
in memory), a down node's at once; and what ``heard`` tells the monitor."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator

import pytest
from store_helpers import make_node

from controlplane.dispatcher import HEARD_KEPT, LEADER_WRITE_AGE, WRITE_AGE, Dispatcher, Outbox, _Session
from controlplane.store import Informer, Store
from model.objects import Node

T0 = 1_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def setup(store: Store, informer: Informer,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Dispatcher, Clock, list[bool], Node]]:
    monkeypatch.setattr("controlplane.dispatcher.LAZY_SESSIONS", 1)  # one session is a big cluster here
    clock, leading = Clock(), [False]
    dispatcher = Dispatcher(store, informer, "t", clock=clock, leading=lambda: leading[0])
    dispatcher._stop.set()  # the test flushes by hand
    node = store.create(dataclasses.replace(make_node("n1"), state="ready", last_heartbeat=T0))
    informer.wait_revision(node.version, 10)
    loop = asyncio.new_event_loop()
    dispatcher.sessions[node.id] = _Session(node.id, Outbox(loop))
    try:
        yield dispatcher, clock, leading, node
    finally:
        dispatcher.stop()
        loop.close()


def _beat_and_flush(d: Dispatcher, clock: Clock, node: Node, at: float, informer: Informer) -> float:
    clock.now = at
    with d._lock:
        d.heartbeats[node.id] = at
    d._flush_heartbeats()
    stored = d.store.get_node(node.id)
    assert stored is not None
    informer.wait_revision(stored.version, 10)
    return stored.last_heartbeat


def test_a_follower_stores_beats_every_write_age_the_leader_rarely(
        setup: tuple[Dispatcher, Clock, list[bool], Node], informer: Informer) -> None:
    d, clock, leading, node = setup
    assert _beat_and_flush(d, clock, node, T0 + WRITE_AGE, informer) == T0 + WRITE_AGE
    leading[0] = True
    assert _beat_and_flush(d, clock, node, T0 + 2 * WRITE_AGE, informer) == T0 + WRITE_AGE
    assert d.heard(node.id) == T0 + 2 * WRITE_AGE  # what the leader's monitor reads
    at = T0 + WRITE_AGE + LEADER_WRITE_AGE
    assert _beat_and_flush(d, clock, node, at, informer) == at


def test_a_down_node_heard_again_is_stored_at_once_even_by_the_leader(
        setup: tuple[Dispatcher, Clock, list[bool], Node], store: Store, informer: Informer) -> None:
    d, clock, leading, node = setup
    leading[0] = True
    down = store.update(dataclasses.replace(node, state="down"))
    informer.wait_revision(down.version, 10)
    assert _beat_and_flush(d, clock, node, T0 + 0.1, informer) == T0 + 0.1


def test_a_small_clusters_leader_stores_beats_as_a_follower_does(
        setup: tuple[Dispatcher, Clock, list[bool], Node], informer: Informer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    d, clock, leading, node = setup
    monkeypatch.setattr("controlplane.dispatcher.LAZY_SESSIONS", 2)
    leading[0] = True
    assert _beat_and_flush(d, clock, node, T0 + WRITE_AGE, informer) == T0 + WRITE_AGE


def test_heard_outlives_the_session_for_a_while(setup: tuple[Dispatcher, Clock, list[bool], Node]) -> None:
    """A node whose session just ended (it reconnects elsewhere, or died)
    keeps its last beat for the monitor's grace, not 0."""
    d, clock, _, node = setup
    with d._lock:
        d.heartbeats[node.id] = T0
        del d.sessions[node.id]
    d._flush_heartbeats()
    assert d.heard(node.id) == T0
    clock.now = T0 + HEARD_KEPT + 1
    d._flush_heartbeats()
    assert d.heard(node.id) == 0.0
