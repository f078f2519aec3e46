"""YAML bombs are refused with a clear error after bounded work.

Each bomb is small text that would cost a parser (or whatever consumes the
parsed document: converters, specs, the store) time or memory far out of
proportion: "billion laughs" through sequence aliases and through merge
keys, an alias to a big string used thousands of times, nesting a hundred
thousand levels deep, a huge scalar, a flood of tiny nodes, a number too
long to convert. The limits (``MAX_BYTES``, ``MAX_NODES``, the expanded
limits, ``MAX_DEPTH``) stop each; the memory the parse allocates is measured
(tracemalloc) and bounded. Time is not asserted: a pytest-timeout mark only
turns a hang into a failure.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest

from model.manifest import ManifestError, parse_manifest
from model.manifest._yaml import (
    MAX_BYTES,
    MAX_DEPTH,
    MAX_EXPANDED_CHARS,
    MAX_EXPANDED_NODES,
    MAX_NODES,
    Map,
    Node,
    Seq,
    load_yaml,
)

pytestmark = pytest.mark.timeout(60)

FILE = "bomb.yaml"
SERVICE = "services:\n  web:\n    image: busybox\n"
PEAK_LIMIT = 64 << 20  # bytes the parser may allocate for any bomb (the text itself not counted)


def laughs(levels: int = 9, width: int = 10, use: str = "x-use") -> str:
    """Classic billion laughs: each anchor a list of ``width`` aliases of the one before."""
    lines = ['x-l0: &l0 "lol"']
    lines += [f"x-l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, levels)]
    lines.append(f"{use}: *l{levels - 1}" if use.startswith("x-") else SERVICE + f"    {use}: *l{levels - 1}")
    return "\n".join(lines) + "\n"


def merge_laughs(levels: int = 9, width: int = 10) -> str:
    """Billion laughs through "<<": each mapping merges ``width`` aliases of the one before.
    PyYAML's own merge copies every merged pair: 2 * 10^8 of them at 9 levels."""
    lines = ["x-m0: &m0 {a: 1, b: 2}"]
    lines += [f"x-m{i}: &m{i} {{<<: [{', '.join([f'*m{i - 1}'] * width)}], k{i}: {i}}}"
              for i in range(1, levels)]
    lines.append(SERVICE + f"    labels: *m{levels - 1}")
    return "\n".join(lines) + "\n"


def fanout(size: int = 200_000, uses: int = 2_000) -> str:
    """One big string, aliased thousands of times: small text, 400 MB of command."""
    return f'x-s: &s "{"b" * size}"\n' + SERVICE + f"    command: [{', '.join(['*s'] * uses)}]\n"


BOMBS: dict[str, tuple[Callable[[], str], str]] = {
    "laughs_ignored_key": (lambda: laughs(), "(a YAML bomb?)"),
    "laughs_in_command": (lambda: laughs(use="command"), "(a YAML bomb?)"),
    "laughs_in_environment": (lambda: laughs(use="environment"), "(a YAML bomb?)"),
    "laughs_wide": (lambda: laughs(levels=4, width=400), "(a YAML bomb?)"),
    "string_fanout": (lambda: fanout(), "(a YAML bomb?)"),
    "merge_of_laughs": (lambda: laughs(levels=7) + "x-m: &m {k: *l6}\n" + SERVICE + "    labels: {<<: *m}\n",
                        "(a YAML bomb?)"),
    "flow_sequences": (lambda: "x-n: " + "[" * 20_000 + "]" * 20_000 + "\n" + SERVICE,
                       f"nests deeper than {MAX_DEPTH} levels"),
    "flow_mappings": (lambda: "x-n: " + "{a: " * 20_000 + "1" + "}" * 20_000 + "\n" + SERVICE,
                      f"nests deeper than {MAX_DEPTH} levels"),
    "flow_unclosed": (lambda: SERVICE + "    command: " + "[" * 200_000 + "\n",
                      f"nests deeper than {MAX_DEPTH} levels"),
    "block_sequences": (lambda: "x-n:\n" + "".join(" " * i + "-\n" for i in range(1, 1_000)) + SERVICE,
                        f"nests deeper than {MAX_DEPTH} levels"),
    "huge_plain_scalar": (lambda: SERVICE.replace("busybox", "b" * 50_000_000), "larger than 1 MiB"),
    "huge_quoted_scalar": (lambda: SERVICE + f'    command: "{"x " * 25_000_000}"\n', "larger than 1 MiB"),
    "huge_block_scalar": (lambda: SERVICE + "    command: |\n" + "      line\n" * 5_000_000,
                          "larger than 1 MiB"),
    "huge_comment": (lambda: "#" + "c" * 50_000_000 + "\n" + SERVICE, "larger than 1 MiB"),
    "node_flood_flow": (lambda: "x-f: [" + ",".join(["a"] * 400_000) + "]\n" + SERVICE,
                        f"more than {MAX_NODES:,} keys and values"),
    "node_flood_block": (lambda: "x-f:\n" + "- a\n" * 200_000 + SERVICE,
                         f"more than {MAX_NODES:,} keys and values"),
    "key_flood": (lambda: "x-f:\n" + "".join(f"  k{i}: {i}\n" for i in range(40_000)) + SERVICE,
                  f"more than {MAX_NODES:,} keys and values"),
    "alias_flood": (lambda: "x-a: &a 1\nx-f: [" + ",".join(["*a"] * 100_000) + "]\n" + SERVICE,
                    f"more than {MAX_NODES:,} keys and values"),
    "huge_integer": (lambda: SERVICE + "    deploy:\n      replicas: " + "9" * 20_000 + "\n",
                     "is too long (20000 characters)"),
    "recursive_alias": (lambda: "x-r: &r [*r]\n" + SERVICE, "recursive alias"),
    "recursive_merge": (lambda: "x-r: &r {<<: *r}\n" + SERVICE, "recursive alias"),
}


