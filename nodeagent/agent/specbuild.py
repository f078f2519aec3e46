"""Turn a user's container request plus its image into a ContainerSpec.

Docker's merge rules: the request's entrypoint/command replace the image's;
its env is added to the image's (same key: the request wins); workdir and user
fall back to the image's. Everything the runtime needs is decided here, so the
runtime never looks anything up.

This is the agent's edge: every engine request passes here, whichever client
sent it, so every value is checked here against ``model.units``' limits (the
CLI and the manifest check the same limits earlier, for better messages): a
name, hostname, numeric uid, stop timeout, pids limit, memory or CPU count
out of range, or a NUL in an argument or variable, is ``InvalidArgument``.
A pids limit of 0 means the node's default (``default_pids_limit``; 0: none),
-1 means unlimited.

Overlay networks (``ContainerConfig.networks``, a cluster task's, in the
order of the task's networks) become the spec's attachments: ``eth1``,
``eth2``, ... each with its host veth's name, at most :data:`MAX_NETWORKS`,
each address ``IP/prefix`` an IPv4 host address of its subnet, no network or
address twice, no two subnets overlapping. The container's resolver is the
node's DNS server (``bundle.resolv_conf``).

The health check (``ContainerConfig.healthcheck``) is merged with the
image's HEALTHCHECK (``model.health.merged``; a duration of 0 is not given,
as Docker's) and goes in the record beside the spec, for the supervisor's
runner (``supervisor.health``); None when there is nothing to run.
"""

from __future__ import annotations

import dataclasses
import os
import re
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.errors import InvalidArgument
from model import units
from model.health import HealthCheck, from_image_config, merged
from nodeagent.runtime.spec import (
    ContainerSpec,
    NetworkAttachment,
    NetworkConfig,
    PortMapping,
    ProcessSpec,
    Resources,
    RootfsSpec,
)
from proto import agent_pb2 as pb

if TYPE_CHECKING:
    from nodeagent.images import Image

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$")
_ADJECTIVES = ("brave", "calm", "eager", "fancy", "gentle", "happy", "jolly", "keen",
               "lively", "merry", "nimble", "proud", "quick", "sunny", "tidy", "witty")
# Overlay networks a container joins at most: one interface each (eth1..eth8),
# whose host ends are named with a single digit (``veth.overlay_veth_name``).
MAX_NETWORKS = 8
# A DNS name: dot-separated labels of letters, digits, '-' and '_'.
ALIAS_RE = re.compile(r"^(?=.{1,253}$)(?!-)[A-Za-z0-9_-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9_-]{1,63}(?<!-))*$")
_NOUNS = ("otter", "falcon", "badger", "heron", "lynx", "marten", "newt", "orca",
          "puffin", "quokka", "raven", "stoat", "tapir", "vole", "wren", "yak")


def random_name() -> str:
    raw = os.urandom(6)  # os.urandom, not secrets: the agent spares random+hashlib
    adjective = _ADJECTIVES[int.from_bytes(raw[:2]) % len(_ADJECTIVES)]
    noun = _NOUNS[int.from_bytes(raw[2:4]) % len(_NOUNS)]
    return f"{adjective}_{noun}_{raw[4:].hex()}"


def parse_signal(value: str | int, field: str = "stop signal") -> int:
    if isinstance(value, int) or str(value).isdigit():
        num = int(value)
        if 0 < num < 65:
            return num
    else:
        name = str(value).upper()
        name = name if name.startswith("SIG") else "SIG" + name
        sig = getattr(signal.Signals, name, None) if name in signal.Signals.__members__ else None
        if sig is not None:
            return int(sig)
    raise InvalidArgument(f"invalid {field} {value!r}: expected a name like SIGTERM or a number")


def merge_env(image_env: list[str], extra: list[str]) -> list[str]:
    merged: dict[str, str] = {}
    for item in [*image_env, *extra]:
        key, sep, value = item.partition("=")
        if not key or not sep:
            raise InvalidArgument(f"invalid environment variable {item!r}: expected KEY=value")
        merged[key] = value
    if "PATH" not in merged:
        merged["PATH"] = DEFAULT_PATH.split("=", 1)[1]
    return [f"{k}={v}" for k, v in merged.items()]


def host_nameservers(path: str = "/etc/resolv.conf") -> list[str]:
    """The host's resolvers, minus loopback ones (unreachable from a
    container). (Containers themselves ask the node's DNS server.)"""
    out = []
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if (len(parts) >= 2 and parts[0] == "nameserver"
                        and not parts[1].startswith("127.") and parts[1] != "::1"):
                    out.append(parts[1])
    except OSError:
        pass
    return out


