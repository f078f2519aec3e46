"""Walk positioned YAML nodes along the key table, converting every known value.

The result keeps, for every key, its converted value, the node it came from
and its field path, so checks that involve several keys (reservation above
limit, a published port used twice) can still point at a line.

Invariants: a key not in the table is an error at the key's line, with the
closest known key suggested (an ``x-`` extension key is ignored where the
section takes them, unless it reads as a slip of orch's own ``x-orch``); a
missing required key is an error at the line of the mapping that lacks it; a mapping of names (``services``,
``networks``) holds at least one, as the schema's ``minProperties`` has it;
values are converted in document order, so the first error in the file is
the one reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from model.manifest._errors import ManifestError, field_path
from model.manifest._table import Leaf, MapOf, Section, Shape
from model.manifest._values import Invalid, unknown_key_message
from model.manifest._yaml import Map, Node, Scalar, describe

__all__ = ["Field", "Fields", "walk"]


@dataclass(frozen=True)
class Field:
    value: Any  # a Leaf's converted value, a Fields for a Section, a dict[str, Field] for a MapOf
    node: Node
    key_line: int
    path: str

    @property
    def line(self) -> int:
        return self.node.line


class Fields(dict[str, Field]):
    """The known keys present in one mapping, in document order."""

    def get_in(self, *keys: str) -> Field | None:
        """The field at a path below this mapping, e.g. ``get_in("resources", "limits", "cpus")``."""
        current: Fields = self
        found: Field | None = None
        for key in keys:
            found = current.get(key)
            if found is None:
                return None
            if isinstance(found.value, Fields):
                current = found.value
        return found

    def value_in(self, *keys: str, default: Any = None) -> Any:
        found = self.get_in(*keys)
        return default if found is None else found.value


def walk(shape: Shape, node: Node, path: str, file: str, key_line: int = 0) -> Any:
    """Convert ``node`` (found at ``path``, under a key on ``key_line``) as ``shape`` describes.

    Errors name ``file``; a missing required key is reported at ``key_line``
    (the line naming the mapping), or at the mapping's first line.
    """
    if isinstance(shape, Leaf):
        try:
            return shape.convert(node)
        except Invalid as err:
            line = err.line if err.line is not None else node.line
            raise ManifestError(file, line, path + err.suffix, err.message)
    if not isinstance(node, Map):
        raise ManifestError(file, node.line, path, f"expected a mapping, got {describe(node)}")
    if isinstance(shape, MapOf):
        return _walk_names(shape, node, path, file, key_line or node.line)
    return _walk_section(shape, node, path, file, key_line or node.line)


def _walk_section(section: Section, node: Map, path: str, file: str, line: int) -> Fields:
    fields = Fields()
    for item in node.items:
        where = field_path(path, item.key)
        sub = section.keys.get(item.key)
        if sub is not None:
            value = walk(sub, item.value, where, file, item.key_line)
            fields[item.key] = Field(value, item.value, item.key_line, where)
        elif section.extensions and item.key.startswith("x-") and not _misspelt(item.key, section):
            continue
        elif item.key in section.unsupported:
            raise ManifestError(file, item.key_line, where,
                                f"{item.key!r} is not supported by orch: {section.unsupported[item.key]}")
        else:
            raise ManifestError(file, item.key_line, where, unknown_key_message(item.key, section.keys))
    for key in section.required:
        if key not in fields:
            raise ManifestError(file, line, path, f"missing required key {key!r}")
    return fields


def _misspelt(key: str, section: Section) -> bool:
    """An ``x-`` key that reads as a slip of one of the section's own (``x-orhc``): an error, not an
    extension, so orch's settings are never dropped for a typo."""
    import difflib  # only for extension keys

    own = [k for k in section.keys if k.startswith("x-")]
    return bool(own and difflib.get_close_matches(key, own, n=1, cutoff=0.8))


def _walk_names(shape: MapOf, node: Map, path: str, file: str, line: int) -> dict[str, Field]:
    if not node.items:  # the schema's minProperties: a key with nothing under it says nothing
        what = path.rsplit(".", 1)[-1]
        raise ManifestError(file, line, path, f"no {what} defined" + (
            "" if what == "services" else f": define one, or leave '{what}' out"))
    out: dict[str, Field] = {}
    for item in node.items:
        where = field_path(path, item.key)
        try:
            shape.check_name(item.key)
        except Invalid as err:
            raise ManifestError(file, item.key_line, where, err.message)
        if shape.nullable and isinstance(item.value, Scalar) and item.value.value is None:
            value: Any = Fields()
        else:
            value = walk(shape.value, item.value, where, file, item.key_line)
        out[item.key] = Field(value, item.value, item.key_line, where)
    return out
