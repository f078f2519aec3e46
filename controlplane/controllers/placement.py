"""Which nodes a global service runs on: node health, availability, constraints.

Constraints are parsed by the grammar the manifest loader and the scheduler
use (``model.constraints``); this module evaluates them on the model's
``Node``, as ``scheduler._expr`` does on its own ``NodeInfo``. An expression
that does not parse matches no node (the manifest loader rejects such
services first, and a reconciler must not stop on one bad service).

Invariant: ``keeps_global(n)`` is implied by ``starts_global(n)``: a node that
may receive a new task may keep one.
"""

from __future__ import annotations

from collections.abc import Iterable

from model.constraints import ConstraintError, parse_constraint
from model.objects import Node


def matches(node: Node, constraint: str) -> bool:
    """Whether ``node`` satisfies one constraint expression (False if it is malformed)."""
    try:
        parsed = parse_constraint(constraint)
    except ConstraintError:
        return False
    if parsed.subject == "label":
        return parsed.holds(node.labels.get(parsed.label))
    return parsed.holds(node.name if parsed.subject == "name" else node.id)


def matches_all(node: Node, constraints: Iterable[str]) -> bool:
    return all(matches(node, c) for c in constraints)


def keeps_global(node: Node, constraints: Iterable[str]) -> bool:
    """A global task already on ``node`` stays: the node is not down or drained and still matches."""
    return node.state != "down" and node.availability != "drain" and matches_all(node, constraints)


def starts_global(node: Node, constraints: Iterable[str]) -> bool:
    """``node`` gets a (new or replacement) global task: ready, active and matching."""
    return node.state == "ready" and node.availability == "active" and matches_all(node, constraints)
