"""YAML to a tree of positioned nodes: every key and value keeps its line.

PyYAML's composer already records a mark on every node; this module turns the
composed graph into small immutable nodes (``Scalar``, ``Seq``, ``Map``) so
the parser can report ``file:line`` for any value or key it rejects.

Invariants:
- lines are 1-based;
- a ``Map`` keeps its keys in document order, each with the line of the key;
- duplicate keys in one mapping are an error naming both lines; ``<<`` merge
  keys are honoured (explicit keys override merged ones, as in YAML 1.1);
- a ``Scalar`` keeps both the resolved value (str, int, float, bool or None)
  and the text as written, so ``8080:80`` is never read as a base-60 number
  and ``FOO: 0x10`` keeps its spelling;
- nesting is at most ``MAX_DEPTH`` levels: PyYAML's composer and the
  conversion here recurse once per level, and a deeper document would
  exhaust Python's stack (an alias adds no depth: each node is converted
  once);
- YAML syntax errors, several documents, recursive aliases, nesting beyond
  ``MAX_DEPTH`` and numbers too long to convert raise ``ManifestError`` with
  the line; nothing else escapes from PyYAML.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

import yaml

from model.manifest._errors import ManifestError, field_path

__all__ = ["MAX_DEPTH", "Map", "Node", "Scalar", "Seq", "describe", "load_yaml"]

MAX_DEPTH = 64  # a manifest needs 6; Python's stack holds a few hundred
_SHOWN = 40  # characters of a value quoted in an error


@dataclass(frozen=True, eq=False)
class Scalar:
    line: int
    value: str | int | float | bool | None
    text: str  # as written (after unquoting)


@dataclass(frozen=True, eq=False)
class Seq:
    line: int
    items: tuple[Node, ...]


@dataclass(frozen=True, eq=False)
class MapItem:
    key: str
    key_line: int
    value: Node


@dataclass(frozen=True, eq=False)
class Map:
    line: int
    items: tuple[MapItem, ...]

    def keys(self) -> list[str]:
        return [item.key for item in self.items]


Node = Scalar | Seq | Map


def describe(node: Node) -> str:
    """How a wrong value reads in an error: ``'three'``, ``-1``, ``a list``, ``null``."""
    if isinstance(node, Seq):
        return "a list"
    if isinstance(node, Map):
        return "a mapping"
    if node.value is None:
        return "null"
    text = node.text if len(node.text) <= _SHOWN else node.text[:_SHOWN] + "..."
    return repr(text) if isinstance(node.value, str) else text


class _TooDeep(Exception):
    def __init__(self, line: int) -> None:
        super().__init__(line)
        self.line = line


def _too_deep(path: str, line: int) -> ManifestError:
    return ManifestError(path, line, "", f"the manifest nests deeper than {MAX_DEPTH} levels; "
                                         "a manifest needs a handful")


class _Loader(yaml.SafeLoader):
    """SafeLoader whose composed nodes are walked by ``_Builder`` instead of constructed.

    Counts the composer's depth: it recurses once per level of nesting."""

    depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise _TooDeep(self.peek_event().start_mark.line + 1)
            return super().compose_node(parent, index)  # type: ignore[no-any-return]
        finally:
            self.depth -= 1


_PLAIN_TYPES = (str, int, float, bool, type(None))


