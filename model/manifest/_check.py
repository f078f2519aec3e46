"""Service specs that come without a manifest (``Deploy``'s ``services``), held to its rules.

Each spec is written out as manifest text (``dump_manifest``) and parsed back:
every check a manifest gets (names, image references, replicas and the other
limits, ports, environment, labels, reservations within limits) applies, from
the one place that defines it. A spec passes when it comes back unchanged; a
value a manifest cannot spell (a protocol other than tcp or udp, say) comes
back different and is refused too.

Invariant: ``check_specs(specs) == specs`` for valid specs (global services'
ignored ``replicas`` reads back as 1); otherwise ``ManifestError`` naming the
source and the field path, without a line (the text is generated, its lines
mean nothing to the sender).
"""

from __future__ import annotations

import dataclasses

from model.manifest._dump import dump_manifest
from model.manifest._errors import ManifestError
from model.manifest._parse import parse_manifest
from model.objects import ServiceSpec

__all__ = ["check_specs"]

# Model fields whose manifest key is spelled or placed differently.
_KEYS = {
    "env": "environment",
    "mode": "deploy.mode",
    "replicas": "deploy.replicas",
    "limits": "deploy.resources.limits",
    "reservations": "deploy.resources.reservations",
    "placement": "deploy.placement",
    "restart_policy": "deploy.restart_policy",
    "update_config": "deploy.update_config",
    "rollback_config": "deploy.rollback_config",
    "binpack": "x-orch.binpack",
    "rebalance": "x-orch.rebalance",
    "storage_size": "storage_opt.size",
    "endpoint_mode": "deploy.endpoint_mode",
    "mounts": "volumes",
    "log_max_size": "logging.options.max-size",
    "log_max_files": "logging.options.max-file",
}


def check_specs(specs: list[ServiceSpec], source: str) -> list[ServiceSpec]:
    """``specs`` as a manifest would give them, or ``ManifestError`` naming ``source`` and the field."""
    seen: set[str] = set()
    for spec in specs:
        if spec.name in seen:
            raise ManifestError(source, 0, f"services.{spec.name}", "the service is given twice")
        seen.add(spec.name)
    try:
        text = dump_manifest(specs)
    except (TypeError, ValueError, AttributeError, KeyError) as err:  # a field of the wrong type
        raise ManifestError(source, 0, "", f"not a service spec: {err}")
    try:
        parsed = parse_manifest(text, source)
    except ManifestError as err:
        raise ManifestError(source, 0, err.field, err.message)
    for spec, back in zip(specs, parsed, strict=True):
        expected = spec if spec.mode == "replicated" else dataclasses.replace(spec, replicas=back.replicas)
        if back != expected:
            raise _changed(source, expected, back)
    return parsed


def _changed(source: str, spec: ServiceSpec, back: ServiceSpec) -> ManifestError:
    name = next(f.name for f in dataclasses.fields(ServiceSpec)
                if getattr(spec, f.name) != getattr(back, f.name))
    value = getattr(spec, name)
    return ManifestError(source, 0, f"services.{spec.name}.{_KEYS.get(name, name)}",
                         f"{value!r} is not a value a manifest can hold")
