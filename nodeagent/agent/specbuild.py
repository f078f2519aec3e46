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

Docker's host options (:func:`host_options`): ``--cap-add``/``--cap-drop``
over Docker's default set (``capabilities.tweak``), ``--ulimit`` over the
default rlimits, ``--dns`` and ``--add-host`` addresses, ``--device`` host
nodes (looked up here, so the runtime looks nothing up), namespaced
``--sysctl`` names only, ``--shm-size`` and ``--init``. ``--privileged``
is every capability, no seccomp, no_new_privileges off, no masked or
read-only paths and every host device.

The health check (``ContainerConfig.healthcheck``) is merged with the
image's HEALTHCHECK (``model.health.merged``; a duration of 0 is not given,
as Docker's) and goes in the record beside the spec, for the supervisor's
runner (``supervisor.health``); None when there is nothing to run.

Mounts (``ContainerConfig.mounts``: ``-v``, ``--mount``, ``--tmpfs``) become
the spec's :class:`Mount` entries (:func:`mounts`, called by the engine,
which makes and fills the volumes): each target an absolute path the node
does not reserve, once; an image's VOLUME path no mount covers gets an
anonymous volume; a bind's source must exist and, unless the mount is
forced, be neither the node's root, /proc, /sys, /dev (or under them) nor
the agent's state dir (or inside or above it). A mount point inside
another mount is refused.
"""

from __future__ import annotations

import dataclasses
import os
import re
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.errors import InvalidArgument
from model import settings, units
from model.health import HealthCheck, from_image_config, merged
from nodeagent.runtime.bundle import HOST_GATEWAY
from nodeagent.runtime.spec import (
    DEFAULT_CAPABILITIES,
    DEFAULT_RLIMITS,
    TMPFS_SOURCE,
    ContainerSpec,
    Device,
    Mount,
    NetworkAttachment,
    NetworkConfig,
    PortMapping,
    ProcessSpec,
    Resources,
    Rlimit,
    RootfsSpec,
)
from proto import agent_pb2 as pb

if TYPE_CHECKING:
    from nodeagent.images import Image

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
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
    if not settings.container_name_ok(name):
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
    host = host_options(cfg, network)
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
            capabilities=host.capabilities, rlimits=host.rlimits,
            no_new_privileges=not host.privileged, seccomp=not host.privileged,
        ),
        resources=_resources(cfg, default_pids_limit),
        network=NetworkConfig(mode=network, bridge=user_bridge, ports=ports,  # type: ignore[arg-type]
                              attachments=attachments, dns=host.dns, extra_hosts=host.extra_hosts),
        cgroup_name=f"orch/{cid}",
        stop_signal=stop_signal,
        stop_timeout=stop_timeout,
        labels=dict(cfg.labels),
        devices=host.devices, sysctls=host.sysctls, shm_size=host.shm_size, init=host.init,
        privileged=host.privileged,
    )
    if host.privileged:
        spec.masked_paths = spec.readonly_paths = ()
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


# ---- Docker's everyday host options (--cap-*, --ulimit, --dns, --add-host,
# --device, --privileged, --sysctl, --shm-size, --init) ---------------------

# Docker's --ulimit names (``model.settings``), and their rlimits.
ULIMITS: dict[str, str] = {name: "RLIMIT_" + name.upper() for name in settings.ULIMIT_NAMES}
# Device nodes every container has (orch-init makes them): never copied from the host.
BUILTIN_DEVICES = frozenset({"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom",
                             "/dev/tty", "/dev/ptmx", "/dev/console"})
# Host /dev entries a privileged container does not get (Docker's HostDevices).
_SKIPPED_DEV_DIRS = frozenset({"pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"})


@dataclasses.dataclass
class HostOptions:
    """What the request's host options make of the spec (see :func:`host_options`)."""

    capabilities: tuple[str, ...]
    rlimits: tuple[Rlimit, ...]
    dns: list[str]
    extra_hosts: list[tuple[str, str]]
    devices: list[Device]
    sysctls: dict[str, str]
    shm_size: int
    privileged: bool
    init: bool


