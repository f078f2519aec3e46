"""``schedule``: a snapshot and pending tasks in, one decision per task out.

Steps:
1. build per-node usage counters from the snapshot, nodes in seeded order;
2. group pending tasks that are identical for placement purposes (same
   service, reservations, constraints, preferences, ports, limits), keeping
   the order in which each group first appears;
3. place each group's tasks one at a time; every placement updates the
   chosen node's counters before the next task is looked at, so a batch
   never overcommits a node and spreads evenly. Two equivalent strategies:
   - best-first (``_bestfirst``; small spread groups without preferences,
     the common case after a node failure): visit nodes in spread order and
     stop at the first that passes the filters, far cheaper than a scan;
   - selector (large groups, preferences, binpack): run the filters once
     over all nodes, then pick from heaps; after a placement only the chosen
     node is checked again.
   Both choose the node with the lowest (tasks of service, tasks, rank).

An unplaced task's explanation comes from a full counting pass of the filter
pipeline over all nodes in the state that task saw.
"""

from __future__ import annotations

from collections.abc import Sequence

from scheduler._bestfirst import BestFirst
from scheduler._expr import PlacementError, parse_preference
from scheduler._nodestate import Cluster
from scheduler._pipeline import Pipeline
from scheduler._select import Selector
from scheduler._types import ClusterSnapshot, Decision, TaskRequest

# Groups up to this size take the best-first path. Beyond it the heap
# selector wins: best-first re-visits the nodes it has already filled.
BEST_FIRST_MAX_GROUP = 32

_GroupKey = tuple[object, ...]
_Indexed = list[tuple[int, TaskRequest]]


def schedule(snapshot: ClusterSnapshot, pending: Sequence[TaskRequest], seed: int = 0) -> list[Decision]:
    """Decide a node for each pending task (``decisions[i]`` is for ``pending[i]``).

    Deterministic: the same snapshot, tasks and seed give the same decisions.
    """
    cluster = Cluster(snapshot, seed)
    decisions: list[Decision | None] = [None] * len(pending)
    best_first = BestFirst(cluster)
    for indices in _groups(pending).values():
        _place_group(cluster, best_first, [(i, pending[i]) for i in indices], decisions)
    return [d for d in decisions if d is not None]


def _group_key(task: TaskRequest) -> _GroupKey:
    return (task.service, task.cpus, task.memory_bytes, task.constraints, task.preferences,
            task.max_replicas_per_node, task.host_ports, task.binpack)


def _groups(pending: Sequence[TaskRequest]) -> dict[_GroupKey, list[int]]:
    groups: dict[_GroupKey, list[int]] = {}
    for i, task in enumerate(pending):
        groups.setdefault(_group_key(task), []).append(i)
    return groups


def _place_group(cluster: Cluster, best_first: BestFirst, tasks: _Indexed,
                 decisions: list[Decision | None]) -> None:
    first = tasks[0][1]
    try:
        pipeline = Pipeline(first)
        labels = tuple(parse_preference(p) for p in first.preferences)
    except PlacementError as e:
        for i, task in tasks:
            decisions[i] = Decision(task.id, None, f"task {task.id} (service {task.service}): {e}")
        return
    if not labels and not first.binpack and len(tasks) <= BEST_FIRST_MAX_GROUP:
        _place_best_first(cluster, best_first, pipeline, tasks, decisions)
    else:
        _place_with_selector(cluster, pipeline, labels, tasks, decisions)


def _place_best_first(cluster: Cluster, best_first: BestFirst, pipeline: Pipeline, tasks: _Indexed,
                      decisions: list[Decision | None]) -> None:
    for pos, (i, task) in enumerate(tasks):
        node = best_first.pick(pipeline, task)
        if node is None:
            # Nothing changes for the rest of the group: same answer for all.
            why = _explain(cluster, task)
            for j, rest in tasks[pos:]:
                decisions[j] = Decision(rest.id, None, why)
            return
        cluster.place(node, task.service, task.cpus, task.memory_bytes, task.host_ports)
        decisions[i] = Decision(task.id, node.info.id, "")


def _explain(cluster: Cluster, task: TaskRequest) -> str:
    pipeline = Pipeline(task)
    for node in cluster.nodes:
        pipeline.check(task, node)
    return pipeline.explain()


def _place_with_selector(cluster: Cluster, pipeline: Pipeline, labels: tuple[str, ...], tasks: _Indexed,
                         decisions: list[Decision | None]) -> None:
    first = tasks[0][1]
    selector = Selector((n for n in cluster.nodes if pipeline.check(first, n)), first.service, labels,
                        first.binpack)
    for i, task in tasks:
        node = selector.best()
        if node is None:
            decisions[i] = Decision(task.id, None, pipeline.explain())
            continue
        cluster.place(node, task.service, task.cpus, task.memory_bytes, task.host_ports)
        selector.placed(node, pipeline.check(task, node))
        decisions[i] = Decision(task.id, node.info.id, "")
