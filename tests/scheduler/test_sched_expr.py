"""Constraint and preference parsing: case tables for good and bad expressions."""

from __future__ import annotations

import pytest

from scheduler import ConstraintError, NodeInfo, PreferenceError, matches, parse_constraint, parse_preference

N = NodeInfo(id="abc123", name="node-1", labels={"zone": "a", "disk": "ssd"})

# (expression, matches N)
GOOD = [
    ("node.labels.zone==a", True),
    ("node.labels.zone == a", True),
    ("node.labels.zone==b", False),
    ("node.labels.zone!=b", True),
    ("node.labels.zone!=a", False),
    ("node.labels.rack==r1", False),  # missing label never equals
    ("node.labels.rack!=r1", True),  # ... so != holds, as in swarm
    ("node.labels.zone==A", False),  # values are case sensitive
    ("node.name==node-1", True),
    ("node.hostname==node-1", True),
    ("node.name!=node-1", False),
    ("node.id==abc123", True),
    ("node.id!=abc123", False),
    ("node.labels.zone==a b", False),  # a value may hold spaces, as in swarm
    ("node.labels.zone!=a b", True),
]


@pytest.mark.parametrize(("text", "expected"), GOOD)
def test_constraint_matches(text: str, expected: bool) -> None:
    assert matches(parse_constraint(text), N) is expected


def test_constraint_canonical_text() -> None:
    assert str(parse_constraint("  node.labels.zone  ==  b ")) == "node.labels.zone==b"


# (expression, words the error must contain)
BAD = [
    ("node.labels.zone=a", "has no operator"),
    ("node.labels.zone", "has no operator"),
    ("node.labels.zone==a==b", "exactly one"),
    ("node.labels.zone==a!=b", "exactly one"),
    ("node.labels.zone==", "non-empty"),
    ("node.labels.==a", "expected node.labels.KEY"),
    ("node.role==manager", "no manager/worker role"),
    ("zone==a", "expected node.labels.KEY"),
]


@pytest.mark.parametrize(("text", "words"), BAD)
def test_bad_constraint_names_the_expression(text: str, words: str) -> None:
    with pytest.raises(ConstraintError) as e:
        parse_constraint(text)
    assert repr(text) in str(e.value) and words in str(e.value)
    assert isinstance(e.value, ValueError)


@pytest.mark.parametrize(("text", "label"), [
    ("node.labels.zone", "zone"),
    ("spread=node.labels.zone", "zone"),
    (" spread = node.labels.rack ", "rack"),
])
def test_preference(text: str, label: str) -> None:
    assert parse_preference(text) == label


@pytest.mark.parametrize("text", ["zone", "spread=zone", "node.labels.", "node.name", "x=node.labels.a",
                                  "spread=node.labels.a b"])
def test_bad_preference(text: str) -> None:
    with pytest.raises(PreferenceError, match="invalid placement preference"):
        parse_preference(text)
