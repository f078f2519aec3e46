"""Node liveness from heartbeats: ready <-> down, decided on the leader only.

The dispatcher records each agent heartbeat in ``Node.last_heartbeat``; the
monitor is the only thing that changes ``Node.state``. A node is down once its
last heartbeat is older than the grace period, and ready again as soon as a
heartbeat is fresh, which sets ``Node.ready_since`` (a node that never
heartbeated, state ``unknown``, becomes ready on its first heartbeat or down
when its registration goes stale).

The numbers, and why:

- agents heartbeat every ``HEARTBEAT_INTERVAL`` (0.5 s);
- ``NODE_GRACE`` (3 s) = six intervals: a blip of up to ~2.5 s (a lost
  packet, a GC pause, a control-plane failover) does not flap the node, while
  a dead node is detected at most 3 s after its last heartbeat. The driver
  sleeps until ``next_check`` instead of polling, so detection adds no tick;
  orphaned tasks are replaced without restart delay (``restart``), which
  leaves about 2 s of a 5 s budget for scheduling and starting the replacement.

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
NODE_GRACE = 3.0  # seconds without a heartbeat before a node is down


class NodeMonitor:
    def __init__(self, grace: float = NODE_GRACE) -> None:
        if grace <= 0:
            raise ValueError(f"node grace period must be positive, got {grace}")
        self.grace = grace

    def fresh(self, node: Node, now: float) -> bool:
        return now - node.last_heartbeat < self.grace

    def observe(self, nodes: Iterable[Node], now: float) -> list[Node]:
        """Copies of the nodes whose state changes at ``now`` (others are left out)."""
        changed = []
        for node in nodes:
            state: NodeState = "ready" if self.fresh(node, now) else "down"
            if state != node.state:
                since = now if state == "ready" else node.ready_since
                changed.append(dataclasses.replace(node, state=state, ready_since=since))
        return changed

    def next_check(self, nodes: Iterable[Node], now: float) -> float | None:
        """The earliest time after ``now`` at which a ready node expires, if any.

        A ready node already expired at ``now`` is not counted: ``observe`` at
        ``now`` marks it down.

        A down node comes back through a heartbeat, which is a store event, so
        it never needs a timer.
        """
        expiries = [n.last_heartbeat + self.grace for n in nodes
                    if n.state == "ready" and n.last_heartbeat + self.grace > now]
        return min(expiries, default=None)
