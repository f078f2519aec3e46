"""Placement expressions: constraints and spread preferences, parsed once.

Constraints (swarm syntax): ``node.labels.<key>``, ``node.name`` (alias
``node.hostname``) or ``node.id``, then ``==`` or ``!=``, then a value.
Spaces around the operator are allowed. Values compare exactly (case
sensitive). A missing label never equals a value, so ``node.labels.k!=v``
holds on a node without ``k`` (as in swarm).

Preferences: ``node.labels.<key>`` or ``spread=node.labels.<key>``.

Errors: ``PlacementError(ValueError)`` with ``ConstraintError`` and
``PreferenceError`` below it; each message quotes the bad expression and says
what was expected.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from scheduler._types import NodeInfo

LABEL_PREFIX = "node.labels."
_NODE_FIELDS = {"node.name": "name", "node.hostname": "name", "node.id": "id"}


class PlacementError(ValueError):
    """A placement expression of a task could not be understood."""


class ConstraintError(PlacementError):
    """A constraint expression is malformed."""


class PreferenceError(PlacementError):
    """A placement preference is malformed."""


@dataclass(frozen=True)
class Constraint:
    """``<subject> <op> <value>``; subject is ("label", key) or ("field", name|id)."""

    kind: Literal["label", "field"]
    key: str  # label key, or the NodeInfo attribute ("name" / "id")
    op: Literal["==", "!="]
    value: str
    text: str  # canonical form, used in explanations

    def matches(self, node: NodeInfo) -> bool:
        actual = node.labels.get(self.key) if self.kind == "label" else getattr(node, self.key)
        return (actual == self.value) == (self.op == "==")

    def __str__(self) -> str:
        return self.text


def parse_constraint(text: str) -> Constraint:
    """Parse one constraint; raise ``ConstraintError`` naming ``text`` if bad."""
    ops = [op for op in ("==", "!=") if op in text]
    if len(ops) != 1 or text.count(ops[0]) != 1:
        raise ConstraintError(f"invalid constraint {text!r}: expected exactly one '==' or '!=' "
                              "(e.g. 'node.labels.zone==a')")
    op: Literal["==", "!="] = "==" if ops[0] == "==" else "!="
    subject, value = (part.strip() for part in text.split(op))
    if not value or any(c.isspace() for c in value):
        raise ConstraintError(f"invalid constraint {text!r}: the value must be one non-empty word")
    canonical = f"{subject}{op}{value}"
    if subject.startswith(LABEL_PREFIX) and len(subject) > len(LABEL_PREFIX):
        return Constraint("label", subject[len(LABEL_PREFIX):], op, value, canonical)
    if subject in _NODE_FIELDS:
        return Constraint("field", _NODE_FIELDS[subject], op, value, canonical)
    raise ConstraintError(f"invalid constraint {text!r}: unknown subject {subject!r} "
                          "(expected node.labels.<key>, node.name, node.hostname or node.id)")


def parse_preference(text: str) -> str:
    """The label key a spread preference names; raise ``PreferenceError`` if bad."""
    kind, _, body = text.partition("=") if "=" in text else ("spread", "", text)
    key = body.strip().removeprefix(LABEL_PREFIX)
    if kind.strip() == "spread" and body.strip().startswith(LABEL_PREFIX) and key and " " not in key:
        return key
    raise PreferenceError(f"invalid placement preference {text!r}: expected node.labels.<key> "
                          "or spread=node.labels.<key>")
