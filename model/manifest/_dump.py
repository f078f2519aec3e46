"""``ServiceSpec`` objects back to manifest text (for ``orch`` to show a service's spec).

Invariant: ``parse_manifest(dump_manifest(specs)) == specs`` for every list
of valid specs (distinct DNS-label names, reservations within limits,
published ports used once); keys holding the default value are left out.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

import yaml

from model.objects import Placement, Resources, RestartPolicy, ServiceSpec

__all__ = ["dump_manifest", "spec_to_dict"]

_BINARY_UNITS = (("Pi", 1024**5), ("Ti", 1024**4), ("Gi", 1024**3), ("Mi", 1024**2), ("Ki", 1024))


class _Dumper(yaml.SafeDumper):
    """SafeDumper that double-quotes strings holding Unicode line breaks.

    PyYAML writes U+0085 raw inside a single-quoted scalar when unicode is
    allowed, and its own reader then folds it to a space; double quotes
    escape it.
    """


def _represent_str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = '"' if any(ch in text for ch in "\x85\u2028\u2029") else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _represent_str)


def dump_manifest(specs: list[ServiceSpec]) -> str:
    """YAML text of a manifest holding ``specs`` in order."""
    doc = {"services": {spec.name: spec_to_dict(spec) for spec in specs}}
    # allow_unicode=False: escapes such as \x85 (NEL, a YAML line break) stay escaped.
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=False, default_flow_style=False)


def spec_to_dict(spec: ServiceSpec) -> dict[str, Any]:
    """One service as plain data in manifest form, defaults omitted."""
    out: dict[str, Any] = {"image": spec.image}
    if spec.command is not None:
        out["command"] = list(spec.command)
    if spec.entrypoint is not None:
        out["entrypoint"] = list(spec.entrypoint)
    if spec.env:
        out["environment"] = list(spec.env)
    if spec.ports:
        out["ports"] = [f"{p.published}:{p.target}" + ("/udp" if p.protocol == "udp" else "")
                        for p in spec.ports]
    if spec.labels:
        out["labels"] = dict(spec.labels)
    grace = getattr(spec, "stop_grace_period", None)
    if grace is not None and grace != _default("stop_grace_period"):
        out["stop_grace_period"] = grace
    if spec.storage_size:
        out["storage_opt"] = {"size": _memory(spec.storage_size)}
    deploy = _deploy(spec)
    if deploy:
        out["deploy"] = deploy
    if spec.binpack:
        out["x-orch"] = {"binpack": True}
    return out


def _default(name: str) -> Any:
    for f in dataclasses.fields(ServiceSpec):
        if f.name == name:
            return f.default
    return None


def _deploy(spec: ServiceSpec) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if spec.mode == "global":
        out["mode"] = "global"
    else:
        out["replicas"] = spec.replicas
    resources = {key: value for key, value in (("limits", _resources(spec.limits)),
                                                ("reservations", _resources(spec.reservations))) if value}
    if resources:
        out["resources"] = resources
    placement = _placement(spec.placement)
    if placement:
        out["placement"] = placement
    restart = _changed(spec.restart_policy, RestartPolicy())
    if restart:
        out["restart_policy"] = restart
    return out


def _resources(resources: Resources) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if resources.cpus:
        out["cpus"] = format(Decimal(repr(resources.cpus)), "f")  # no exponent: "0.00001", not "1e-05"
    if resources.memory_bytes:
        out["memory"] = _memory(resources.memory_bytes)
    if resources.pids:
        out["pids"] = resources.pids
    return out


def _memory(n: int) -> str | int:
    for suffix, size in _BINARY_UNITS:
        if n % size == 0:
            return f"{n // size}{suffix}"
    return n


def _placement(placement: Placement) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if placement.constraints:
        out["constraints"] = list(placement.constraints)
    if placement.preferences:
        out["preferences"] = [{"spread": label} for label in placement.preferences]
    if placement.max_replicas_per_node:
        out["max_replicas_per_node"] = placement.max_replicas_per_node
    return out


def _changed(value: Any, default: Any) -> dict[str, Any]:
    return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)
            if getattr(value, f.name) != getattr(default, f.name)}