def check_user(user: str) -> str:
    """A user spec as the runtime takes it: a numeric uid or gid beyond 32 bits
    would be truncated, and 4294967295 is (uid_t)-1, "unchanged" (root)."""
    try:
        units.check_user(user)
    except units.QuantityError as err:
        raise InvalidArgument(str(err))
    return user


def _checked(check: Any, *values: Any) -> None:
    try:
        check(*values)
    except units.QuantityError as err:
        raise InvalidArgument(str(err))


def _no_nul(values: list[str], what: str) -> list[str]:
    if any("\0" in value for value in values):
        raise InvalidArgument(f"invalid {what}: a NUL character cannot be passed to a process")
    return values


def _resources(cfg: pb.ContainerConfig, default_pids_limit: int) -> Resources:
    """The cgroup limits: 0 is none (pids: the node's default), each value within its limit."""
    if cfg.memory_bytes < 0:
        raise InvalidArgument(f"invalid memory limit {cfg.memory_bytes}: must be positive (or 0 for none)")
    _checked(units.check_memory, cfg.memory_bytes)
    if cfg.cpus:
        _checked(units.check_cpus, cfg.cpus)
    _checked(units.check_pids_limit, cfg.pids_limit)
    pids = cfg.pids_limit or default_pids_limit
    return Resources(memory_bytes=cfg.memory_bytes or None, cpus=cfg.cpus or None,
                     pids_limit=pids if pids > 0 else None)


def _attachments(cfg: pb.ContainerConfig, cid: str, mode: str) -> list[NetworkAttachment]:
    """The overlay networks' interfaces, checked (see the module docstring)."""
    if not cfg.networks:
        return []
    import ipaddress  # only for containers with networks

    if mode == "host":
        raise InvalidArgument("overlay networks need the container's own network namespace: "
                              "not with network mode 'host'")
    if len(cfg.networks) > MAX_NETWORKS:
        raise InvalidArgument(f"too many networks: {len(cfg.networks)}; a container joins at most "
                              f"{MAX_NETWORKS}")
    out: list[NetworkAttachment] = []
    seen: dict[tuple[str, str], str] = {}  # (field, value) -> the network that has it
    subnets: list[tuple[ipaddress.IPv4Network, str]] = []
    for k, net in enumerate(cfg.networks, 1):
        where = f"network {k} ({net.network_name or net.network_id or 'unnamed'})"
        if not net.network_id or "\0" in net.network_id + net.network_name:
            raise InvalidArgument(f"invalid {where}: it needs a network_id, without NUL characters")
        iface = _overlay_address(net.address, where)
        for key in (("network_id", net.network_id), ("network_name", net.network_name)):
            if key[1] and key in seen:
                raise InvalidArgument(f"invalid {where}: {key[0]} {key[1]!r} is {seen[key]}'s already")
            seen[key] = where
        for other, owner in subnets:
            if iface.network.overlaps(other):
                raise InvalidArgument(f"invalid {where}: subnet {iface.network} overlaps {owner}'s {other}")
        subnets.append((iface.network, where))
        aliases = list(dict.fromkeys(net.aliases))
        for alias in aliases:
            if not ALIAS_RE.fullmatch(alias):
                raise InvalidArgument(f"invalid alias {alias!r} on {where}: use a DNS name "
                                      "(letters, digits, '-', '_', dot-separated)")
        out.append(NetworkAttachment(
            network_id=net.network_id, network_name=net.network_name, address=str(iface.ip),
            prefixlen=iface.network.prefixlen, ifname=f"eth{k}", host_veth=overlay_veth_name(cid, k),
            aliases=aliases))
    return out


def overlay_veth_name(container_id: str, index: int) -> str:
    """The host end of the container's ``eth<index>``: ``vn`` + the id's
    first 10 characters + the index (1..9): within IFNAMSIZ, and apart from
    ``eth0``'s (``vo`` + 10, ``nodeagent.network.names``)."""
    return f"vn{container_id[:10]}{index}"


