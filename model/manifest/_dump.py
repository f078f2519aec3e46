"""``ServiceSpec`` objects back to manifest text (for ``orch`` to show a service's spec).

Invariant: ``parse_manifest(dump_manifest(specs)) == specs`` for every list
of valid specs (distinct DNS-label names, reservations within limits,
published ports used once, ingress ports only on services with networks);
keys holding the default value are left out. Named volumes, as networks,
have their final names: the text declares each as ``external``; every
mount is written in the long form (a tmpfs from ``tmpfs:`` too), and
``depends_on`` in the long form with its condition. The specs' networks are cluster
networks already (their names are final): the text declares each as
``external``, and a spec without networks gets ``network_mode: bridge``.
So are its secrets and configs (by their names, which a key can always
spell), granted in the long form with their absolute targets; the version a
grant pins (``SecretRef.secret_id``) is the control plane's, not a
manifest's: it reads back empty.
"""

from __future__ import annotations

import dataclasses
import re
from decimal import Decimal
from typing import Any

import yaml

from model.health import HealthCheck
from model.manifest._values import NETWORK_KEY_PATTERN
from model.objects import (
    DEFAULT_FILE_MODE,
    Mount,
    Placement,
    PortConfig,
    Resources,
    RestartPolicy,
    SecretRef,
    ServiceSpec,
    UpdateConfig,
)

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
    keys = _network_keys(specs)
    volumes = _volume_keys(specs)
    doc: dict[str, Any] = {"services": {spec.name: spec_to_dict(spec, keys, volumes) for spec in specs}}
    if keys:
        doc["networks"] = {key: {"external": True, **({} if key == name else {"name": name})}
                           for name, key in keys.items()}
    if volumes:
        shared = {m.source for spec in specs for m in spec.mounts if m.type == "volume" and m.shareable}
        doc["volumes"] = {key: {"external": True, **({} if key == name else {"name": name}),
                                **({"x-orch": {"shareable": True}} if name in shared else {})}
                          for name, key in volumes.items()}
    for kind in ("secrets", "configs"):
        names = dict.fromkeys(ref.source for spec in specs for ref in getattr(spec, kind))
        if names:
            doc[kind] = {name: {"external": True} for name in names}
    # allow_unicode=False: escapes such as \x85 (NEL, a YAML line break) stay escaped.
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=False, default_flow_style=False)


_KEY_RE = re.compile(NETWORK_KEY_PATTERN)


def _network_keys(specs: list[ServiceSpec]) -> dict[str, str]:
    """Each network name the specs use -> its key in the text: the name itself
    where a key can spell it (not ``default``, which means the stack's)."""
    keys: dict[str, str] = {}
    for spec in specs:
        for attachment in spec.networks:
            name = attachment.name
            if name not in keys:
                fits = _KEY_RE.fullmatch(name) and name != "default"
                keys[name] = name if fits else f"net{len(keys) + 1}"
    return keys


def _volume_keys(specs: list[ServiceSpec]) -> dict[str, str]:
    """Each named volume the specs mount -> its key in the text (external: its name is final)."""
    keys: dict[str, str] = {}
    for spec in specs:
        for mount in spec.mounts:
            if mount.type == "volume" and mount.source and mount.source not in keys:
                fits = _KEY_RE.fullmatch(mount.source)
                keys[mount.source] = mount.source if fits else f"vol{len(keys) + 1}"
    return keys


def spec_to_dict(spec: ServiceSpec, network_keys: dict[str, str] | None = None,
                 volume_keys: dict[str, str] | None = None) -> dict[str, Any]:
    """One service as plain data in manifest form, defaults omitted; ``network_keys``
    and ``volume_keys`` say how the text names each network and volume (default: by its name)."""
    out: dict[str, Any] = {"image": spec.image}
    if spec.command is not None:
        out["command"] = list(spec.command)
    if spec.entrypoint is not None:
        out["entrypoint"] = list(spec.entrypoint)
    if spec.env:
        out["environment"] = list(spec.env)
    if spec.ports:
        out["ports"] = [_port(p) for p in spec.ports]
    keys = network_keys or {}
    if spec.network_mode:
        out["network_mode"] = spec.network_mode
    elif not spec.networks:
        out["network_mode"] = "bridge"
    elif any(n.aliases for n in spec.networks):
        out["networks"] = {keys.get(n.name, n.name): {"aliases": list(n.aliases)} if n.aliases else None
                           for n in spec.networks}
    else:
        out["networks"] = [keys.get(n.name, n.name) for n in spec.networks]
    if spec.labels:
        out["labels"] = dict(spec.labels)
    for kind in ("secrets", "configs"):
        refs = getattr(spec, kind)
        if refs:
            out[kind] = [_grant(ref) for ref in refs]
    grace = getattr(spec, "stop_grace_period", None)
    if grace is not None and grace != _default("stop_grace_period"):
        out["stop_grace_period"] = grace
    if spec.storage_size:
        out["storage_opt"] = {"size": _memory(spec.storage_size)}
    out.update(_container(spec, volume_keys or {}))
    if spec.depends_on:
        out["depends_on"] = {d.service: {"condition": d.condition} for d in spec.depends_on}
    deploy = _deploy(spec)
    if deploy:
        out["deploy"] = deploy
    x_orch: dict[str, Any] = {"binpack": True} if spec.binpack else {}
    if spec.rebalance is not True:  # written as it is: a non-boolean then fails the parse, naming the key
        x_orch["rebalance"] = spec.rebalance
    if spec.healthcheck is not None:
        hc, probes = _healthcheck(spec.healthcheck)
        if hc:
            out["healthcheck"] = hc
        if probes:
            x_orch["healthcheck"] = probes
    if spec.devices:  # a cluster service's devices are opted into
        x_orch["devices"] = True
    if x_orch:
        out["x-orch"] = x_orch
    return out