def host_options(cfg: pb.ContainerConfig, network: str, dev_root: str = "/dev") -> HostOptions:
    """The request's host options, each value checked (InvalidArgument naming
    the flag and the value). ``--privileged``: every capability, every host
    device (those under ``dev_root``); the caller
    also turns seccomp, no_new_privileges, masked and read-only paths off."""
    from nodeagent.runtime import capabilities

    privileged = cfg.privileged
    if privileged:
        caps = capabilities.all_capabilities()
        for name in [*cfg.cap_add, *cfg.cap_drop]:
            capabilities.normalize(name)  # still checked: a typo is an error everywhere
    else:
        caps = capabilities.tweak(DEFAULT_CAPABILITIES, list(cfg.cap_add), list(cfg.cap_drop))
    devices = _host_devices(dev_root) if privileged else []
    given = [parse_device(text) for text in cfg.devices]
    paths = {d.path for d in given}
    devices = [d for d in devices if d.path not in paths] + given
    if cfg.shm_size < 0:
        raise InvalidArgument(f"invalid --shm-size {cfg.shm_size}: must be positive (or 0 for 64 MiB)")
    if cfg.shm_size:
        _checked(units.check_memory, cfg.shm_size)
    return HostOptions(
        capabilities=caps, rlimits=rlimits(cfg.ulimits), dns=[_ip(ip, "--dns") for ip in cfg.dns],
        extra_hosts=[parse_extra_host(text, network) for text in cfg.extra_hosts], devices=devices,
        sysctls=sysctls(dict(cfg.sysctls), network), shm_size=int(cfg.shm_size),
        privileged=privileged, init=cfg.init)


def rlimits(ulimits: Any) -> tuple[Rlimit, ...]:
    """``--ulimit`` values over the defaults (the last one of a name wins);
    -1 is unlimited; soft at most hard."""
    out = {r.name: r for r in DEFAULT_RLIMITS}
    for u in ulimits:
        shown = f"{u.name}={u.soft}:{u.hard}"
        if u.name not in ULIMITS:
            raise InvalidArgument(f"invalid --ulimit {shown!r}: unknown name {u.name!r}; expected one of "
                                  + ", ".join(ULIMITS))
        if u.soft < -1 or u.hard < -1:
            raise InvalidArgument(f"invalid --ulimit {shown!r}: a limit is 0 or more, or -1 (unlimited)")
        if u.hard != -1 and (u.soft == -1 or u.soft > u.hard):
            raise InvalidArgument(f"invalid --ulimit {shown!r}: the soft limit must not exceed the hard one")
        if u.name == "nofile":
            nr_open = _nr_open()
            if u.hard == -1 or u.hard > nr_open:
                raise InvalidArgument(f"invalid --ulimit {shown!r}: at most {nr_open} open files "
                                      "on this node (fs.nr_open)")
        out[ULIMITS[u.name]] = Rlimit(ULIMITS[u.name], u.soft, u.hard)
    return tuple(out.values())


def _nr_open() -> int:
    try:
        with open("/proc/sys/fs/nr_open") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 1048576


def _ip(text: str, flag: str) -> str:
    import ipaddress

    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise InvalidArgument(f"invalid {flag} {text!r}: expected an IPv4 or IPv6 address") from None


def parse_extra_host(text: str, network: str = "bridge") -> tuple[str, str]:
    """``name:ip`` (or ``name=ip``; an IPv6 address may hold colons) -> (name, ip);
    ip ``host-gateway`` (bridge networks only) is the node's address on the bridge."""
    name, sep, ip = text.partition("=") if "=" in text else text.partition(":")
    if not sep or not ALIAS_RE.fullmatch(name):
        raise InvalidArgument(f"invalid --add-host {text!r}: expected NAME:IP, as db:10.0.0.5")
    if ip == HOST_GATEWAY:
        if network != "bridge":
            raise InvalidArgument(f"invalid --add-host {text!r}: host-gateway needs a bridge network, "
                                  f"not {network!r}")
        return name, ip
    return name, _ip(ip.strip("[]"), f"--add-host {text!r}: address")


def parse_device(text: str) -> Device:
    """``HOST[:CONTAINER[:PERMISSIONS]]`` (Docker's ``--device``): a host
    character or block device, made at CONTAINER (under /dev; HOST's path
    by default) with access PERMISSIONS, letters of ``rwm`` (all by default)."""
    import stat

    parts = text.split(":")
    if len(parts) == 2 and parts[1] and set(parts[1]) <= set("rwm"):
        parts = [parts[0], "", parts[1]]  # HOST:PERMISSIONS
    if not 1 <= len(parts) <= 3 or not parts[0]:
        raise InvalidArgument(f"invalid --device {text!r}: expected HOST[:CONTAINER[:rwm]]")
    host = parts[0]
    target = (parts[1] if len(parts) > 1 else "") or host
    perms = parts[2] if len(parts) > 2 else "rwm"
    if not perms or not set(perms) <= set("rwm"):
        raise InvalidArgument(f"invalid --device {text!r}: permissions are letters of rwm")
    norm = os.path.normpath(target)
    if not norm.startswith("/dev/") or norm != target or any(c in target for c in "\t\n\0"):
        raise InvalidArgument(f"invalid --device {text!r}: the container path must be a "
                              "normalised path under /dev/")
    try:
        st = os.stat(host)
    except OSError as err:
        raise InvalidArgument(f"invalid --device {text!r}: {host}: {err.strerror}") from None
    if not (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)):
        raise InvalidArgument(f"invalid --device {text!r}: {host} is not a character or block device")
    return Device(path=norm, kind="c" if stat.S_ISCHR(st.st_mode) else "b",
                  major=os.major(st.st_rdev), minor=os.minor(st.st_rdev),
                  permissions="".join(c for c in "rwm" if c in perms),
                  file_mode=st.st_mode & 0o7777, uid=st.st_uid, gid=st.st_gid)


