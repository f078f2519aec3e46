"""Best-first search for spread placement without preferences.

Spread's key is (tasks of the service, tasks overall, rank). Instead of
filtering every node, visit nodes in key order and stop at the first that
passes the filters:

- few nodes run the service: every node without it beats every node with
  it, and ``Cluster.by_load`` yields those in key order; then the (few)
  nodes running it, through a heap built on the spot;
- most nodes run it: one heap per service over all nodes, built once per
  ``schedule`` call and kept. Keys only grow during a call (placements only
  add), so an entry may be stale but never too big: when a stale entry
  surfaces it is pushed again with its current key, and an entry whose key
  is current is a true minimum. Nodes popped and rejected are pushed back.
"""

from __future__ import annotations

import heapq

from scheduler._nodestate import Cluster, NodeState
from scheduler._pipeline import Pipeline
from scheduler._types import TaskRequest

_Key = tuple[int, int, int]  # (tasks of the service, tasks, rank)


class BestFirst:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._heaps: dict[str, list[_Key]] = {}

    def pick(self, pipeline: Pipeline, task: TaskRequest) -> NodeState | None:
        """The lowest-key node passing ``pipeline`` for ``task``, or None."""
        running = self.cluster.running(task.service)
        if len(running) * 2 >= len(self.cluster.nodes):
            return self._from_service_heap(pipeline, task)
        for node in self.cluster.by_load():
            if node.rank not in running and pipeline.passes(task, node):
                return node
        keys = [self._key(self.cluster.nodes[r], task.service) for r in running]
        heapq.heapify(keys)
        while keys:
            node = self.cluster.nodes[heapq.heappop(keys)[2]]
            if pipeline.passes(task, node):
                return node
        return None

    @staticmethod
    def _key(node: NodeState, service: str) -> _Key:
        return (node.service_tasks(service), node.tasks, node.rank)

    def _from_service_heap(self, pipeline: Pipeline, task: TaskRequest) -> NodeState | None:
        heap = self._heaps.get(task.service)
        if heap is None:
            heap = self._heaps[task.service] = [self._key(n, task.service) for n in self.cluster.nodes]
            heapq.heapify(heap)
        rejected: list[_Key] = []
        found = None
        while heap and found is None:
            stored = heapq.heappop(heap)
            node = self.cluster.nodes[stored[2]]
            current = self._key(node, task.service)
            if current != stored:
                heapq.heappush(heap, current)
                continue
            # Kept either way: a chosen node goes back with a key that the
            # placement about to happen makes stale, which is allowed.
            rejected.append(current)
            if pipeline.passes(task, node):
                found = node
        for key in rejected:
            heapq.heappush(heap, key)
        return found
