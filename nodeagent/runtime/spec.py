"""What a container is made of: the runtime's input, as plain typed data.

A :class:`ContainerSpec` is complete: the runtime never looks anything up
(images, names, IP addresses). The agent builds it from the image config and the
user's options; the supervisor persists it (``to_dict``/``from_dict``) so a
restarted supervisor can restart or clean up a container.

Invariants:
- ``rootfs.lower_dirs`` are read-only snapshot directories, topmost layer
  first (overlayfs ``lowerdir`` order); the runtime never writes to them.
- ``bundle_dir`` belongs to this container alone: ``upper/``, ``work/`` and
  the ``rootfs/`` mountpoint live there (the generated /etc files live in the
  container's own namespace, see ``rootfs``).
- Quantities are in base units: bytes, and CPUs as a float (0.5 = half a CPU).
- ``mounts`` bind files the host holds into the container (a cluster task's
  secrets and configs, from a tmpfs of the agent's: ``secretfs``); the spec
  names their paths only, never their contents, so a persisted spec holds
  no secret. They also hold a container's volumes, host binds and tmpfs
  mounts (``-v``, ``--mount``, ``--tmpfs``; see :class:`Mount`).
- ``devices`` are host device nodes (looked up when the spec is built) made
  in the container's /dev; :meth:`ContainerSpec.device_rules` are its
  devices cgroup rules (Docker's default ones, plus those of its devices).
  A ``privileged`` container has every capability, no seccomp, no masked
  or read-only paths and every host device, as the agent decided
  (``specbuild``); the flag itself gives it the rule ``a *:* rwm`` and a
  read-write /sys.
- ``sysctls`` (``/proc/sys`` paths, dot-separated, -> value) are namespaced
  ones only; ``init`` makes PID 1 a small init that forks the process, reaps
  zombies and forwards signals to it (``orch-init``).
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, NamedTuple

# Docker's default capability set (moby/oci/caps/defaults.go).
DEFAULT_CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)

# Docker's masked paths: hidden from the container (bind of /dev/null for
# files, an empty read-only tmpfs for directories).
DEFAULT_MASKED_PATHS: tuple[str, ...] = (
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)

# Docker's read-only paths: bind-mounted onto themselves, then remounted ro.
DEFAULT_READONLY_PATHS: tuple[str, ...] = (
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
)

# Namespaces every container gets (user namespaces are not used yet). The
# order is the order of unshare flags; cgroup comes last so its root is the
# container's own cgroup, joined just before.
NAMESPACES: tuple[str, ...] = ("mount", "uts", "ipc", "net", "pid", "cgroup")

NetworkMode = Literal["bridge", "none", "host"]

# The resolver of every container with a network of its own, in its own
# namespace (Docker's address; see ``netns``).
EMBEDDED_DNS = "127.0.0.11"


_LEAVES = frozenset({str, int, float, bool, type(None), bytes})


def as_plain(value: Any) -> Any:
    """``dataclasses.asdict`` for these types, an order of magnitude faster:
    asdict deep-copies every leaf, here all leaves are immutable scalars.
    Records are serialised on every state change, so this is on the hot path.

    A class's ``OMITTED_AT_DEFAULT`` fields are left out at those values:
    fields newer than the records, so a record that does not use them reads
    (and shows in ``orch inspect``) as one made before they existed."""
    kind = type(value)
    if kind in _LEAVES:
        return value
    if hasattr(kind, "__dataclass_fields__"):
        plain = {k: as_plain(v) for k, v in vars(value).items()}
        for key, default in getattr(kind, "OMITTED_AT_DEFAULT", {}).items():
            if plain[key] == default:
                del plain[key]
        return plain
    if isinstance(value, list):
        return [as_plain(v) for v in value]
    if isinstance(value, tuple):
        if isinstance(value, ConsoleSize):
            return {"rows": value.rows, "cols": value.cols}
        return tuple(as_plain(v) for v in value)
    if isinstance(value, dict):
        return {k: as_plain(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class Rlimit:
    name: str  # e.g. "RLIMIT_NOFILE"
    soft: int
    hard: int


DEFAULT_RLIMITS: tuple[Rlimit, ...] = (Rlimit("RLIMIT_NOFILE", 1048576, 1048576),)


@dataclass(frozen=True)
class PortMapping:
    host_port: int
    container_port: int
    protocol: Literal["tcp", "udp"] = "tcp"
    host_ip: str = ""  # "" = every host address, loopback included


@dataclass
class ProcessSpec:
    """The process to exec, after the image config and overrides are merged."""

    args: list[str]
    env: list[str] = field(default_factory=list)  # "KEY=value"
    cwd: str = "/"
    # "", "uid", "uid:gid", "name" or "name:group"; names resolve through the
    # container's own /etc/passwd and /etc/group. "" means root.
    user: str = ""
    capabilities: tuple[str, ...] = DEFAULT_CAPABILITIES
    no_new_privileges: bool = True
    seccomp: bool = True  # the default profile; False = unconfined
    rlimits: tuple[Rlimit, ...] = DEFAULT_RLIMITS
    # A pty as its stdio (-t): orch-init opens one in the container's own
    # devpts, makes its slave the process's 0/1/2 and controlling terminal
    # (a new session), and sends its master over the unix socket the caller
    # gives as ``Stdio.stdin`` (see ``process.build_plan``).
    tty: bool = False
    console_size: ConsoleSize = field(default_factory=lambda: ConsoleSize())


class ConsoleSize(NamedTuple):
    """A pty's first size; 0 x 0: the kernel's. Plain: ``{"rows", "cols"}``
    (as the API's ``WindowSize``)."""

    rows: int = 0
    cols: int = 0

    @classmethod
    def of(cls, value: Any) -> ConsoleSize:
        """From its plain form, a (rows, cols) pair, or None (0 x 0)."""
        if isinstance(value, dict):
            return cls(int(value.get("rows", 0)), int(value.get("cols", 0)))
        return cls(*(int(n) for n in value)) if value else cls()


# Docker's default device rules (the devices cgroup, v1): mknod of any
# node, and use of the nodes every container's /dev has (``orch-init``
# makes them) plus the pty ones.
DEFAULT_DEVICE_RULES: tuple[str, ...] = (
    "c *:* m", "b *:* m",
    "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm",  # null zero full random urandom
    "c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm",  # tty console ptmx pts
)
ALL_DEVICES_RULE = "a *:* rwm"


@dataclass
class Resources:
    memory_bytes: int | None = None
    cpus: float | None = None  # becomes a CFS quota over a 100 ms period
    pids_limit: int | None = None


@dataclass(frozen=True)
class Device:
    """A host device node made in the container (``--device``)."""

    path: str  # in the container, under /dev
    kind: Literal["c", "b"]
    major: int
    minor: int
    permissions: str = "rwm"  # its devices cgroup rule's access
    file_mode: int = 0o666
    uid: int = 0
    gid: int = 0


@dataclass
class NetworkAttachment:
    """One overlay network the container joins, as interface ``ifname``
    (``eth1``, ``eth2``, ... in the order of its networks). The host end of
    its veth pair, ``host_veth``, is in no bridge: the node routes
    ``address/32`` to it and answers the container's ARP for the rest of the
    subnet (proxy ARP), so every packet goes through the node."""

    network_id: str
    network_name: str
    address: str  # the container's address on the network (the control plane allocated it)
    prefixlen: int  # the network's: the container reaches the whole subnet on-link
    ifname: str  # inside the container
    host_veth: str  # on the node (<= 15 chars)
    aliases: list[str] = field(default_factory=list)  # its DNS names there


@dataclass
class NetworkConfig:
    """The container's network, decided before create (IPAM already done)."""

    mode: NetworkMode = "none"
    bridge: str = ""  # host bridge name, bridge mode only
    address: str = ""  # container address, bridge mode only
    prefixlen: int = 0
    gateway: str = ""
    host_veth: str = ""  # host-side veth name (<= 15 chars)
    ports: list[PortMapping] = field(default_factory=list)
    dns: list[str] = field(default_factory=list)  # nameservers; [] = the default (``bundle``)
    extra_hosts: list[tuple[str, str]] = field(default_factory=list)  # (name, ip)
    attachments: list[NetworkAttachment] = field(default_factory=list)  # overlay networks

    @property
    def attached(self) -> bool:
        """Whether the runtime attaches links of the container's own (a veth
        on the bridge, overlay interfaces) and its DNS sockets: in bridge
        mode, or with overlay networks."""
        return self.mode == "bridge" or bool(self.attachments)


@dataclass
class RootfsSpec:
    lower_dirs: list[str]  # topmost first
    readonly: bool = False
    # Skip the writable layer's syncs (overlayfs "volatile"): only for a
    # layer never reused after a host crash (--rm containers, cluster tasks).
    volatile: bool = False
    # The writable layer's size limit in bytes (0: none), kept by a project
    # quota on its upper and work dirs, or by a filesystem of its own (see
    # ``bundle``).
    size_bytes: int = 0


@dataclass(frozen=True)
class Mount:
    """A host file (or directory) bound at ``target`` in the container, on a
    mountpoint the runtime makes in its init layer (so the image needs no
    such path, and no symlink of the image's is followed to it).

    ``type``: "bind" (a task's secrets and configs, and ``-v /host:/ctr``),
    "volume" (``volume`` names it; ``source`` is its ``_data`` directory) or
    "tmpfs" (a new tmpfs, ``options`` its mount data; ``source`` is
    :data:`TMPFS_SOURCE`, unused). ``options`` of a bind or volume holds
    "rbind" for a user's mount: recursive, and read-only without noexec, as
    Docker's; without it (secrets) a read-only bind is also nosuid, nodev
    and noexec. Records without these fields are secrets' binds."""

    source: str  # host path, in the runtime's mount namespace
    target: str  # absolute path in the container (``model.secrets.resolve_target``'s rules)
    readonly: bool = True
    type: Literal["bind", "volume", "tmpfs"] = "bind"
    volume: str = ""
    options: str = ""


# A tmpfs mount's source: the runtime checks every source is an absolute
# path, and a tmpfs has none; "/" is never bound as one (specbuild refuses it).
TMPFS_SOURCE = "/"


@dataclass
class ContainerSpec:
    id: str  # 64 hex chars
    name: str
    hostname: str
    bundle_dir: str
    rootfs: RootfsSpec
    process: ProcessSpec
    resources: Resources = field(default_factory=Resources)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    cgroup_name: str = ""  # relative path under each hierarchy, e.g. "orch/<id>"
    masked_paths: tuple[str, ...] = DEFAULT_MASKED_PATHS
    readonly_paths: tuple[str, ...] = DEFAULT_READONLY_PATHS
    stop_signal: int = int(signal.SIGTERM)
    stop_timeout: float = 10.0
    labels: dict[str, str] = field(default_factory=dict)
    mounts: list[Mount] = field(default_factory=list)
    devices: list[Device] = field(default_factory=list)
    sysctls: dict[str, str] = field(default_factory=dict)  # "net.ipv4.ip_forward" -> "1"
    shm_size: int = 0  # bytes of /dev/shm; 0: 64 MiB
    init: bool = False
    privileged: bool = False

    OMITTED_AT_DEFAULT: ClassVar[dict[str, Any]] = {
        "devices": [], "sysctls": {}, "shm_size": 0, "init": False, "privileged": False}

    def device_rules(self) -> tuple[str, ...]:
        """The devices cgroup's allow list, after "deny all" (v1): every
        device when privileged, else Docker's default rules and the spec's devices'."""
        if self.privileged:
            return (ALL_DEVICES_RULE,)
        return DEFAULT_DEVICE_RULES + tuple(f"{d.kind} {d.major}:{d.minor} {d.permissions}"
                                            for d in self.devices)

    def to_dict(self) -> dict[str, Any]:
        plain = as_plain(self)
        assert isinstance(plain, dict)
        return plain

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ContainerSpec:
        proc = dict(data["process"])
        proc["capabilities"] = tuple(proc.get("capabilities", DEFAULT_CAPABILITIES))
        proc["rlimits"] = tuple(Rlimit(**r) for r in proc.get("rlimits", ()))
        proc["console_size"] = ConsoleSize.of(proc.get("console_size"))
        net = dict(data.get("network", {}))
        net["ports"] = [PortMapping(**p) for p in net.get("ports", [])]
        net["extra_hosts"] = [tuple(h) for h in net.get("extra_hosts", [])]
        net["attachments"] = [NetworkAttachment(**a) for a in net.get("attachments", [])]
        return cls(
            id=data["id"],
            name=data["name"],
            hostname=data["hostname"],
            bundle_dir=data["bundle_dir"],
            rootfs=RootfsSpec(**data["rootfs"]),
            process=ProcessSpec(**proc),
            resources=Resources(**data.get("resources", {})),
            network=NetworkConfig(**net),
            cgroup_name=data.get("cgroup_name", ""),
            masked_paths=tuple(data.get("masked_paths", DEFAULT_MASKED_PATHS)),
            readonly_paths=tuple(data.get("readonly_paths", DEFAULT_READONLY_PATHS)),
            stop_signal=int(data.get("stop_signal", signal.SIGTERM)),
            stop_timeout=float(data.get("stop_timeout", 10.0)),
            labels=dict(data.get("labels", {})),
            mounts=[Mount(**m) for m in data.get("mounts", [])],
            devices=[Device(**d) for d in data.get("devices", [])],
            sysctls=dict(data.get("sysctls", {})),
            shm_size=int(data.get("shm_size", 0)),
            init=bool(data.get("init", False)),
            privileged=bool(data.get("privileged", False)),
        )


@dataclass
class ExitStatus:
    """How a container's process ended. ``exit_code`` follows the shell rule:
    128+N for death by signal N; an OOM kill is ``oom_killed`` with 137."""

    exit_code: int
    signal: int = 0
    oom_killed: bool = False

    @classmethod
    def from_wait_status(cls, status: int, oom_killed: bool = False) -> ExitStatus:
        import os

        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            return cls(128 + sig, sig, oom_killed)
        return cls(os.WEXITSTATUS(status), 0, oom_killed)
