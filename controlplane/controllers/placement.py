"""Which nodes a global service runs on: node health, availability, constraints.

The constraint syntax and meaning mirror the scheduler's (``scheduler/_expr.py``):
``node.labels.<key>``, ``node.name`` (alias ``node.hostname``) or ``node.id``,
``==`` or ``!=``, one value compared exactly; a missing label never equals a
value. This small matcher exists because the controllers see the model's
``Node`` and the scheduler its own ``NodeInfo``; an expression that does not
parse matches no node (the manifest loader rejects such services first, and a
reconciler must not stop on one bad service).

Invariant: ``keeps_global(n)`` is implied by ``starts_global(n)``: a node that
may receive a new task may keep one.
"""

from __future__ import annotations

from collections.abc import Iterable

from model.objects import Node

_LABEL_PREFIX = "node.labels."
_FIELDS = {"node.name": "name", "node.hostname": "name", "node.id": "id"}


def matches(node: Node, constraint: str) -> bool:
    """Whether ``node`` satisfies one constraint expression (False if it is malformed)."""
    ops = [op for op in ("==", "!=") if op in constraint]
    if len(ops) != 1 or constraint.count(ops[0]) != 1:
        return False
    subject, value = (part.strip() for part in constraint.split(ops[0]))
    if not value:
        return False
    if subject.startswith(_LABEL_PREFIX) and len(subject) > len(_LABEL_PREFIX):
        actual: str | None = node.labels.get(subject[len(_LABEL_PREFIX):])
    elif subject in _FIELDS:
        actual = getattr(node, _FIELDS[subject])
    else:
        return False
    return (actual == value) == (ops[0] == "==")


def matches_all(node: Node, constraints: Iterable[str]) -> bool:
    return all(matches(node, c) for c in constraints)


def keeps_global(node: Node, constraints: Iterable[str]) -> bool:
    """A global task already on ``node`` stays: the node is not down or drained and still matches."""
    return node.state != "down" and node.availability != "drain" and matches_all(node, constraints)


def starts_global(node: Node, constraints: Iterable[str]) -> bool:
    """``node`` gets a (new or replacement) global task: ready, active and matching."""
    return node.state == "ready" and node.availability == "active" and matches_all(node, constraints)
