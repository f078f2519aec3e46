"""YAML to a tree of positioned nodes: every key and value keeps its line.

PyYAML's composer already records a mark on every node; this module turns the
composed graph into small immutable nodes (``Scalar``, ``Seq``, ``Map``) so
the parser can report ``file:line`` for any value or key it rejects.

Invariants:
- lines are 1-based, and counted as editors and grep count them (after
  each newline), not at YAML 1.1's other line breaks (CR, NEL, U+2028) too;
- a ``Map`` keeps its keys in document order, each with the line of the key;
- duplicate keys in one mapping are an error naming both lines; ``<<`` merge
  keys are honoured (explicit keys override merged ones, as in YAML 1.1, also
  in a mapping that is itself merged elsewhere);
- a ``Scalar`` keeps both the resolved value (str, int, float, bool or None)
  and the text as written, so ``8080:80`` is never read as a base-60 number
  and ``FOO: 0x10`` keeps its spelling;
- nesting is at most ``MAX_DEPTH`` levels: PyYAML's composer and the
  conversion here recurse once per level, and a deeper document would
  exhaust Python's stack (an alias adds no depth: each node is converted
  once);
- the work is bounded before it starts and as it goes, so a hostile file
  (a YAML bomb) is refused in a fraction of a second: the text is at most
  ``MAX_BYTES``, composing stops after ``MAX_NODES`` nodes (PyYAML, in pure
  Python, takes some 15 us a node), and the document with its aliases
  expanded, as every later consumer (converters, specs, the store) sees it,
  is at most ``MAX_EXPANDED_NODES`` nodes and ``MAX_EXPANDED_CHARS``
  characters. Sizes are summed once per node (memoised), so "billion laughs"
  costs as little as its text; merge keys are resolved here, keeping only
  the last value of each key, never PyYAML's copies of copies;
- YAML syntax errors, several documents, recursive aliases, nesting beyond
  ``MAX_DEPTH``, the limits above and numbers too long to convert raise
  ``ManifestError`` with the line; nothing else escapes from PyYAML.
"""

from __future__ import annotations

import bisect
import datetime
import re
from dataclasses import dataclass
from typing import Any

import yaml

from model.manifest._errors import ManifestError, field_path

__all__ = ["MAX_BYTES", "MAX_DEPTH", "MAX_EXPANDED_CHARS", "MAX_EXPANDED_NODES", "MAX_NODES", "Map", "Node",
           "Scalar", "Seq", "describe", "load_yaml"]

MAX_DEPTH = 64  # a manifest needs 6; Python's stack holds a few hundred
# A manifest of a hundred services is some 30 KiB and 5,000 nodes: these are
# far beyond any real one, and keep the worst file under a second to refuse.
MAX_BYTES = 1 << 20
MAX_NODES = 25_000
MAX_EXPANDED_NODES = 2 * MAX_NODES
MAX_EXPANDED_CHARS = 4 * MAX_BYTES
_SHOWN = 40  # characters of a value quoted in an error
_MERGE_TAG = "tag:yaml.org,2002:merge"


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


class _Lines:
    """A mark's line as editors, grep and ``wc -l`` count them: newlines before it, plus one.

    PyYAML also breaks lines at CR, NEL (U+0085), U+2028 and U+2029 (YAML
    1.1's line breaks; 1.2 keeps CR only), so with any of them in the text its
    line numbers drift from the file's; the mark's character index does not."""

    def __init__(self, text: str) -> None:
        odd = any(c in text for c in "\r\x85\u2028\u2029")
        self.newlines = [m.start() for m in re.finditer("\n", text)] if odd else None

    def __call__(self, mark: yaml.Mark) -> int:
        if self.newlines is None:
            return int(mark.line) + 1
        return bisect.bisect_left(self.newlines, mark.index) + 1