# Container settings written under their own key, as they are, unless the
# default (each default is empty: "", false, [] or {}).
_AS_THEY_ARE = ("container_name", "hostname", "user", "working_dir", "stop_signal", "read_only", "init",
                "tty", "stdin_open", "privileged", "cap_add", "cap_drop", "devices", "sysctls", "dns",
                "extra_hosts")


def _container(spec: ServiceSpec, volume_keys: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in _AS_THEY_ARE:
        value = getattr(spec, name)
        if value:
            out[name] = value.copy() if isinstance(value, dict | list) else value
    if spec.ulimits:
        out["ulimits"] = {u.name: u.soft if u.soft == u.hard else {"soft": u.soft, "hard": u.hard}
                          for u in spec.ulimits}
    if spec.shm_size:
        out["shm_size"] = _memory(spec.shm_size)
    if spec.mounts:
        out["volumes"] = [_mount(m, volume_keys) for m in spec.mounts]
    options: dict[str, Any] = {}
    if spec.log_max_size:
        options["max-size"] = _memory(spec.log_max_size)
    if spec.log_max_files:
        options["max-file"] = spec.log_max_files
    if options:
        out["logging"] = {"driver": "json-file", "options": options}
    return out


def _mount(m: Mount, volume_keys: dict[str, str]) -> dict[str, Any]:
    """The long form, which spells every mount (a tmpfs from ``tmpfs:`` too)."""
    out: dict[str, Any] = {"type": m.type, "target": m.target}
    if m.source:
        out["source"] = volume_keys.get(m.source, m.source) if m.type == "volume" else m.source
    if m.read_only:
        out["read_only"] = True
    if m.volume_nocopy:
        out["volume"] = {"nocopy": True}
    tmpfs: dict[str, Any] = {}
    if m.tmpfs_size:
        tmpfs["size"] = _memory(m.tmpfs_size)
    if m.tmpfs_mode:
        tmpfs["mode"] = format(m.tmpfs_mode, "o")
    if tmpfs:
        out["tmpfs"] = tmpfs
    return out


def _healthcheck(hc: HealthCheck) -> tuple[dict[str, Any], dict[str, Any]]:
    """(healthcheck, x-orch.healthcheck) of a check, unset fields omitted."""
    out: dict[str, Any] = {}
    if hc.test:
        out["test"] = list(hc.test)
    for name in ("interval", "timeout", "retries", "start_period", "start_interval"):
        if getattr(hc, name) is not None:
            out[name] = getattr(hc, name)
    if hc.disable:
        out["disable"] = True
    probes: dict[str, Any] = {}
    if hc.http is not None:
        probes["http"] = {"port": hc.http.port, "path": hc.http.path,
                          **({"status": hc.http.status} if hc.http.status else {})}
    if hc.tcp is not None:
        probes["tcp"] = {"port": hc.tcp.port}
    return out, probes


def _grant(ref: SecretRef) -> dict[str, Any]:
    out: dict[str, Any] = {"source": ref.source, "target": ref.target}
    if ref.uid:
        out["uid"] = ref.uid
    if ref.gid:
        out["gid"] = ref.gid
    if ref.mode != DEFAULT_FILE_MODE:
        out["mode"] = ref.mode
    return out


def _port(p: PortConfig) -> str | dict[str, Any]:
    if p.mode == "ingress":
        return f"{p.published}:{p.target}" + ("/udp" if p.protocol == "udp" else "")
    return {"published": p.published, "target": p.target, "protocol": p.protocol, "mode": p.mode}


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
    for key in ("update_config", "rollback_config"):
        changed = _changed(getattr(spec, key), UpdateConfig())
        if changed:
            out[key] = changed
    if spec.endpoint_mode != "vip":
        out["endpoint_mode"] = spec.endpoint_mode
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
