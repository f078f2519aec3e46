"""Controllers: the leader's pure decision logic over services, tasks and nodes.

- ``reconcile.diff``: services + tasks + nodes -> ``Changes`` (create, update,
  delete tasks; ``wakeup`` for a delayed restart); ``apply`` shows the result;
  ``oversized``: a stored service beyond the replica limit, which it skips.
- ``NodeMonitor``: heartbeat age -> node ready/down.
- ``advance``: task status moves forward only; a terminal status is final.
- ``restart``: restart condition, attempts and backoff.
- ``rollout``: rolling updates (the pace of a changed spec, failures,
  rollback) and rebalancing; ``update_started``/``rolled_back``/``revised``
  give a service its next revision.

Invariants: no I/O, no threads, no clock reads: time is an argument. Inputs are
never mutated; every changed object is a copy keeping the ``version`` it was
read at, so the driver's compare-and-swap writes detect a stale view. A pass
over its own result changes nothing.

Errors: ``TransitionError(ValueError)`` for a refused status move; nothing
else raises on well-typed input.
"""

from .changes import Changes, apply
from .nodemonitor import HEARTBEAT_INTERVAL, NODE_GRACE, NodeMonitor
from .reconcile import TASK_HISTORY, IdFactory, diff, holds_slot, oversized, random_id
from .restart import MAX_RESTART_DELAY, restart_allowed, restart_delay, restart_due
from .rollout import HISTORY, REBALANCE_GRACE, revised, rolled_back, same_spec, update_started
from .transitions import TransitionError, advance, can_advance

__all__ = [
    "HEARTBEAT_INTERVAL",
    "HISTORY",
    "MAX_RESTART_DELAY",
    "NODE_GRACE",
    "REBALANCE_GRACE",
    "TASK_HISTORY",
    "Changes",
    "IdFactory",
    "NodeMonitor",
    "TransitionError",
    "advance",
    "apply",
    "can_advance",
    "diff",
    "holds_slot",
    "oversized",
    "random_id",
    "restart_allowed",
    "restart_delay",
    "restart_due",
    "revised",
    "rolled_back",
    "same_spec",
    "update_started",
]