class _Refused(Exception):
    """The composer stops: the document is too deep or too large (``message``, at ``line``)."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(line, message)
        self.line = line
        self.message = message


class _Loader(yaml.SafeLoader):
    """SafeLoader whose composed nodes are walked by ``_Builder`` instead of constructed.

    Counts the composer's depth (it recurses once per level of nesting) and
    the nodes it has made (aliases included), and stops at the limits."""

    depth = 0
    nodes = 0

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.line_of = _Lines(text)

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self.depth += 1
        self.nodes += 1
        try:
            if self.depth > MAX_DEPTH:
                raise _Refused(self.line_of(self.peek_event().start_mark),
                               f"the manifest nests deeper than {MAX_DEPTH} levels; "
                               "a manifest needs a handful")
            if self.nodes > MAX_NODES:
                raise _Refused(self.line_of(self.peek_event().start_mark),
                               f"the manifest has more than {MAX_NODES:,} keys and values; split it into "
                               "several manifests")
            return super().compose_node(parent, index)  # type: ignore[no-any-return]
        finally:
            self.depth -= 1


_PLAIN_TYPES = (str, int, float, bool, type(None))


class _Builder:
    """Converts one composed YAML graph; shared (aliased) nodes are converted once.

    Each built node's size with its aliases expanded (nodes, characters) is
    kept by id, so a node used many times is sized once."""

    def __init__(self, loader: _Loader, path: str) -> None:
        self.loader = loader
        self.path = path
        self.done: dict[int, Node] = {}
        self.active: set[int] = set()
        self.sizes: dict[int, tuple[int, int]] = {}

    def error(self, node: yaml.Node, where: str, message: str) -> ManifestError:
        return ManifestError(self.path, self.loader.line_of(node.start_mark), where, message)

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
        self._size(built, node, where)
        self.done[key] = built
        return built

    def _size(self, built: Node, node: yaml.Node, where: str) -> None:
        """Record ``built``'s expanded size; refuse it beyond the limits (its children are sized)."""
        nodes, chars = 1, 1
        children: tuple[Node, ...] = ()
        if isinstance(built, Scalar):
            chars += len(built.text)
        elif isinstance(built, Seq):
            children = built.items
        else:  # each key is a node too
            children = tuple(item.value for item in built.items)
            nodes += len(built.items)
            chars += sum(len(item.key) + 1 for item in built.items)
        for child in children:
            child_nodes, child_chars = self.sizes[id(child)]
            nodes, chars = nodes + child_nodes, chars + child_chars
        if nodes > MAX_EXPANDED_NODES or chars > MAX_EXPANDED_CHARS:
            raise self.error(node, where, f"with its aliases expanded, this value has more than "
                                          f"{MAX_EXPANDED_NODES:,} keys and values or "
                                          f"{MAX_EXPANDED_CHARS >> 20} MiB of text (a YAML bomb?); "
                                          "write it out, or alias less")
        self.sizes[id(built)] = (nodes, chars)

    def _build(self, node: yaml.Node, where: str) -> Node:
        line = self.loader.line_of(node.start_mark)
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
        own: list[tuple[str, yaml.Node, yaml.Node]] = []
        merges: list[tuple[yaml.Node, yaml.Node]] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merges.append((key_node, value_node))
                continue
            key = self._key(key_node, where)
            key_line = self.loader.line_of(key_node.start_mark)
            if key in seen:
                raise self.error(key_node, field_path(where, key),
                                 f"duplicate key {key!r} (first at line {seen[key]})")
            seen[key] = key_line
            own.append((key, key_node, value_node))
        # YAML 1.1's "<<", as PyYAML orders it: merged pairs first (a later
        # "<<" over an earlier one, in a list the first mapping over the
        # rest), explicit keys over all of them. Each merged mapping is built
        # (and so merged) once, whatever the number of its aliases.
        items: dict[str, MapItem] = {}
        for key_node, value_node in merges:
            for merged in self._merged(key_node, value_node, where):
                for item in merged.items:
                    items.pop(item.key, None)
                    items[item.key] = item
        for key, key_node, value_node in own:
            items.pop(key, None)
            value = self.build(value_node, field_path(where, key))
            items[key] = MapItem(key, self.loader.line_of(key_node.start_mark), value)
        return Map(line, tuple(items.values()))

    def _merged(self, key_node: yaml.Node, value_node: yaml.Node, where: str) -> list[Map]:
        """The mappings a ``<<`` key merges, the one that wins last."""
        where = field_path(where, str(key_node.value))
        message = "a merge key '<<' takes a mapping or a list of mappings (aliases such as *defaults)"
        if isinstance(value_node, yaml.SequenceNode):
            maps = []
            for i, child in enumerate(value_node.value):
                built = self.build(child, field_path(where, i))
                if not isinstance(built, Map):
                    raise self.error(child, field_path(where, i), f"{message}, got {describe(built)}")
                maps.append(built)
            return maps[::-1]
        built = self.build(value_node, where)
        if not isinstance(built, Map):
            raise self.error(value_node, where, f"{message}, got {describe(built)}")
        return [built]

    def _key(self, key_node: yaml.Node, where: str) -> str:
        if not isinstance(key_node, yaml.ScalarNode):
            raise self.error(key_node, where, "a mapping key must be a plain string, not a list or mapping")
        return str(key_node.value)


def load_yaml(text: str, path: str) -> Node | None:
    """Compose ``text`` (one YAML document) into positioned nodes; None for an empty document."""
    _check_size(text, path)
    loader: _Loader | None = None
    try:
        loader = _Loader(text)  # checks the characters first: may raise ReaderError
        composed = loader.get_single_node()
        return None if composed is None else _Builder(loader, path).build(composed, "")
    except _Refused as err:
        raise ManifestError(path, err.line, "", err.message)
    except yaml.MarkedYAMLError as err:
        raise _syntax_error(err, path, _Lines(text))
    except yaml.reader.ReaderError as err:
        line = text.count("\n", 0, err.position) + 1
        raise ManifestError(path, line, "", f"invalid YAML: control character #x{err.character:02x} "
                                            "is not allowed; write it as an escape in a double-quoted string")
    except yaml.YAMLError as err:  # pragma: no cover - every PyYAML error above carries a mark
        raise ManifestError(path, 1, "", f"invalid YAML: {err}")
    finally:
        if loader is not None:
            loader.dispose()


def _check_size(text: str, path: str) -> None:
    """At most ``MAX_BYTES`` of UTF-8; refused at the line where the text goes past it."""
    if len(text) * 4 <= MAX_BYTES:  # no character is longer than 4 bytes
        return
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= MAX_BYTES:
        return
    line = data.count(b"\n", 0, MAX_BYTES) + 1
    raise ManifestError(path, line, "", f"the manifest is larger than {MAX_BYTES >> 20} MiB "
                                        f"({len(data):,} bytes); split it into several manifests")


def _syntax_error(err: yaml.MarkedYAMLError, path: str, line_of: _Lines) -> ManifestError:
    mark = err.problem_mark or err.context_mark
    line = line_of(mark) if mark is not None else 1
    message = err.problem or "invalid YAML"
    if err.context == "expected a single document in the stream":
        return ManifestError(path, line, "", "a manifest is one YAML document; remove the '---' "
                                             "separator and put all services under one 'services:'")
    if err.context:
        where = ""
        if err.context_mark is not None and line_of(err.context_mark) != line:
            where = f" at line {line_of(err.context_mark)}"
        message = f"{message} ({err.context}{where})"
    return ManifestError(path, line, "", f"invalid YAML: {message}")