def _host_devices(root: str) -> list[Device]:
    """Every character and block device under ``root`` (a privileged
    container's /dev), but those every container has and the directories
    the container mounts its own of."""
    import stat

    out: list[Device] = []
    for dirpath, dirnames, filenames in os.walk(root):
        if dirpath == root:
            dirnames[:] = [d for d in dirnames if d not in _SKIPPED_DEV_DIRS]
        for name in filenames:
            path = os.path.join(dirpath, name)
            target = "/dev" + path[len(root):]
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if target in BUILTIN_DEVICES or any(c in target for c in "\t\n\0"):
                continue
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                out.append(Device(path=target, kind="c" if stat.S_ISCHR(st.st_mode) else "b",
                                  major=os.major(st.st_rdev), minor=os.minor(st.st_rdev),
                                  file_mode=st.st_mode & 0o7777, uid=st.st_uid, gid=st.st_gid))
    return out


def sysctls(given: dict[str, str], network: str) -> dict[str, str]:
    """Namespaced sysctls only (the node's own would change the node); net.*
    not with host networking (the node's namespace)."""
    for key, value in given.items():
        shown = f"{key}={value}"
        if not settings.sysctl_name_ok(key):
            raise InvalidArgument(f"invalid --sysctl {shown!r}: expected a name such as "
                                  "net.ipv4.ip_forward")
        if not settings.namespaced_sysctl(key):
            raise InvalidArgument(f"invalid --sysctl {shown!r}: not a namespaced sysctl; a container "
                                  "may set net.*, kernel.shm*, kernel.msg*, kernel.sem and fs.mqueue.*")
        if key.startswith("net.") and network == "host":
            raise InvalidArgument(f"invalid --sysctl {shown!r}: net.* sysctls are the node's with "
                                  "--network host")
        if not value or any(c in value for c in "\n\0") or len(value) > 4096:
            raise InvalidArgument(f"invalid --sysctl {shown!r}: expected a one-line value")
    return given


# ---- mounts (-v, --mount, --tmpfs, an image's VOLUME) ----------------------

# Host paths a container never gets bound without MountConfig.force: the
# node's root and its kernel interfaces (and everything below the latter).
DANGEROUS_BINDS = ("/", "/proc", "/sys", "/dev")
_KERNEL_TREES = ("/proc", "/sys", "/dev")
DEFAULT_TMPFS_MODE = 0o1777


@dataclasses.dataclass(frozen=True)
class VolumeUse:
    """A volume a container mounts: the engine makes it on first use and
    fills it from the image (``nodeagent.volumes``) unless ``nocopy``."""

    name: str
    target: str
    anonymous: bool
    nocopy: bool


def mounts(cfg: pb.ContainerConfig, image_volumes: list[str],
           state_dir: str) -> tuple[list[Mount], list[VolumeUse]]:
    """The container's mounts: the request's, in order, then an anonymous
    volume for each of the image's VOLUME paths no mount covers.
    InvalidArgument names the mount (``mount N``, counted
    from 1) and what is wrong with it."""
    from nodeagent.volumes import volume_dir

    out: list[Mount] = []
    uses: list[VolumeUse] = []
    for k, m in enumerate(cfg.mounts, 1):
        mount = _mount(m, f"mount {k} ({m.type or 'volume'} at {m.target or '?'})", state_dir)
        if mount.type == "volume":
            uses.append(VolumeUse(mount.volume, mount.target, not m.source, m.volume_nocopy))
        out.append(mount)
    taken = {m.target for m in out}
    if len(taken) < len(out):
        dup = next(t for t in taken if sum(m.target == t for m in out) > 1)
        raise InvalidArgument(f"duplicate mount point {dup}: one mount per target")
    for path in image_volumes:
        target = _target(path, f"the image's VOLUME {path!r}")
        if target not in taken:
            taken.add(target)
            name = os.urandom(32).hex()
            uses.append(VolumeUse(name, target, True, False))
            out.append(Mount(source=volume_dir(state_dir, name), target=target, readonly=False,
                             type="volume", volume=name, options="rbind"))
    # A mount inside another (a config file bound into a volume's directory)
    # has its mountpoint made in that mount's files, as Docker does, once that
    # one is mounted: the init mounts them in this order, parents first.
    out.sort(key=lambda m: m.target.count("/"))
    return out, uses