class _Builder:
    """Converts one composed YAML graph; shared (aliased) nodes are converted once."""

    def __init__(self, loader: _Loader, path: str) -> None:
        self.loader = loader
        self.path = path
        self.done: dict[int, Node] = {}
        self.active: set[int] = set()

    def error(self, node: yaml.Node, where: str, message: str) -> ManifestError:
        return ManifestError(self.path, node.start_mark.line + 1, where, message)

    def build(self, node: yaml.Node, where: str) -> Node:
        """Convert ``node`` found at field path ``where`` (used in errors only)."""
        key = id(node)
        if key in self.done:
            return self.done[key]
        if key in self.active:
            raise self.error(node, where, "recursive alias: an anchor refers to itself")
        self.active.add(key)
        try:
            built = self._build(node, where)
        finally:
            self.active.discard(key)
        self.done[key] = built
        return built

    def _build(self, node: yaml.Node, where: str) -> Node:
        line = node.start_mark.line + 1
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, line, where)
        if isinstance(node, yaml.SequenceNode):
            items = (self.build(child, field_path(where, i)) for i, child in enumerate(node.value))
            return Seq(line, tuple(items))
        assert isinstance(node, yaml.MappingNode)
        return self._mapping(node, line, where)

    def _scalar(self, node: yaml.ScalarNode, line: int, where: str) -> Scalar:
        try:
            value: Any = self.loader.construct_object(node, deep=False)
        except ValueError:  # an int beyond Python's 4,300-digit conversion limit
            raise self.error(node, where, f"the number {node.value[:_SHOWN]}... is too long "
                                          f"({len(node.value)} characters)")
        if isinstance(value, datetime.date) or not isinstance(value, _PLAIN_TYPES):
            value = str(node.value)  # timestamps, binary: keep the text
        return Scalar(line, value, str(node.value))

    def _mapping(self, node: yaml.MappingNode, line: int, where: str) -> Map:
        seen: dict[str, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self._key(key_node, where)
            key_line = key_node.start_mark.line + 1
            if key in seen:
                raise self.error(key_node, field_path(where, key),
                                 f"duplicate key {key!r} (first at line {seen[key]})")
            seen[key] = key_line
        self.loader.flatten_mapping(node)  # resolves "<<": merged pairs first, own keys after
        items: dict[str, MapItem] = {}
        for key_node, value_node in node.value:
            key = self._key(key_node, where)
            items.pop(key, None)  # a later (explicit) key overrides a merged one
            value = self.build(value_node, field_path(where, key))
            items[key] = MapItem(key, key_node.start_mark.line + 1, value)
        return Map(line, tuple(items.values()))

    def _key(self, key_node: yaml.Node, where: str) -> str:
        if not isinstance(key_node, yaml.ScalarNode):
            raise self.error(key_node, where, "a mapping key must be a plain string, not a list or mapping")
        return str(key_node.value)


def load_yaml(text: str, path: str) -> Node | None:
    """Compose ``text`` (one YAML document) into positioned nodes; None for an empty document."""
    loader: _Loader | None = None
    try:
        loader = _Loader(text)  # checks the characters first: may raise ReaderError
        composed = loader.get_single_node()
        return None if composed is None else _Builder(loader, path).build(composed, "")
    except _TooDeep as err:
        raise _too_deep(path, err.line)
    except yaml.MarkedYAMLError as err:
        raise _syntax_error(err, path)
    except yaml.reader.ReaderError as err:
        line = text.count("\n", 0, err.position) + 1
        raise ManifestError(path, line, "", f"invalid YAML: control character #x{err.character:02x} "
                                            "is not allowed; write it as an escape in a double-quoted string")
    except yaml.YAMLError as err:  # pragma: no cover - every PyYAML error above carries a mark
        raise ManifestError(path, 0, "", f"invalid YAML: {err}")
    finally:
        if loader is not None:
            loader.dispose()


def _syntax_error(err: yaml.MarkedYAMLError, path: str) -> ManifestError:
    mark = err.problem_mark or err.context_mark
    line = mark.line + 1 if mark is not None else 0
    message = err.problem or "invalid YAML"
    if err.context == "expected a single document in the stream":
        return ManifestError(path, line, "", "a manifest is one YAML document; remove the '---' "
                                             "separator and put all services under one 'services:'")
    if err.context:
        where = ""
        if err.context_mark is not None and err.context_mark.line + 1 != line:
            where = f" at line {err.context_mark.line + 1}"
        message = f"{message} ({err.context}{where})"
    return ManifestError(path, line, "", f"invalid YAML: {message}")
