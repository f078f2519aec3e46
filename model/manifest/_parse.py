"""Manifest text to a ``Stack``: its ``ServiceSpec`` objects and the networks
they use, with the checks that span several keys.

Pipeline: ``load_yaml`` (positioned nodes) -> ``walk`` along the key table
(per-value conversion, unknown and missing keys) -> ``resolve_networks``
(each service's networks, by their names in the cluster) -> ``resolve_secrets``
(each service's secrets and configs, by their names in the cluster) -> ``_service`` (one
spec per service, checks across its keys) -> ``_check_ports`` (checks across
services).

Invariants: the specs returned are in the order the services appear in the
file; a manifest either parses completely or raises the first
``ManifestError`` found (services in document order, then what spans them).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model.constraints import parse_constraint
from model.health import HealthCheck, HttpProbe, TcpProbe
from model.manifest._compose import active_services, merge_extends, resolve_dependencies, resolve_volumes
from model.manifest._errors import ManifestError
from model.manifest._networks import NetworkDef, StackName, resolve_networks
from model.manifest._secrets import SecretDef, resolve_secrets
from model.manifest._table import TOP
from model.manifest._walk import Field, Fields, walk
from model.manifest._yaml import Seq, load_yaml
from model.objects import (
    Dependency,
    Mount,
    NetworkAttachment,
    Placement,
    Resources,
    RestartPolicy,
    SecretRef,
    ServiceSpec,
    UpdateConfig,
)
from model.units import format_bytes

__all__ = ["Stack", "load_manifest", "load_stack", "parse_manifest", "parse_stack"]


@dataclass
class Stack:
    """A parsed manifest: its services, and the networks, secrets and configs
    they use (in order of first use)."""

    services: list[ServiceSpec]
    networks: list[NetworkDef]
    path: str  # the file, as given: what errors about it name
    name: str = ""  # the stack's name; "" when it has none (nothing made needs one)
    secrets: list[SecretDef] = dataclasses.field(default_factory=list)  # secrets and configs (SecretDef.kind)


def _read(path: str) -> str:
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise ManifestError(path, 0, "", f"cannot read the manifest: {err.strerror or err}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise ManifestError(path, line, "", f"not UTF-8 text: {err.reason} at byte {err.start}; "
                                            "save the file as UTF-8")


def load_stack(path: str, stack: str = "", profiles: Collection[str] = ()) -> Stack:
    """Read and parse the manifest at ``path``; errors name ``path`` as given."""
    return parse_stack(_read(path), path, stack, profiles)


def load_manifest(path: str) -> list[ServiceSpec]:
    return load_stack(path).services


def parse_manifest(text: str, path: str = "<string>", stack: str = "") -> list[ServiceSpec]:
    """The services of manifest ``text`` (see :func:`parse_stack`)."""
    return parse_stack(text, path, stack).services


def parse_stack(text: str, path: str = "<string>", stack: str = "", profiles: Collection[str] = (),
                env_files: Mapping[str, list[str]] | None = None,
                built: Mapping[str, str] | None = None) -> Stack:
    """Parse manifest ``text``; ``path`` names the source in errors. The stack's
    name is the manifest's ``name:``, else ``stack`` (normalised), else the
    name of ``path``'s directory. A service with ``profiles`` is in the stack
    only when one of them is in ``profiles`` (it is checked all the same).
    ``env_files``: the variables of each ``env_file`` the manifest names, by
    its path as written (the deploying machine's files, which the CLI reads).
    ``built``: by service, the image ``orch deploy --build`` made of its
    ``build:`` (it replaces ``image:``)."""
    root = load_yaml(text, path)
    if root is None:
        raise ManifestError(path, 1, "", "the manifest is empty: expected a 'services:' mapping")
    top: Fields = walk(TOP, merge_extends(root, path), "", path)
    every: dict[str, Field] = top["services"].value
    if not every:
        raise ManifestError(path, top["services"].key_line, "services", "no services defined")
    services = active_services(every, frozenset(profiles), path)
    name = StackName(top, stack, path)
    networks, defs = resolve_networks(top, services, path, name)
    granted, secrets = resolve_secrets(top, services, path, name)
    mounts = resolve_volumes(top, services, path, name)
    depends = resolve_dependencies(services, every, path)
    specs = [_service(service, field, path, networks[service], granted[service],
                      Container(mounts[service], depends[service], env_files or {},
                                _built(field, (built or {}).get(service, ""), path)))
             for service, field in services.items()]
    _check_ports(specs, list(services.values()), path)
    return Stack(specs, defs, path, name.peek(), secrets)


@dataclass
class Container:
    """What a service's spec takes from across the stack, beside its networks
    and grants, and from the deploying machine: its ``env_file`` files'
    variables, by path as the manifest writes it (read by the CLI)."""

    mounts: list[Mount] = dataclasses.field(default_factory=list)
    depends_on: list[Dependency] = dataclasses.field(default_factory=list)
    env_files: Mapping[str, list[str]] = dataclasses.field(default_factory=dict)
    built_image: str = ""  # `orch deploy --build`: what the CLI built and pushed for its build:


def _service(name: str, field: Field, file: str, networks: list[NetworkAttachment],
             granted: dict[str, list[SecretRef]] | None = None,
             stacked: Container | None = None) -> ServiceSpec:
    fields: Fields = field.value
    deploy: Fields = fields.value_in("deploy", default=Fields())
    mode = deploy.value_in("mode", default="replicated")
    replicas = deploy.get_in("replicas")
    if mode == "global" and replicas is not None:
        raise ManifestError(file, replicas.key_line, replicas.path,
                            "replicas cannot be set with mode 'global', which runs one task per node")
    limits = _resources(deploy, "limits")
    limits.cpus = _either(fields, "cpus", deploy, ("resources", "limits", "cpus"), file, limits.cpus)
    limits.memory_bytes = _either(fields, "mem_limit", deploy, ("resources", "limits", "memory"), file,
                                  limits.memory_bytes)
    limits.pids = _pids(fields, deploy, file)
    reservations = _resources(deploy, "reservations")
    reservations.memory_bytes = _either(fields, "mem_reservation", deploy,
                                        ("resources", "reservations", "memory"), file,
                                        reservations.memory_bytes)
    _check_reservation(deploy, limits, reservations, file)
    _check_image(fields, field, file, (stacked or Container()).built_image)
    _check_container_name(fields, mode, replicas, file)
    optional: dict[str, Any] = _container(fields, file, stacked or Container())
    if "stop_grace_period" in fields:  # keep the model's default when absent
        optional["stop_grace_period"] = fields["stop_grace_period"].value
    size = fields.get_in("storage_opt", "size")
    if size is not None:
        optional["storage_size"] = size.value
    optional["healthcheck"] = _healthcheck(fields, file)
    optional["secrets"] = (granted or {}).get("secret", [])
    optional["configs"] = (granted or {}).get("config", [])
    return ServiceSpec(
        name=name,
        image=(stacked or Container()).built_image or fields.value_in("image", default=""),
        command=fields.value_in("command"),
        entrypoint=fields.value_in("entrypoint"),
        env=_env(fields, file, (stacked or Container()).env_files),
        ports=fields.value_in("ports", default=[]),
        labels=fields.value_in("labels", default={}),
        mode=mode,
        replicas=1 if replicas is None else replicas.value,
        limits=limits,
        reservations=reservations,
        placement=Placement(
            constraints=_constraints(fields, deploy),
            preferences=deploy.value_in("placement", "preferences", default=[]),
            max_replicas_per_node=deploy.value_in("placement", "max_replicas_per_node", default=0),
        ),
        restart_policy=_restart_policy(deploy, fields),
        update_config=_update_config(deploy, "update_config"),
        rollback_config=_update_config(deploy, "rollback_config"),
        binpack=fields.value_in("x-orch", "binpack", default=False),
        rebalance=fields.value_in("x-orch", "rebalance", default=True),
        networks=networks,
        endpoint_mode=deploy.value_in("endpoint_mode", default="vip"),
        **optional,
    )


def _env(fields: Fields, file: str, sent: Mapping[str, list[str]]) -> list[str]:
    """The env files' variables (a later one wins), then ``environment``'s,
    which win over them; a required file the CLI did not send is an error."""
    merged: dict[str, str] = {}
    refs = fields.get("env_file")
    where = refs.path if refs is not None else ""
    for ref in refs.value if refs is not None else []:
        lines = sent.get(ref.path)
        if lines is None:
            if ref.required:
                raise ManifestError(file, ref.line, where + ref.suffix,
                                    f"env file {ref.path} was not sent: `orch deploy` and `orch plan` read "
                                    "it next to the manifest (required: false makes it optional)")
            continue
        merged.update(line.split("=", 1) for line in lines)  # type: ignore[misc]
    for line in fields.value_in("environment", default=[]):
        name, _, value = line.partition("=")
        merged.pop(name, None)
        merged[name] = value
    return [f"{k}={v}" for k, v in merged.items()]


def _container(fields: Fields, file: str, stacked: Container) -> dict[str, Any]:
    """The container's own settings, as the spec's fields (absent keys keep the model's defaults)."""
    devices = fields.get("devices")
    if devices is not None and devices.value and not fields.value_in("x-orch", "devices", default=False):
        raise ManifestError(file, devices.key_line, devices.path,
                            "devices are refused in a cluster service by default: a task may run on any "
                            "node, and a node's devices are its own; allow them with x-orch: {devices: "
                            "true}, with a placement constraint to the nodes that have them")
    out: dict[str, Any] = {key: fields[key].value for key in _CONTAINER_FIELDS if key in fields}
    mode = fields.value_in("network_mode", default="bridge")
    if mode != "bridge":
        out["network_mode"] = mode
        ports = fields.get("ports")
        if ports is not None and ports.value:
            raise ManifestError(file, ports.key_line, ports.path,
                                f"ports cannot be published with network_mode {mode}: "
                                + ("the task answers on the node's own ports already" if mode == "host"
                                   else "the task has no network"))
    if stacked.mounts:
        out["mounts"] = stacked.mounts
    if stacked.depends_on:
        out["depends_on"] = stacked.depends_on
    size, files = fields.value_in("logging", "options", default=(0, 0))
    if size:
        out["log_max_size"] = size
    if files:
        out["log_max_files"] = files
    return out


# Compose keys stored as they are, under the same name in the spec.
_CONTAINER_FIELDS = ("container_name", "hostname", "user", "working_dir", "stop_signal", "read_only",
                     "init", "tty", "stdin_open", "privileged", "cap_add", "cap_drop", "devices", "sysctls",
                     "ulimits", "dns", "extra_hosts", "shm_size")


def _built(field: Field, image: str, file: str) -> str:
    """A service's built image, which only a service with ``build:`` takes."""
    if image and "build" not in field.value:
        raise ManifestError(file, field.key_line, field.path, "an image was built for a service without "
                                                              "'build'")
    return image


def _check_image(fields: Fields, field: Field, file: str, built: str = "") -> None:
    if "image" in fields or built:
        return
    build = fields.get("build")
    if build is not None:
        raise ManifestError(file, build.key_line, build.path,
                            "the service has a build but no image: deploy it with 'orch deploy --build', "
                            "which builds the image first, or give the service an 'image'")
    raise ManifestError(file, field.key_line, field.path, "missing required key 'image'")


def _check_container_name(fields: Fields, mode: str, replicas: Field | None, file: str) -> None:
    """A container name is unique on a node: one task may carry it (Compose refuses scale > 1 too)."""
    name = fields.get("container_name")
    if name is None:
        return
    if mode == "global" or (replicas is not None and replicas.value > 1):
        many = "mode global runs a task per node" if mode == "global" else f"{replicas.value} replicas"  # type: ignore[union-attr]
        raise ManifestError(file, name.key_line, name.path,
                            f"container_name names one container, but {many}: leave it out (tasks are "
                            "named after the service) or run one replica")


def _either(fields: Fields, key: str, deploy: Fields, path: tuple[str, ...], file: str, value: Any) -> Any:
    """Compose's service-level shorthand (``mem_limit``, ``cpus``) or its ``deploy`` key: either, or
    both when they agree."""
    short, long = fields.get(key), deploy.get_in(*path)
    if short is None:
        return value
    if long is not None and long.value != short.value:
        raise ManifestError(file, short.key_line, short.path,
                            f"{key} disagrees with deploy.{'.'.join(path)} (line {long.line}); "
                            "set one of them")
    return short.value


def _constraints(fields: Fields, deploy: Fields) -> list[str]:
    """``placement.constraints``, and ``platform``'s: the nodes' architecture."""
    out: list[str] = list(deploy.value_in("placement", "constraints", default=[]))
    arch = fields.value_in("platform", default="")
    if arch:
        constraint = str(parse_constraint(f"node.platform.arch=={arch}"))
        if constraint not in out:
            out.append(constraint)
    return out


def _healthcheck(fields: Fields, file: str) -> HealthCheck | None:
    """Compose's ``healthcheck`` and orch's ``x-orch.healthcheck`` probes as
    one check; None when neither is given (the image's applies)."""
    hc: Fields = fields.value_in("healthcheck", default=Fields())
    probes: Fields = fields.value_in("x-orch", "healthcheck", default=Fields())
    if not hc and not probes:
        return None
    http, tcp = probes.value_in("http", default=None), probes.value_in("tcp", default=None)
    if http is not None and tcp is not None:
        where = probes["tcp"]
        raise ManifestError(file, where.key_line, where.path, "give one probe: http or tcp, not both")
    test = hc.value_in("test", default=[])
    if test and (http is not None or tcp is not None):
        where = hc["test"]
        raise ManifestError(file, where.key_line, where.path,
                            "give healthcheck.test or an x-orch.healthcheck probe, not both")
    return HealthCheck(
        test=tuple(test), interval=hc.value_in("interval", default=None),
        timeout=hc.value_in("timeout", default=None), retries=hc.value_in("retries", default=None) or None,
        start_period=hc.value_in("start_period", default=None),
        start_interval=hc.value_in("start_interval", default=None),
        http=HttpProbe(port=http.value_in("port"), path=http.value_in("path", default="/"),
                       status=http.value_in("status", default=0)) if http is not None else None,
        tcp=TcpProbe(port=tcp.value_in("port")) if tcp is not None else None,
        disable=hc.value_in("disable", default=False))


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


def _restart_policy(deploy: Fields, fields: Fields) -> RestartPolicy:
    """``deploy.restart_policy``; else Compose's ``restart``; else the model's default (any)."""
    if "restart_policy" not in deploy and "restart" in fields:
        return fields["restart"].value  # type: ignore[no-any-return]
    default = RestartPolicy()
    return RestartPolicy(
        condition=deploy.value_in("restart_policy", "condition", default=default.condition),
        delay=deploy.value_in("restart_policy", "delay", default=default.delay),
        max_attempts=deploy.value_in("restart_policy", "max_attempts", default=default.max_attempts),
        window=deploy.value_in("restart_policy", "window", default=default.window),
    )


def _update_config(deploy: Fields, key: str) -> UpdateConfig:
    """``update_config`` or ``rollback_config``; absent keys keep the model's (swarmkit's) defaults."""
    default = UpdateConfig()
    return UpdateConfig(
        parallelism=deploy.value_in(key, "parallelism", default=default.parallelism),
        delay=deploy.value_in(key, "delay", default=default.delay),
        failure_action=deploy.value_in(key, "failure_action", default=default.failure_action),
        monitor=deploy.value_in(key, "monitor", default=default.monitor),
        max_failure_ratio=deploy.value_in(key, "max_failure_ratio", default=default.max_failure_ratio),
        order=deploy.value_in(key, "order", default=default.order),
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
            _check_ingress(spec, port.mode, file, line, path)
            if key in first:
                raise ManifestError(
                    file, line, path,
                    f"published port {port.published}/{port.protocol} is already used by "
                    f"{first[key]} (line {first_line[key]}); each published port belongs to one service",
                )
            first[key], first_line[key] = path, line


def _check_ingress(spec: ServiceSpec, mode: str, file: str, line: int, path: str) -> None:
    """The routing mesh reaches a service's tasks over its networks, through its VIP's endpoints."""
    if mode != "ingress":
        return
    if not spec.networks:
        raise ManifestError(file, line, path,
                            "an ingress port needs the service on a network (the routing mesh reaches "
                            "its tasks over it): drop network_mode, or publish the port with mode: host")
    if spec.endpoint_mode == "dnsrr":
        raise ManifestError(file, line, path,
                            "an ingress port cannot be used with endpoint_mode: dnsrr (as in Swarm); "
                            "publish the port with mode: host, or use endpoint_mode: vip")
