"""The JSON Schema and the parser describe the same format: both come from one key table."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from model.manifest import ManifestError, json_schema, parse_manifest
from model.manifest._table import TOP, Leaf, MapOf, Section, Shape
from model.manifest._values import PORT_KEYS, PREFERENCE_KEYS
from model.objects import UpdateConfig


def _sample(shape: Shape) -> Any:
    """A document using every key of the table, with each leaf's example value."""
    if isinstance(shape, Leaf):
        return shape.example
    if isinstance(shape, MapOf):
        return {"svc": _sample(shape.value)}
    return {key: _sample(sub) for key, sub in shape.keys.items()}


def _parseable(probes: bool = False) -> Any:
    """``_sample(TOP)`` without the keys that exclude others: ``network_mode``
    (no networks at all), a network's ``external`` (which takes only a name),
    orch's health probes (each replaces ``healthcheck.test``, one at a time),
    ``container_name`` (one replica), the service-level limits (which repeat
    deploy's), and those that name other services (``extends``,
    ``depends_on``) or leave it out (``profiles``); its volume is declared."""
    document = _sample(TOP)
    service = document["services"]["svc"]
    for key in ("network_mode", "extends", "depends_on", "profiles", "container_name", "mem_limit",
                "mem_reservation", "cpus"):
        del service[key]
    del document["networks"]["svc"]["external"]
    if not probes:
        del service["x-orch"]["healthcheck"]
    document["volumes"] = {"data": None}
    return document


SectionAt = tuple[str, Section, dict[str, Any]]


def _sections(shape: Shape, schema: dict[str, Any], path: str = "") -> list[SectionAt]:
    """Every Section of the table with the schema object at the same place."""
    if isinstance(shape, Leaf):
        return []
    if isinstance(shape, MapOf):
        return _sections(shape.value, schema["additionalProperties"], path + ".svc")
    found = [(path or "<top>", shape, schema)]
    for key, sub in shape.keys.items():
        found += _sections(sub, schema["properties"][key], f"{path}.{key}")
    return found


def _leaves(shape: Shape, schema: dict[str, Any]) -> list[tuple[Leaf, dict[str, Any]]]:
    if isinstance(shape, Leaf):
        return [(shape, schema)]
    if isinstance(shape, MapOf):
        return _leaves(shape.value, schema["additionalProperties"])
    return [pair for key, sub in shape.keys.items() for pair in _leaves(sub, schema["properties"][key])]


SECTIONS = _sections(TOP, json_schema())


@pytest.mark.parametrize(("path", "section", "schema"), SECTIONS, ids=[s[0] for s in SECTIONS])
def test_schema_has_exactly_the_parsers_keys(path: str, section: Section, schema: dict[str, Any]) -> None:
    assert set(schema["properties"]) == set(section.keys)
    assert schema["additionalProperties"] is False
    assert schema.get("required", []) == list(section.required)
    assert not set(section.unsupported) & set(section.keys), "a key cannot be both known and unsupported"


@pytest.mark.parametrize(("path", "section", "schema"), SECTIONS, ids=[s[0] for s in SECTIONS])
def test_parser_rejects_keys_outside_the_table(path: str, section: Section, schema: dict[str, Any]) -> None:
    document = _parseable(probes="x-orch.healthcheck" in path)  # its unknown key is found first
    target = document
    for key in path.split(".")[1:]:
        if key == "svc" and key not in target:  # the volume's key
            key = "data"
            target[key] = target[key] or {}
        target = target.setdefault(key, {})
    target["bogus-key"] = 1
    with pytest.raises(ManifestError, match="unknown key 'bogus-key'"):
        parse_manifest(yaml.safe_dump(document))


def test_long_form_keys_match_schema() -> None:
    service = json_schema()["properties"]["services"]["additionalProperties"]
    port_long = service["properties"]["ports"]["items"]["oneOf"][1]
    assert tuple(port_long["properties"]) == PORT_KEYS
    placement = service["properties"]["deploy"]["properties"]["placement"]
    assert tuple(placement["properties"]["preferences"]["items"]["properties"]) == PREFERENCE_KEYS


def test_every_key_at_once_parses() -> None:
    """Every key but those that exclude others (``_parseable``)."""
    (spec,) = parse_manifest(yaml.safe_dump(_parseable()))
    assert spec.name == "svc" and spec.binpack is True and spec.stop_grace_period == 30.0
    assert spec.healthcheck is not None and spec.healthcheck.test[0] == "CMD"
    assert [(n.name, n.aliases) for n in spec.networks] == [("shared", ["api"])]
    assert spec.update_config == UpdateConfig(2, 10.0, "rollback", 30.0, 0.1, "start-first")
    assert spec.rollback_config == UpdateConfig(2, 10.0, "pause", 30.0, 0.1, "start-first")
    assert spec.rebalance is False


def test_every_leaf_documents_itself() -> None:
    for leaf, schema in _leaves(TOP, json_schema()):
        assert schema["description"] == leaf.description and leaf.description.endswith(".")
        assert schema["examples"] == [leaf.example]


def test_leaf_examples_and_sample_validate_against_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    assert [e.message for e in validator.iter_errors(_sample(TOP))] == []
    bad = _sample(TOP)
    bad["services"]["svc"]["deploy"]["replica"] = 3
    assert list(validator.iter_errors(bad))


def test_json_schema_returns_a_fresh_copy() -> None:
    first = json_schema()
    first["properties"].clear()
    assert json_schema()["properties"]
    assert json_schema()["$schema"] == "https://json-schema.org/draft/2020-12/schema"