def _target(path: str, where: str) -> str:
    from model.secrets import resolve_target

    target = os.path.normpath(path) if path.startswith("/") else path
    try:
        if not target.startswith("/"):
            raise ValueError(f"invalid target {path!r}: an absolute path in the container")
        return resolve_target("mount", target)
    except ValueError as err:
        raise InvalidArgument(f"invalid {where}: {err}") from None


def _mount(m: pb.MountConfig, where: str, state_dir: str) -> Mount:
    kind = m.type or "volume"
    if kind not in ("volume", "bind", "tmpfs"):
        raise InvalidArgument(f"invalid {where}: type {m.type!r}; expected volume, bind or tmpfs")
    target = _target(m.target, where) if m.target else ""
    if not target:
        raise InvalidArgument(f"invalid {where}: it needs a target, an absolute path in the container")
    if kind != "tmpfs" and (m.tmpfs_size or m.tmpfs_mode):
        raise InvalidArgument(f"invalid {where}: tmpfs-size and tmpfs-mode are for type tmpfs")
    if kind != "volume" and m.volume_nocopy:
        raise InvalidArgument(f"invalid {where}: volume-nocopy is for type volume")
    if kind != "bind" and m.force:
        raise InvalidArgument(f"invalid {where}: force is for type bind")
    if kind == "tmpfs":
        if m.source:
            raise InvalidArgument(f"invalid {where}: a tmpfs has no source ({m.source!r})")
        if m.tmpfs_size < 0 or m.tmpfs_mode > 0o7777:
            raise InvalidArgument(f"invalid {where}: tmpfs-size must be positive and tmpfs-mode "
                                  "at most 07777")
        options = f"mode={m.tmpfs_mode or DEFAULT_TMPFS_MODE:o}"
        if m.tmpfs_size:
            options += f",size={m.tmpfs_size}"
        return Mount(source=TMPFS_SOURCE, target=target, readonly=m.readonly, type="tmpfs",
                     options=options)
    if kind == "volume":
        from nodeagent.volumes import check_name, volume_dir

        try:
            name = check_name(m.source) if m.source else os.urandom(32).hex()
        except InvalidArgument as err:
            raise InvalidArgument(f"invalid {where}: {err}") from None
        return Mount(source=volume_dir(state_dir, name), target=target, readonly=m.readonly,
                     type="volume", volume=name, options="rbind")
    return Mount(source=bind_source(m.source, m.force, where, state_dir), target=target,
                 readonly=m.readonly, type="bind", options="rbind")


def bind_source(path: str, force: bool, where: str, state_dir: str) -> str:
    """A bind's host path, resolved (symlinks followed): it must exist (as
    Docker's --mount: ``-v`` makes a missing directory first, in the CLI),
    and without ``force`` be none of :data:`DANGEROUS_BINDS`, nothing under
    /proc, /sys or /dev, and neither inside nor above the agent's state dir."""
    if not path.startswith("/") or any(c in path for c in "\t\n\0"):
        raise InvalidArgument(f"invalid {where}: source {path!r} must be an absolute host path")
    if not os.path.exists(path):
        raise InvalidArgument(f"invalid {where}: bind source path does not exist: {path}")
    real = os.path.realpath(path)
    if force:
        return real
    state = os.path.realpath(state_dir)
    shown = path if real == path else f"{path} ({real})"
    if real in DANGEROUS_BINDS or any(real.startswith(t + "/") for t in _KERNEL_TREES):
        raise InvalidArgument(f"invalid {where}: refusing to bind {shown}: the node's root and "
                              "kernel interfaces are not bound unless forced (--mount type=bind,...,force)")
    if real == state or real.startswith(state + "/") or state.startswith(real.rstrip("/") + "/"):
        raise InvalidArgument(f"invalid {where}: refusing to bind {shown}: it holds, or is in, the "
                              f"agent's state dir {state}; not bound unless forced "
                              "(--mount type=bind,...,force)")
    return real
