"""Manifest text to ``ServiceSpec`` objects, with the checks that span several keys.

Pipeline: ``load_yaml`` (positioned nodes) -> ``walk`` along the key table
(per-value conversion, unknown and missing keys) -> ``_service`` (one spec per
service, checks across its keys) -> ``_check_ports`` (checks across services).

Invariants: the specs returned are in the order the services appear in the
file; a manifest either parses completely or raises the first
``ManifestError`` in document order.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from model.manifest._errors import ManifestError
from model.manifest._table import TOP
from model.manifest._walk import Field, Fields, walk
from model.manifest._yaml import Seq, load_yaml
from model.objects import Placement, Resources, RestartPolicy, ServiceSpec
from model.units import format_bytes

__all__ = ["load_manifest", "parse_manifest"]


def load_manifest(path: str) -> list[ServiceSpec]:
    """Read and parse the manifest at ``path``; errors name ``path`` as given."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ManifestError(path, 0, "", f"not UTF-8 text: {err.reason} at byte {err.start}")
    except OSError as err:
        raise ManifestError(path, 0, "", f"cannot read the manifest: {err.strerror or err}")
    return parse_manifest(text, path)


def parse_manifest(text: str, path: str = "<string>") -> list[ServiceSpec]:
    """Parse manifest ``text``; ``path`` only names the source in errors."""
    root = load_yaml(text, path)
    if root is None:
        raise ManifestError(path, 1, "", "the manifest is empty: expected a 'services:' mapping")
    top: Fields = walk(TOP, root, "", path)
    services: dict[str, Field] = top["services"].value
    if not services:
        raise ManifestError(path, top["services"].key_line, "services", "no services defined")
    specs = [_service(name, field, path) for name, field in services.items()]
    _check_ports(specs, list(services.values()), path)
    return specs


def _service(name: str, field: Field, file: str) -> ServiceSpec:
    fields: Fields = field.value
    deploy: Fields = fields.value_in("deploy", default=Fields())
    mode = deploy.value_in("mode", default="replicated")
    replicas = deploy.get_in("replicas")
    if mode == "global" and replicas is not None:
        raise ManifestError(file, replicas.key_line, replicas.path,
                            "replicas cannot be set with mode 'global', which runs one task per node")
    limits = _resources(deploy, "limits")
    limits.pids = _pids(fields, deploy, file)
    reservations = _resources(deploy, "reservations")
    _check_reservation(deploy, limits, reservations, file)
    optional: dict[str, Any] = {}
    if "stop_grace_period" in fields:  # keep the model's default when absent
        optional["stop_grace_period"] = fields["stop_grace_period"].value
    size = fields.get_in("storage_opt", "size")
    if size is not None:
        optional["storage_size"] = size.value
    return ServiceSpec(
        name=name,
        image=fields["image"].value,
        command=fields.value_in("command"),
        entrypoint=fields.value_in("entrypoint"),
        env=fields.value_in("environment", default=[]),
        ports=fields.value_in("ports", default=[]),
        labels=fields.value_in("labels", default={}),
        mode=mode,
        replicas=1 if replicas is None else replicas.value,
        limits=limits,
        reservations=reservations,
        placement=Placement(
            constraints=deploy.value_in("placement", "constraints", default=[]),
            preferences=deploy.value_in("placement", "preferences", default=[]),
            max_replicas_per_node=deploy.value_in("placement", "max_replicas_per_node", default=0),
        ),
        restart_policy=_restart_policy(deploy),
        binpack=fields.value_in("x-orch", "binpack", default=False),
        **optional,
    )


def _resources(deploy: Fields, kind: str) -> Resources:
    return Resources(
        cpus=deploy.value_in("resources", kind, "cpus", default=0.0),
        memory_bytes=deploy.value_in("resources", kind, "memory", default=0),
    )


def _pids(fields: Fields, deploy: Fields, file: str) -> int:
    """Compose's two spellings, ``pids_limit`` and ``deploy.resources.limits.pids``: either, or
    both when they agree; 0 (absent) is the node's default."""
    service = fields.get("pids_limit")
    limit = deploy.get_in("resources", "limits", "pids")
    if service is not None and limit is not None and service.value != limit.value:
        raise ManifestError(
            file, limit.line, limit.path,
            f"pids {limit.value} disagrees with pids_limit {service.value} (line {service.line}); "
            "set one of them",
        )
    found = service or limit
    return 0 if found is None else int(found.value)


def _check_reservation(deploy: Fields, limits: Resources, reservations: Resources, file: str) -> None:
    """A task cannot be promised more than it is allowed to use."""
    shows: dict[str, Callable[[Any], str]] = {"cpus": lambda n: f"{n:g} CPUs", "memory": format_bytes}
    for key, show in shows.items():
        limit = deploy.get_in("resources", "limits", key)
        reserved = deploy.get_in("resources", "reservations", key)
        if limit is None or reserved is None or reserved.value <= limit.value:
            continue
        raise ManifestError(
            file, reserved.line, reserved.path,
            f"reservation {show(reserved.value)} is above the limit {show(limit.value)} "
            f"({limit.path}, line {limit.line}); lower the reservation or raise the limit",
        )


def _restart_policy(deploy: Fields) -> RestartPolicy:
    default = RestartPolicy()
    return RestartPolicy(
        condition=deploy.value_in("restart_policy", "condition", default=default.condition),
        delay=deploy.value_in("restart_policy", "delay", default=default.delay),
        max_attempts=deploy.value_in("restart_policy", "max_attempts", default=default.max_attempts),
        window=deploy.value_in("restart_policy", "window", default=default.window),
    )


def _check_ports(specs: list[ServiceSpec], fields: list[Field], file: str) -> None:
    """A published port (per protocol) can be bound by one service only: its tasks share it."""
    first: dict[tuple[int, str], str] = {}
    first_line: dict[tuple[int, str], int] = {}
    for spec, field in zip(specs, fields, strict=True):
        ports = field.value.get("ports")
        if ports is None:
            continue
        assert isinstance(ports.node, Seq)  # the ports converter accepts lists only
        for index, port in enumerate(spec.ports):
            key = (port.published, port.protocol)
            line = ports.node.items[index].line
            path = f"{ports.path}[{index}]"
            if key in first:
                raise ManifestError(
                    file, line, path,
                    f"published port {port.published}/{port.protocol} is already used by "
                    f"{first[key]} (line {first_line[key]}); each published port belongs to one service",
                )
            first[key], first_line[key] = path, line
