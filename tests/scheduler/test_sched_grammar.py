"""One placement grammar: what a manifest accepts, the scheduler parses to the same
constraint, and the other way round; the published schema pattern agrees with both,
and the scheduler and the global-service controller evaluate a constraint alike."""

from __future__ import annotations

import re
import string

from hypothesis import example, given
from hypothesis import strategies as st

from controlplane.controllers import placement
from model.constraints import CONSTRAINT_PATTERN, SPREAD_PATTERN
from model.manifest import ManifestError, parse_manifest
from model.objects import Node
from scheduler import NodeInfo, PlacementError, matches, parse_constraint, parse_preference

_SPACE = st.sampled_from(["", "", " ", "  ", "\t"])
# Few characters, so generated constraints name the generated nodes' labels and values.
# Mostly well-formed parts, some malformed, so about half the texts parse.
_KEY = st.one_of(st.sampled_from(["a", "b", "a.b", "ab"]), st.text(alphabet="ab./_-", min_size=1, max_size=3),
                 st.text(alphabet="ab =!é", max_size=3))
_VALUE = st.one_of(st.sampled_from(["a", "b", "a b", "1"]), st.text(alphabet="ab1 -", max_size=4),
                   st.text(alphabet="ab =!\n", max_size=4))
_SUBJECT = st.one_of(
    _KEY.map(lambda k: f"node.labels.{k}"),
    st.sampled_from(["node.name", "node.id", "node.hostname"]),
    st.sampled_from(["node.role", "node.labels", "zone", "Node.name"]),
)
_OPERATOR = st.sampled_from(["==", "!="]) | st.sampled_from(["=", "===", "!==", "==!", ""])
_NEAR_MISSES = st.tuples(_SPACE, _SUBJECT, _SPACE, _OPERATOR, _SPACE, _VALUE, _SPACE).map("".join)
# Any text YAML can carry in a double-quoted scalar (no lone surrogates).
_ANY_TEXT = st.text(st.characters(codec="utf-8"), max_size=24)
CONSTRAINTS = st.one_of(_NEAR_MISSES, _NEAR_MISSES, _ANY_TEXT)


def _quoted(text: str) -> str:
    """``text`` as a YAML double-quoted scalar: every character but printable ASCII escaped."""
    def escape(ch: str) -> str:
        if " " <= ch <= "~" and ch not in '"\\':
            return ch
        return f"\\u{ord(ch):04x}" if ord(ch) < 0x10000 else f"\\U{ord(ch):08x}"

    return '"' + "".join(map(escape, text)) + '"'


def _manifest(placement_yaml: str) -> str:
    return f"services:\n  web:\n    image: busybox\n    deploy:\n      placement: {placement_yaml}\n"


def _manifest_constraint(text: str) -> str | ManifestError:
    """What the manifest stores for ``[text]``, or its error."""
    try:
        (spec,) = parse_manifest(_manifest(f"{{constraints: [{_quoted(text)}]}}"))
    except ManifestError as err:
        return err
    (stored,) = spec.placement.constraints
    return stored


@given(CONSTRAINTS)
@example("node.hostname == a b\n")
@example("node.labels.a==b\n=")
def test_the_manifest_and_the_scheduler_accept_the_same_constraints(text: str) -> None:
    stored = _manifest_constraint(text)
    try:
        parsed = parse_constraint(text)
    except PlacementError as err:
        assert isinstance(stored, ManifestError), f"the manifest took {text!r}, the scheduler refused it"
        assert stored.message == str(err)  # the same explanation, after the manifest's file:line
        assert re.fullmatch(CONSTRAINT_PATTERN, text) is None  # the schema's reading: no match
        return
    assert isinstance(stored, str), f"the scheduler took {text!r}, the manifest refused it: {stored}"
    assert parse_constraint(stored) == parsed
    assert stored == str(parsed)
    assert _manifest_constraint(stored) == stored
    assert re.fullmatch(CONSTRAINT_PATTERN, text) is not None


_NODE_WORDS = st.sampled_from(["a", "b", "a b", "1"])


@given(CONSTRAINTS, st.dictionaries(st.sampled_from(["a", "b", "a.b", "ab"]), _NODE_WORDS, max_size=3),
       _NODE_WORDS, _NODE_WORDS)
def test_the_scheduler_and_the_global_controller_evaluate_alike(
        text: str, labels: dict[str, str], name: str, node_id: str) -> None:
    info = NodeInfo(id=node_id, name=name, labels=labels)
    node = Node(id=node_id, name=name, labels=labels)
    try:
        expected = matches(parse_constraint(text), info)
    except PlacementError:
        expected = False  # the controller places no global task on a bad expression
    assert placement.matches(node, text) is expected
    stored = _manifest_constraint(text)
    if isinstance(stored, str):
        assert placement.matches(node, stored) is expected


_SPREAD_KIND = st.sampled_from(["", "spread=", "spread =", "x="])
_SPREAD = st.one_of(st.tuples(_SPACE, _SPREAD_KIND, _SPACE, _SUBJECT, _SPACE).map("".join), _ANY_TEXT)


def _manifest_spread(text: str) -> str | ManifestError:
    try:
        (spec,) = parse_manifest(_manifest(f"{{preferences: [{{spread: {_quoted(text)}}}]}}"))
    except ManifestError as err:
        return err
    (stored,) = spec.placement.preferences
    return stored


@given(_SPREAD)
@example("node.labels.a\n")
@example(" spread = node.labels.a ")
def test_the_manifest_stores_spread_labels_the_scheduler_reads(text: str) -> None:
    stored = _manifest_spread(text)
    assert isinstance(stored, str) is (re.fullmatch(SPREAD_PATTERN, text) is not None)
    if isinstance(stored, str):
        assert parse_preference(stored) == stored.removeprefix("node.labels.")
    try:
        key = parse_preference(text)
    except PlacementError:
        return
    # Whatever the scheduler reads, the manifest can say, and means the same label.
    assert _manifest_spread(f"node.labels.{key}") == f"node.labels.{key}"
    assert set(key) <= set(string.ascii_letters + string.digits + "_.-/")
