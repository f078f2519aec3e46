"""Scoring among feasible nodes: a preference tree over heaps of nodes.

Selection for one task is lexicographic, like swarm:
1. placement preferences, in order: go down into the label value (nodes
   without the label are a group of their own) holding the fewest tasks of
   the service, counted over the nodes that were feasible for this group of
   tasks;
2. within the chosen group, the node with the best score: spread (fewest
   tasks of the service, then fewest tasks overall) or binpack (most
   reserved, then most tasks);
3. the seeded shuffle rank breaks every remaining tie.

A placement changes only the chosen node and the counts on its path, so each
pick and update costs O(depth * log n) through lazily invalidated heaps:
stale heap entries carry an old version and are dropped when they surface.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from typing import Protocol

from scheduler._nodestate import NodeState

ScoreKey = tuple[float, ...]


def spread_key(service: str) -> Callable[[NodeState], ScoreKey]:
    def key(node: NodeState) -> ScoreKey:
        return (node.service_tasks(service), node.tasks, node.rank)
    return key


def binpack_key(node: NodeState) -> ScoreKey:
    return (-node.utilisation(), -node.tasks, node.rank)


class _Group(Protocol):
    count: int  # tasks of the service on this group's nodes

    def add(self, node: NodeState) -> None: ...
    def seal(self) -> None: ...
    def best(self) -> NodeState | None: ...
    def placed(self, node: NodeState, still_feasible: bool) -> None: ...


class _Leaf:
    """Feasible nodes of one group, in a heap ordered by score key."""

    def __init__(self, service: str, key: Callable[[NodeState], ScoreKey]) -> None:
        self.service, self.key, self.count = service, key, 0
        self.heap: list[tuple[ScoreKey, int, int, NodeState]] = []
        self.version: dict[int, int] = {}  # node rank -> version of its live entry

    def _push(self, node: NodeState) -> None:
        v = self.version[node.rank] = self.version.get(node.rank, 0) + 1
        # rank is unique, so comparison never reaches the NodeState.
        heapq.heappush(self.heap, (self.key(node), node.rank, v, node))

    def add(self, node: NodeState) -> None:
        self.count += node.service_tasks(self.service)
        self.heap.append((self.key(node), node.rank, 1, node))
        self.version[node.rank] = 1

    def seal(self) -> None:
        heapq.heapify(self.heap)

    def best(self) -> NodeState | None:
        while self.heap:
            _, rank, v, node = self.heap[0]
            if self.version[rank] == v:
                return node
            heapq.heappop(self.heap)
        return None

    def placed(self, node: NodeState, still_feasible: bool) -> None:
        self.count += 1
        if still_feasible:
            self._push(node)
        else:
            self.version[node.rank] += 1  # invalidates its entry


class _Branch:
    """Groups split by one label's value; the child with fewest tasks goes first."""

    def __init__(self, labels: tuple[str, ...], make_leaf: Callable[[], _Leaf]) -> None:
        self.label, self.rest, self.make_leaf = labels[0], labels[1:], make_leaf
        self.count = 0
        self.children: dict[str | None, _Group] = {}
        self.order: dict[str | None, int] = {}  # first-seen order: seeded, deterministic
        self.version: dict[str | None, int] = {}
        self.heap: list[tuple[int, int, int, str | None]] = []

    def _child(self, node: NodeState) -> tuple[str | None, _Group]:
        value = node.info.labels.get(self.label)
        child = self.children.get(value)
        if child is None:
            child = _Branch(self.rest, self.make_leaf) if self.rest else self.make_leaf()
            self.children[value], self.order[value] = child, len(self.order)
        return value, child

    def add(self, node: NodeState) -> None:
        _, child = self._child(node)
        before = child.count
        child.add(node)
        self.count += child.count - before

    def seal(self) -> None:
        for value, child in self.children.items():
            child.seal()
            self.version[value] = 1
            self.heap.append((child.count, self.order[value], 1, value))
        heapq.heapify(self.heap)

    def best(self) -> NodeState | None:
        while self.heap:
            _, _, v, value = self.heap[0]
            if self.version[value] == v:
                node = self.children[value].best()
                if node is not None:
                    return node
                self.version[value] += 1  # exhausted: no feasible node left below
            heapq.heappop(self.heap)
        return None

    def placed(self, node: NodeState, still_feasible: bool) -> None:
        value, child = self._child(node)
        child.placed(node, still_feasible)
        self.count += 1
        v = self.version[value] = self.version[value] + 1
        heapq.heappush(self.heap, (child.count, self.order[value], v, value))


class Selector:
    """Picks the best feasible node for one group of identical tasks."""

    def __init__(self, nodes: Iterable[NodeState], service: str, labels: tuple[str, ...],
                 binpack: bool) -> None:
        key = binpack_key if binpack else spread_key(service)

        def make_leaf() -> _Leaf:
            return _Leaf(service, key)

        self.root: _Group = _Branch(labels, make_leaf) if labels else make_leaf()
        for node in nodes:
            self.root.add(node)
        self.root.seal()

    def best(self) -> NodeState | None:
        return self.root.best()

    def placed(self, node: NodeState, still_feasible: bool) -> None:
        """Record a placement on ``node`` (already added to its counters)."""
        self.root.placed(node, still_feasible)