def _overlay_address(text: str, where: str) -> Any:
    """``text`` as an IPv4Interface: a host address of its subnet, prefix 1..30."""
    import ipaddress

    try:
        iface = ipaddress.IPv4Interface(text) if "/" in text else None
    except ValueError:
        iface = None
    if iface is None:
        raise InvalidArgument(f"invalid address {text!r} on {where}: expected IPv4 address/prefix, "
                              "as 10.96.5.3/24")
    net = iface.network
    if not 1 <= net.prefixlen <= 30:
        raise InvalidArgument(f"invalid address {text!r} on {where}: the prefix must be 1 to 30")
    ip = iface.ip
    if ip in (net.network_address, net.broadcast_address) or ip.is_loopback or ip.is_multicast \
            or ip.is_link_local or ip.is_unspecified or ip.is_reserved:
        raise InvalidArgument(f"invalid address {text!r} on {where}: not a host address of {net}")
    return iface


def _stop_timeout(cfg: pb.ContainerConfig) -> float:
    stop_timeout = cfg.stop_timeout if cfg.HasField("stop_timeout") else 10.0
    _checked(units.check_seconds, stop_timeout, units.MAX_STOP_GRACE_PERIOD, "stop timeout")
    return stop_timeout


def build(cfg: pb.ContainerConfig, image: Image, lower_dirs: list[str],
          state_dir: str, default_pids_limit: int = 0,
          user_bridge: str = "") -> tuple[ContainerSpec, dict[str, Any]]:
    """The spec, and the record fields the supervisor keeps beside it.
    ``user_bridge``: the bridge of the user-defined network ``cfg.network``
    names (the engine looked it up); "" for the built-in modes."""
    cid = os.urandom(32).hex()
    name = cfg.name or random_name()
    if not NAME_RE.fullmatch(name):
        raise InvalidArgument(f"invalid container name {name!r}: use letters, digits, _ . -")
    if cfg.hostname:
        _checked(units.check_hostname, cfg.hostname)
    entrypoint = list(cfg.entrypoint.values) if cfg.HasField("entrypoint") else list(
        image.config.entrypoint)
    command = list(cfg.command.values) if cfg.HasField("command") else list(image.config.cmd)
    if cfg.HasField("entrypoint") and not cfg.HasField("command"):
        command = []  # Docker: a new entrypoint drops the image's Cmd
    args = _no_nul(entrypoint + command, "command")
    if not args:
        raise InvalidArgument(
            f"no command specified: image {image.repo_tags[0] if image.repo_tags else image.id} "
            "has no Cmd or Entrypoint; give one after the image name")
    network = "bridge" if user_bridge else cfg.network or "bridge"
    if network not in ("bridge", "none", "host"):
        raise InvalidArgument(f"network {network!r} not found: expected bridge, none, host or a "
                              "network of `orch network ls`")
    ports = []
    for p in cfg.ports:
        protocol = p.protocol or "tcp"
        if protocol not in ("tcp", "udp"):
            raise InvalidArgument(f"invalid protocol {protocol!r} for port {p.host_port}: tcp or udp")
        if not (0 < p.host_port < 65536 and 0 < p.container_port < 65536):
            raise InvalidArgument(f"invalid port mapping {p.host_port}:{p.container_port}: ports are 1-65535")
        ports.append(PortMapping(p.host_port, p.container_port, protocol, p.host_ip))  # type: ignore[arg-type]
    if ports and network != "bridge":
        raise InvalidArgument(f"published ports need the bridge network, not {network!r}")
    stop_signal = parse_signal(cfg.stop_signal or image.config.stop_signal or "SIGTERM")
    stop_timeout = _stop_timeout(cfg)
    (cwd,) = _no_nul([cfg.workdir if cfg.HasField("workdir") else (image.config.working_dir or "/")],
                     "working directory")
    attachments = _attachments(cfg, cid, network)
    spec = ContainerSpec(
        id=cid,
        name=name,
        hostname=cfg.hostname or cid[:12],
        bundle_dir=os.path.join(state_dir, "containers", cid),
        rootfs=RootfsSpec(lower_dirs=lower_dirs, readonly=cfg.read_only,
                          volatile=cfg.auto_remove or cfg.volatile_rootfs,
                          size_bytes=storage_size(cfg, state_dir)),
        process=ProcessSpec(
            args=args,
            env=_no_nul(merge_env(list(image.config.env), list(cfg.env)), "environment"),
            cwd=cwd,
            user=check_user(cfg.user if cfg.HasField("user") else image.config.user),
        ),
        resources=_resources(cfg, default_pids_limit),
        network=NetworkConfig(mode=network, bridge=user_bridge, ports=ports,  # type: ignore[arg-type]
                              attachments=attachments),
        cgroup_name=f"orch/{cid}",
        stop_signal=stop_signal,
        stop_timeout=stop_timeout,
        labels=dict(cfg.labels),
    )
    Path(spec.bundle_dir).parent.mkdir(parents=True, exist_ok=True)
    check = healthcheck(cfg, image)
    extra = {
        "image": image.repo_tags[0] if image.repo_tags else image.id,
        "image_id": image.id,
        "restart_policy": cfg.restart_policy or "no",
        "auto_remove": cfg.auto_remove,
        "healthcheck": check.to_dict() if check is not None else None,
    }
    return spec, extra


