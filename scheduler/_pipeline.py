"""The feasibility pipeline: run a task's filters over nodes, count rejections.

Each node is charged to the *first* filter it fails (filters are ordered
cheapest first, see ``filters_for``), so the counts add up to the number of
rejected nodes. The counters are cumulative: re-checking a node after a
placement on it (and it failing) adds it, which keeps the explanation true
for the state the last task saw.
"""

from __future__ import annotations

from scheduler._filters import Filter, filters_for
from scheduler._nodestate import NodeState
from scheduler._types import TaskRequest


class Pipeline:
    def __init__(self, task: TaskRequest) -> None:
        self.filters: list[Filter] = filters_for(task)
        self.failures: list[int] = [0] * len(self.filters)

    def check(self, task: TaskRequest, node: NodeState) -> bool:
        """Whether ``node`` passes every filter; a failure is counted once."""
        for i, f in enumerate(self.filters):
            if not f.check(task, node):
                self.failures[i] += 1
                return False
        return True

    def passes(self, task: TaskRequest, node: NodeState) -> bool:
        """Like ``check`` without counting: for searches that stop at the first fit."""
        return all(f.check(task, node) for f in self.filters)

    def explain(self) -> str:
        """"no suitable node (<reason> on N nodes, ...)", most frequent reason first."""
        counted = [(n, i) for i, n in enumerate(self.failures) if n]
        if not counted:
            return "no suitable node (no nodes in the cluster)"
        # Stable on ties: pipeline order.
        counted.sort(key=lambda c: (-c[0], c[1]))
        return "no suitable node (" + ", ".join(self.filters[i].explain(n) for n, i in counted) + ")"
