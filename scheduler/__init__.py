"""Pure placement: a cluster snapshot and pending tasks in, decisions out.

Role: decide a node for each pending task, or say why none fits. The control
plane converts its model to ``NodeInfo``/``TaskRequest``/``Placed`` at its
edge and writes the ``Decision`` objects back through the store.

Invariants:
- no I/O, no asyncio, no grpc/etcd/controlplane imports; it imports only
  ``model`` and ``common`` (an import-linter contract in pyproject.toml);
- deterministic: same snapshot, tasks and seed -> same decisions;
- a batch never overcommits cpu/memory, reuses a host port or exceeds
  ``max_replicas_per_node`` on any node: each placement updates the usage
  the next task sees;
- every unplaced task carries an explanation counting rejections per
  filter, most frequent first.

Pipeline (see ``_schedule``): filters (``_filters``, counted by
``_pipeline``: ready, active, constraints, memory, cpu, host ports, max
replicas; cheapest first) -> scoring (``_select``: preferences, then spread
or binpack; ``_bestfirst``: the same spread order, searched lazily) ->
seeded tie-break (``_nodestate``). Modules: ``_types`` (inputs/outputs),
``_expr`` (constraints evaluated on a ``NodeInfo``; the grammar is
``model.constraints``, shared with the manifest loader).

Exceptions::

    ValueError
    └── PlacementError          a task's placement expression is malformed
        ├── ConstraintError     e.g. "node.labels.zone=a"
        └── PreferenceError     e.g. "spread=zone"

``schedule`` does not raise these: a task with a bad expression gets a
decision with no node and the error message as its explanation.
"""

from scheduler._expr import (
    Constraint,
    ConstraintError,
    PlacementError,
    PreferenceError,
    matches,
    parse_constraint,
    parse_preference,
)
from scheduler._filters import (
    ActiveFilter,
    ConstraintFilter,
    Filter,
    HostPortFilter,
    MaxReplicasFilter,
    ReadyFilter,
    ResourceFilter,
    filters_for,
)
from scheduler._nodestate import NodeState
from scheduler._schedule import schedule
from scheduler._types import ClusterSnapshot, Decision, NodeInfo, Placed, TaskRequest

__all__ = [
    "ActiveFilter",
    "ClusterSnapshot",
    "Constraint",
    "ConstraintError",
    "ConstraintFilter",
    "Decision",
    "Filter",
    "HostPortFilter",
    "MaxReplicasFilter",
    "NodeInfo",
    "NodeState",
    "Placed",
    "PlacementError",
    "PreferenceError",
    "ReadyFilter",
    "ResourceFilter",
    "TaskRequest",
    "filters_for",
    "matches",
    "parse_constraint",
    "parse_preference",
    "schedule",
]
