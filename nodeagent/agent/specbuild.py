"""Turn a user's container request plus its image into a ContainerSpec.

Docker's merge rules: the request's entrypoint/command replace the image's;
its env is added to the image's (same key: the request wins); workdir and user
fall back to the image's. Everything the runtime needs is decided here, so the
runtime never looks anything up.
"""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nodeagent.errors import InvalidArgument
from nodeagent.runtime.spec import (
    ContainerSpec,
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
    """The host's resolvers, minus loopback ones (unreachable from a container)."""
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


def build(cfg: pb.ContainerConfig, image: Image, lower_dirs: list[str],
          state_dir: str) -> tuple[ContainerSpec, dict[str, Any]]:
    """The spec, and the record fields the supervisor keeps beside it."""
    cid = os.urandom(32).hex()
    name = cfg.name or random_name()
    if not NAME_RE.match(name):
        raise InvalidArgument(f"invalid container name {name!r}: use letters, digits, _ . -")
    entrypoint = list(cfg.entrypoint.values) if cfg.HasField("entrypoint") else list(
        image.config.entrypoint)
    command = list(cfg.command.values) if cfg.HasField("command") else list(image.config.cmd)
    if cfg.HasField("entrypoint") and not cfg.HasField("command"):
        command = []  # Docker: a new entrypoint drops the image's Cmd
    args = entrypoint + command
    if not args:
        raise InvalidArgument(
            f"no command specified: image {image.repo_tags[0] if image.repo_tags else image.id} "
            "has no Cmd or Entrypoint; give one after the image name")
    network = cfg.network or "bridge"
    if network not in ("bridge", "none", "host"):
        raise InvalidArgument(f"invalid network mode {network!r}: expected bridge, none or host")
    ports = []
    for p in cfg.ports:
        protocol = p.protocol or "tcp"
        if protocol not in ("tcp", "udp"):
            raise InvalidArgument(f"invalid protocol {protocol!r} for port {p.host_port}: tcp or udp")
        ports.append(PortMapping(p.host_port, p.container_port, protocol, p.host_ip))  # type: ignore[arg-type]
    if ports and network != "bridge":
        raise InvalidArgument(f"published ports need the bridge network, not {network!r}")
    stop_signal = parse_signal(cfg.stop_signal or image.config.stop_signal or "SIGTERM")
    stop_timeout = cfg.stop_timeout if cfg.HasField("stop_timeout") else 10.0
    if stop_timeout < 0:
        raise InvalidArgument("stop timeout must not be negative")
    dns = host_nameservers() if network == "bridge" else []
    spec = ContainerSpec(
        id=cid,
        name=name,
        hostname=cfg.hostname or cid[:12],
        bundle_dir=os.path.join(state_dir, "containers", cid),
        rootfs=RootfsSpec(lower_dirs=lower_dirs, readonly=cfg.read_only,
                          volatile=cfg.auto_remove or cfg.volatile_rootfs),
        process=ProcessSpec(
            args=args,
            env=merge_env(list(image.config.env), list(cfg.env)),
            cwd=cfg.workdir if cfg.HasField("workdir") else (image.config.working_dir or "/"),
            user=cfg.user if cfg.HasField("user") else image.config.user,
        ),
        resources=Resources(
            memory_bytes=cfg.memory_bytes or None,
            cpus=cfg.cpus or None,
            pids_limit=cfg.pids_limit or None,
        ),
        network=NetworkConfig(mode=network, ports=ports, dns=dns),  # type: ignore[arg-type]
        cgroup_name=f"orch/{cid}",
        stop_signal=stop_signal,
        stop_timeout=stop_timeout,
        labels=dict(cfg.labels),
    )
    Path(spec.bundle_dir).parent.mkdir(parents=True, exist_ok=True)
    extra = {
        "image": image.repo_tags[0] if image.repo_tags else image.id,
        "image_id": image.id,
        "restart_policy": cfg.restart_policy or "no",
        "auto_remove": cfg.auto_remove,
    }
    return spec, extra
