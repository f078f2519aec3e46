"""Placement expressions evaluated against the scheduler's ``NodeInfo``.

The grammar (constraints, spread preferences, their errors) is the model's
(``model.constraints``), the same parser the manifest loader uses; this
module only says what a parsed constraint means on a ``NodeInfo``. A task's
expressions are parsed once per group of identical tasks (``_pipeline``,
``_schedule``), never per node.
"""

from __future__ import annotations

from model.constraints import (
    Constraint,
    ConstraintError,
    PlacementError,
    PreferenceError,
    parse_constraint,
    parse_preference,
)
from scheduler._types import NodeInfo

__all__ = [
    "Constraint",
    "ConstraintError",
    "PlacementError",
    "PreferenceError",
    "matches",
    "parse_constraint",
    "parse_preference",
]


def matches(constraint: Constraint, node: NodeInfo) -> bool:
    """Whether ``node`` satisfies ``constraint``."""
    if constraint.subject == "label":
        return constraint.holds(node.labels.get(constraint.label))
    return constraint.holds(node.name if constraint.subject == "name" else node.id)