@pytest.mark.parametrize("name", list(BOMBS))
def test_a_bomb_is_refused_clearly_with_bounded_memory(name: str) -> None:
    make, expected = BOMBS[name]
    text = make()
    if name.endswith("flood"):  # bounded by the node count; tracemalloc would slow them tenfold
        with pytest.raises(ManifestError) as info:
            parse_manifest(text, FILE)
        assert expected in str(info.value)
        return
    tracemalloc.start()
    try:
        with pytest.raises(ManifestError) as info:
            parse_manifest(text, FILE)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    message = str(info.value)
    assert expected in message, message
    assert message.startswith(f"{FILE}:") and info.value.line >= 1, message
    assert len(message.splitlines()) == 1 and len(message) < 1_000, message[:300]
    assert peak < PEAK_LIMIT, f"{name}: the parse allocated {peak >> 20} MiB"


@pytest.mark.parametrize(("levels", "width"), [(9, 10), (30, 4)])
def test_merge_laughs_cost_one_copy_of_each_key(levels: int, width: int) -> None:
    """PyYAML's own "<<" would copy 2 * 10^8 pairs; merged here, each key is kept once,
    so the bomb is the small mapping it means."""
    tracemalloc.start()
    try:
        specs = parse_manifest(merge_laughs(levels, width), FILE)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert specs[0].labels == {"a": "1", "b": "2", **{f"k{i}": str(i) for i in range(1, levels)}}
    assert peak < PEAK_LIMIT


def test_the_limits_leave_room_for_real_manifests() -> None:
    """Anchors and merge keys as Compose files use them, over many services, parse as before."""
    services = "".join(
        f"  svc{i}:\n    <<: *defaults\n    command: [sleep, '{i}']\n"
        f"    environment:\n      <<: *env\n      INDEX: '{i}'\n"
        for i in range(300))
    text = ("x-env: &env\n" + "".join(f"  VAR{j}: value-{j}\n" for j in range(30))
            + "x-defaults: &defaults\n  image: busybox\n  labels: {tier: back}\n"
            + "  deploy: {replicas: 2, resources: {limits: {cpus: '0.5', memory: 64M}}}\n"
            + "services:\n" + services)
    specs = parse_manifest(text, FILE)
    assert len(specs) == 300
    assert specs[299].command == ["sleep", "299"] and specs[299].replicas == 2
    assert "VAR29=value-29" in specs[0].env and "INDEX=0" in specs[0].env


def test_a_manifest_just_under_the_size_limit_parses() -> None:
    value = "v" * (MAX_BYTES - 200)
    specs = parse_manifest(SERVICE + f"    labels: {{big: {value}}}\n", FILE)
    assert specs[0].labels["big"] == value


def test_expansion_is_counted_once_per_shared_node() -> None:
    """An alias used a few times is fine; the limits are on the expanded size, not on aliasing."""
    text = laughs(levels=4, width=10, use="x-use")  # 1,110 nodes expanded
    parse_manifest(text + SERVICE, FILE)
    assert MAX_EXPANDED_NODES >= 2 * MAX_NODES and MAX_EXPANDED_CHARS >= MAX_BYTES


def _plain(node: Node | None) -> Any:
    if isinstance(node, Map):
        return {item.key: _plain(item.value) for item in node.items}
    if isinstance(node, Seq):
        return [_plain(item) for item in node.items]
    return None if node is None else node.value


MERGE_SPEC_EXAMPLE = """\
- &CENTER {x: 1, y: 2}
- &LEFT {x: 0, y: 2}
- &BIG {r: 10}
- &SMALL {r: 1}
- x: 1
  y: 2
  r: 10
  label: center/big
- <<: *CENTER
  r: 10
  label: center/big
- <<: [*CENTER, *BIG]
  label: center/big
- <<: [*BIG, *LEFT, *SMALL]
  x: 1
  label: center/big
"""


def test_merge_keys_follow_the_yaml_merge_spec() -> None:
    """yaml.org/type/merge.html's example: the last four mappings are equal."""
    maps = _plain(load_yaml(MERGE_SPEC_EXAMPLE, FILE))
    assert maps[4] == maps[5] == maps[6] == maps[7] == {"x": 1, "y": 2, "r": 10, "label": "center/big"}


@pytest.mark.parametrize(("text", "expected"), [
    # A merged mapping's own keys beat what it merged, wherever it is merged again.
    # (PyYAML 6.0.4's SafeLoader gives {a: 0} here: it keeps the first pair per key.)
    ("m0: &m0 {a: 0}\nm1: &m1 {<<: [*m0], a: 1}\nt: {<<: [*m1]}\n", {"a": 1}),
    ("m0: &m0 {a: 0, b: 0}\nm1: &m1 {a: 1}\nt: {<<: [*m1, *m0], b: 2}\n", {"a": 1, "b": 2}),
    ("m0: &m0 {a: 0}\nm1: &m1 {a: 1}\nt: {<<: *m0, <<: *m1}\n", {"a": 1}),
])
def test_merge_precedence(text: str, expected: dict[str, int]) -> None:
    assert _plain(load_yaml(text, FILE))["t"] == expected
