"""Node liveness from heartbeats: ready <-> down, decided on the leader only.

The dispatcher records each agent heartbeat in ``Node.last_heartbeat``; the
leader also reads the heartbeats its own replica's sessions heard (the
informer's copy of the store can lag a busy leader by seconds:
``Orchestrator._heard``). The monitor is the only thing that changes
``Node.state``. A node is down once its
last heartbeat is older than the grace period, and ready again as soon as a
heartbeat is fresh, which sets ``Node.ready_since`` (a node that never
heartbeated, state ``unknown``, becomes ready on its first heartbeat or down
when its registration goes stale).

The numbers, and why:

- agents heartbeat on their session stream every ``HEARTBEAT_INTERVAL``
  (0.5 s), and send a liveness beacon (UDP, sealed: ``common.beacon``)
  every 0.1 s; the dispatcher keeps a node's stored heartbeat at most
  ~0.6 s behind its last beacon, and stores a beacon heard after a gap at
  once;
- ``NODE_GRACE`` (1.5 s): a 1 s blip (a lost link, a GC pause) does not flap
  the node, since its first beacon after the blip arrives within 0.1 s of
  the link's return (a datagram is never retransmitted, so TCP's backoff,
  which delays the stream's next heartbeat to ~1.4 s after such a blip,
  plays no part), while a dead or cut-off node is detected 1.5 s after its
  last beacon, and its tasks run elsewhere within 2 s of the cut
  (``bench/failover.py``'s ``partition_failover_s``). The driver sleeps until
  ``next_check`` instead of polling, so detection adds no tick; orphaned
  tasks are replaced without restart delay (``restart``).

The leader allows its own lag (``slack``): heartbeats its dispatcher's
loop read late, because the loop was kept from running, are not a node's
silence (``controlplane.dispatcher.LoopLag``).

A heartbeat exactly ``grace`` old has expired, so ``next_check`` is the very
instant at which ``observe`` marks the node down (no busy wait at the boundary).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Literal

from model.objects import Node

NodeState = Literal["ready", "down", "unknown"]

HEARTBEAT_INTERVAL = 0.5  # seconds between an agent's heartbeats
NODE_GRACE = 1.5  # seconds without a heartbeat before a node is down


class NodeMonitor:
    def __init__(self, grace: float = NODE_GRACE) -> None:
        if grace <= 0:
            raise ValueError(f"node grace period must be positive, got {grace}")
        self.grace = grace

    def fresh(self, node: Node, now: float, slack: float = 0.0) -> bool:
        return now - node.last_heartbeat < self.grace + slack

    def observe(self, nodes: Iterable[Node], now: float, slack: float = 0.0) -> list[Node]:
        """Copies of the nodes whose state changes at ``now`` (others are left
        out); ``slack``: seconds more the heartbeats may be late (the leader's
        own lag, ``dispatcher.LoopLag``)."""
        changed = []
        for node in nodes:
            state: NodeState = "ready" if self.fresh(node, now, slack) else "down"
            if state != node.state:
                since = now if state == "ready" else node.ready_since
                changed.append(dataclasses.replace(node, state=state, ready_since=since))
        return changed

    def next_check(self, nodes: Iterable[Node], now: float, slack: float = 0.0) -> float | None:
        """The earliest time after ``now`` at which a ready node expires, if any.

        A ready node already expired at ``now`` is not counted: ``observe`` at
        ``now`` marks it down.

        A down node comes back through a heartbeat, which is a store event, so
        it never needs a timer.
        """
        expiries = [n.last_heartbeat + self.grace + slack for n in nodes
                    if n.state == "ready" and n.last_heartbeat + self.grace + slack > now]
        return min(expiries, default=None)