def healthcheck(cfg: pb.ContainerConfig, image: Image) -> HealthCheck | None:
    """The check the container runs: the request's, each field it leaves
    unset taken from the image's HEALTHCHECK (Docker's merge); None when
    there is none or it is disabled. Values out of range are InvalidArgument."""
    from model.wire import healthcheck_from_pb

    own = healthcheck_from_pb(cfg.healthcheck) if cfg.HasField("healthcheck") else None
    if own is not None:
        _check_healthcheck(own)
        # Docker's rule: a duration of 0 is not given (the image's, else the default).
        unset: dict[str, Any] = {name: None for name in _DURATIONS if getattr(own, name) == 0}
        own = dataclasses.replace(own, **unset)
    try:
        image_check = from_image_config({"Healthcheck": image.config.healthcheck})
    except (TypeError, ValueError, AttributeError):
        image_check = None  # an image's malformed HEALTHCHECK is no check, not a failed run
    return merged(own, image_check)


# A health check's durations, in seconds; Docker's least non-zero one (1 ms).
_DURATIONS = ("interval", "timeout", "start_period", "start_interval")
MIN_HEALTH_DURATION = 0.001


def _check_healthcheck(hc: HealthCheck) -> None:
    if hc.test and hc.test[0] not in ("CMD", "CMD-SHELL", "NONE"):
        raise InvalidArgument(f"invalid health check test {list(hc.test)!r}: it starts with CMD, "
                              "CMD-SHELL or NONE")
    if hc.test[:1] in (("CMD",), ("CMD-SHELL",)) and not "".join(hc.test[1:]).strip():
        raise InvalidArgument(f"invalid health check test {list(hc.test)!r}: {hc.test[0]} needs a command")
    _no_nul(list(hc.test), "health check command")
    for name in _DURATIONS:
        value = getattr(hc, name)
        if value is not None:
            _checked(units.check_seconds, value, units.MAX_STOP_GRACE_PERIOD, f"health check {name}")
            if 0 < value < MIN_HEALTH_DURATION and name != "start_period":
                raise InvalidArgument(f"invalid health check {name} {value:g}s: at least 1ms (or 0 "
                                      "for the image's, else the default)")
    if hc.retries is not None and hc.retries < 0:
        raise InvalidArgument(f"invalid health check retries {hc.retries}: it must be 0 or more")
    for probe, kind in ((hc.http, "http"), (hc.tcp, "tcp")):
        if probe is not None and not 0 < probe.port < 65536:
            raise InvalidArgument(f"invalid health check {kind} port {probe.port}: ports are 1-65535")
    path = (hc.http.path or "/") if hc.http is not None else "/"
    if not path.startswith("/") or any(c in path for c in " \r\n\0"):
        raise InvalidArgument(f"invalid health check http path {path!r}: a path from '/', "
                              "without spaces or control characters")


def storage_size(cfg: pb.ContainerConfig, state_dir: str) -> int:
    """The writable layer's size limit (0: none), at least ``loopfs.MIN_SIZE``,
    refused (never dropped) where this node can enforce it neither with a
    project quota nor with a loop filesystem. A read-only rootfs has no
    writable layer: any limit holds there trivially."""
    size = int(cfg.storage_size_bytes)
    if size < 0:
        raise InvalidArgument(f"invalid storage size {size}: must be positive (or 0 for none)")
    if not size:
        return 0
    from nodeagent.runtime import loopfs

    if size < loopfs.MIN_SIZE:
        raise InvalidArgument(f"invalid storage size {size}: the smallest is {loopfs.MIN_SIZE} "
                              f"bytes (1 MiB), as a writable layer needs room for its own metadata")
    if not cfg.read_only:
        support = loopfs.detect(os.path.join(state_dir, "containers"))
        if not support.enforced:
            raise InvalidArgument(support.refusal(size))
    return size
