"""The placement grammar: constraints and spread preferences, parsed in one place.

Constraints use Swarm's syntax: a subject, ``==`` or ``!=``, a value::

    node.labels.<key>   a node label (key: ASCII letters, digits and _ . - /)
    node.name           the node's name; node.hostname is Swarm's spelling of it
    node.id             the node's id
    node.platform.os    Swarm's spelling of the label platform.os (linux)
    node.platform.arch  Swarm's spelling of the label platform.arch (amd64, arm64, arm/v7:
                        Go's names, as a manifest's ``platform`` writes them)

A node's platform is a pair of labels of the node, which each agent gives
itself when it registers (``platform.os=linux``, ``platform.arch`` from its
machine: ``nodeagent.cluster.session``); a label set by hand (``orch node
label``, ``orch agent --label``) wins.

Spaces around the operator and at either end are dropped; the value keeps
inner spaces (``node.labels.disk==ssd nvme``) and holds no ``=`` or ``!``.
Values compare exactly (case sensitive), and a node without the label never
equals a value, so ``node.labels.k!=v`` holds on a node without ``k``.

A spread preference names a label: ``node.labels.<key>`` (the manifest's
``spread:`` value, which the model stores); ``spread=node.labels.<key>`` is
also read.

Who uses it: the manifest loader rejects what does not parse, with its
file:line, and stores the canonical text (``str(constraint)``); the
scheduler and the global-service controller parse the stored text again and
evaluate it against their own view of a node (``Constraint.holds`` gives the
operator's meaning). The JSON Schema publishes ``CONSTRAINT_PATTERN`` and
``SPREAD_PATTERN``.

Invariants:
- ``parse_constraint`` accepts a text exactly when ``CONSTRAINT_PATTERN``
  matches it, and ``spread_label`` exactly when ``SPREAD_PATTERN`` does;
- ``parse_constraint(str(c)) == c``: the canonical text parses to the same
  constraint, so a stored constraint means what the manifest said.

Exceptions::

    ValueError
    └── PlacementError          a placement expression is malformed
        ├── ConstraintError     e.g. "node.labels.zone=a"
        └── PreferenceError     e.g. "spread=zone"

Each message quotes the expression and says what was expected.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "CONSTRAINT_PATTERN",
    "LABEL_PREFIX",
    "PLATFORM_LABELS",
    "SPREAD_PATTERN",
    "Constraint",
    "ConstraintError",
    "PlacementError",
    "PreferenceError",
    "parse_constraint",
    "parse_preference",
    "spread_label",
]

LABEL_PREFIX = "node.labels."
# The node labels that node.platform.os and node.platform.arch read.
PLATFORM_LABELS = ("platform.os", "platform.arch")
_LABEL_KEY = r"[A-Za-z0-9_.\-/]+"
# Published in the JSON Schema: ECMAScript syntax, which Python reads alike
# under fullmatch (but for a few exotic spaces that \s covers in one only).
CONSTRAINT_PATTERN = (rf"^\s*node\.(labels\.{_LABEL_KEY}|platform\.(os|arch)|name|id|hostname)\s*(==|!=)\s*"
                      r"[^\s=!][^=!]*$")
SPREAD_PATTERN = rf"^node\.labels\.{_LABEL_KEY}$"

# CONSTRAINT_PATTERN with its parts captured; the value ends at its last non-space.
_CONSTRAINT_RE = re.compile(
    rf"\s*node\.(labels\.(?P<label>{_LABEL_KEY})|(?P<platform>platform\.(os|arch))|(?P<field>name|id|hostname))"
    r"\s*(?P<op>==|!=)\s*"
    r"(?P<value>[^\s=!][^=!]*?)\s*"
)
_SPREAD_RE = re.compile(SPREAD_PATTERN)
_FIELDS: dict[str, Literal["name", "id"]] = {"name": "name", "hostname": "name", "id": "id"}


class PlacementError(ValueError):
    """A placement expression could not be understood."""


class ConstraintError(PlacementError):
    """A constraint expression is malformed."""


class PreferenceError(PlacementError):
    """A placement preference is malformed."""


@dataclass(frozen=True)
class Constraint:
    """``<subject> <op> <value>``; equal constraints mean the same on every node."""

    subject: Literal["label", "name", "id"]
    label: str  # the label key when subject == "label", else ""
    op: Literal["==", "!="]
    value: str

    def holds(self, actual: str | None) -> bool:
        """The operator applied to the node's value of the subject (None: no such label)."""
        return (actual == self.value) == (self.op == "==")

    def __str__(self) -> str:
        subject = LABEL_PREFIX + self.label if self.subject == "label" else f"node.{self.subject}"
        return f"{subject}{self.op}{self.value}"


@functools.lru_cache(maxsize=1024)  # controllers parse the same few stored texts on every pass
def parse_constraint(text: str) -> Constraint:
    """Parse one constraint; raise ``ConstraintError`` naming ``text`` if it is malformed."""
    match = _CONSTRAINT_RE.fullmatch(text)
    if match is None:
        raise ConstraintError(_constraint_problem(text))
    op: Literal["==", "!="] = "==" if match["op"] == "==" else "!="
    if match["label"] is not None:
        return Constraint("label", match["label"], op, match["value"])
    if match["platform"] is not None:
        return Constraint("label", match["platform"], op, match["value"])
    return Constraint(_FIELDS[match["field"]], "", op, match["value"])


def _constraint_problem(text: str) -> str:
    """The most precise thing to say about a text the grammar rejects."""
    stripped = text.strip()
    if stripped.startswith("node.role"):
        return (f"constraint {text!r}: orch nodes have no manager/worker role; "
                "label the nodes and use node.labels.KEY==VALUE")
    operator = re.search("==|!=", stripped)
    if operator is None:
        return f"constraint {text!r} has no operator: expected ATTRIBUTE==VALUE or ATTRIBUTE!=VALUE"
    value = stripped[operator.end():]
    if "=" in value or "!" in value:
        return (f"invalid constraint {text!r}: expected exactly one '==' or '!=', "
                "and no '=' or '!' in the value")
    if not value.strip():
        return f"invalid constraint {text!r}: expected a non-empty value after the operator"
    return (f"invalid constraint {text!r}: expected node.labels.KEY, node.name, node.id, "
            "node.hostname or node.platform.os|arch, then == or !=, then a value")


def spread_label(text: str) -> str:
    """The label key of ``node.labels.<key>``, written exactly so (a manifest's ``spread:``)."""
    if not _SPREAD_RE.fullmatch(text):
        raise PreferenceError(f"cannot spread over {text!r}: expected node.labels.KEY")
    return text[len(LABEL_PREFIX):]


def parse_preference(text: str) -> str:
    """The label key of a stored preference: ``node.labels.<key>`` or ``spread=node.labels.<key>``."""
    kind, _, body = text.partition("=") if "=" in text else ("spread", "", text)
    try:
        if kind.strip() != "spread":
            raise PreferenceError(text)
        return spread_label(body.strip())
    except PreferenceError:
        raise PreferenceError(f"invalid placement preference {text!r}: expected node.labels.<key> "
                              "or spread=node.labels.<key>") from None
