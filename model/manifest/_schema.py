"""The published JSON Schema (draft 2020-12), generated from the key table.

Editors (e.g. the YAML language server, via a ``# yaml-language-server:
$schema=...`` comment) use it for completion and checks;
``examples/schema/orch-manifest.schema.json`` is this function's output
(``python -m model.manifest > examples/schema/orch-manifest.schema.json``).

Invariants: a key appears in the schema exactly when the parser accepts it,
because both read ``_table``. The schema checks shapes and spellings; checks
across keys (replicas with global mode, reservation above limit, a port
published twice) are the parser's alone.
"""

from __future__ import annotations

import copy
from typing import Any

from model.manifest._table import TOP, Leaf, MapOf, Section, Shape

__all__ = ["SCHEMA_ID", "json_schema"]

SCHEMA_ID = "https://orch.dev/schemas/orch-manifest.schema.json"


def json_schema() -> dict[str, Any]:
    """The manifest format as a JSON Schema document; a fresh dict on every call."""
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "orch manifest",
    }
    schema.update(_shape(TOP))
    return schema


def _shape(shape: Shape) -> dict[str, Any]:
    if isinstance(shape, Leaf):
        out = copy.deepcopy(shape.schema)
        out["description"] = shape.description
        out["examples"] = [copy.deepcopy(shape.example)]
        return out
    if isinstance(shape, MapOf):
        value = _shape(shape.value)
        if shape.nullable:  # a name with nothing after it takes the defaults
            value["type"] = ["object", "null"]
        return {
            "type": "object",
            "description": shape.description,
            "propertyNames": {"pattern": shape.name_pattern},
            "additionalProperties": value,
            "minProperties": 1,
        }
    return _section(shape)


def _section(section: Section) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": "object",
        "description": section.description,
        "properties": {key: _shape(sub) for key, sub in section.keys.items()},
        "additionalProperties": False,
    }
    if section.required:
        out["required"] = list(section.required)
    if section.extensions:
        out["patternProperties"] = {"^x-": {"description": "Ignored; a place for YAML anchors."}}
    return out
