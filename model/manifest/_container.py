"""Converters for the keys that set up each task's container (Compose's
service keys that a Linux node's engine honours), and for Compose's
shorthands of cluster settings (``restart``, ``platform``, ``depends_on``).

As ``_values``: each converter takes a positioned node and returns a plain
value, or raises ``Invalid`` (with ``line``/``suffix`` when it knows a more
precise spot); the walker adds file, line and field path.

Values a node cannot honour are refused here with the reason, never dropped:
a relative bind source (a cluster node has no project directory), SELinux
relabelling, a runtime other than the node's, a platform other than Linux,
a logging driver other than the node's files.

Invariants: converters are pure; what they return is what the model stores
(``ServiceSpec``'s container fields), but for volume references, which name
the manifest's keys until ``_volumes`` resolves them against the stack.
"""

from __future__ import annotations

import ipaddress
import re
import signal
from collections.abc import Callable
from dataclasses import dataclass

from model import settings
from model.manifest._errors import field_path
from model.manifest._values import Invalid, memory, unknown_key_message
from model.manifest._yaml import Map, Node, Scalar, Seq, describe
from model.objects import DEPENDENCY_CONDITIONS, Mount, RestartPolicy, Ulimit
from model.units import QuantityError, check_hostname, check_user

__all__ = [
    "ARCHES",
    "CAPABILITY_PATTERN",
    "PROFILE_PATTERN",
    "RUNTIMES",
    "DependencyRef",
    "VolumeRef",
    "abs_path",
    "build",
    "capabilities",
    "container_name",
    "dependencies",
    "devices",
    "dns",
    "expose",
    "extends",
    "extra_hosts",
    "hostname",
    "log_options",
    "logging_driver",
    "network_mode",
    "platform",
    "profiles",
    "restart",
    "runtime",
    "stop_signal",
    "sysctls",
    "tmpfs",
    "ulimits",
    "user",
    "volume_name",
    "volumes",
]

# Docker's container names; a task's container is named so on its node.
PROFILE_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$"
CAPABILITY_PATTERN = r"^(CAP_)?[A-Z_]+$"
# The runtimes a node runs containers with: its own (runc's interface).
RUNTIMES = ("runc", "orch-native")
# Go's GOARCH names, as Docker writes platforms; uname's spellings are read too.
ARCHES = ("amd64", "arm64", "arm", "386", "ppc64le", "s390x", "riscv64", "mips64le")
_ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm", "i386": "386"}
LOG_DRIVERS = ("json-file", "local")
LOG_OPTIONS = ("max-size", "max-file")

_PROFILE_RE = re.compile(PROFILE_PATTERN)
_CAPABILITY_RE = re.compile(CAPABILITY_PATTERN)
_ULIMIT_RE = re.compile(r"[a-z]+")
_EXPOSE_RE = re.compile(r"[0-9]{1,5}(-[0-9]{1,5})?(/(tcp|udp|sctp))?")
_RESTART_RE = re.compile(r"on-failure(:([0-9]+))?")
# A volume as a service names it: a key of the manifest's, which the stack's name
# scopes (<stack>_<key>) into a name on the nodes (model.settings' rule).
_VOLUME_KEY_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")


def _string(node: Node, what: str, suffix: str = "") -> str:
    if not isinstance(node, Scalar) or not isinstance(node.value, str):
        raise Invalid(f"expected {what}, got {describe(node)}", node.line if suffix else None, suffix)
    return node.value


def _text(node: Node, what: str, suffix: str = "") -> str:
    """A scalar as written (numbers too): ``sysctls: {net.core.somaxconn: 1024}``."""
    if not isinstance(node, Scalar) or node.value is None:
        raise Invalid(f"expected {what}, got {describe(node)}", node.line if suffix else None, suffix)
    return node.text


def _strings(node: Node, what: str, one: bool = False) -> list[tuple[str, Node, str]]:
    """(text, node, suffix) of a list of strings (or of one string when ``one``)."""
    if one and isinstance(node, Scalar) and isinstance(node.value, str):
        return [(node.value, node, "")]
    if not isinstance(node, Seq):
        raise Invalid(f"expected a list of {what}, got {describe(node)}")
    return [(_string(item, what, f"[{i}]"), item, f"[{i}]") for i, item in enumerate(node.items)]


def _pairs(node: Node, what: str, sep: str) -> list[tuple[str, str, int, str]]:
    """(key, value, line, suffix) of ``[K<sep>V, ...]`` or ``{K: V}``."""
    if isinstance(node, Map):
        return [(e.key, _text(e.value, f"a value for {e.key!r}", field_path("_", e.key)[1:]), e.key_line,
                 field_path("_", e.key)[1:]) for e in node.items]
    out = []
    for text, item, suffix in _strings(node, f"{what} strings"):
        key, found, value = text.partition(sep)
        if not found:
            raise Invalid(f"expected {what} as KEY{sep}VALUE, got {text!r}", item.line, suffix)
        out.append((key.strip(), value.strip(), item.line, suffix))
    return out


# ---- identity and process ---------------------------------------------------

def container_name(node: Node) -> str:
    """The container's name on its node (one task only: names are unique per node)."""
    text = _string(node, "a container name")
    if not settings.container_name_ok(text):
        raise Invalid(f"invalid container name {text!r}: use at most 128 letters, digits, '_', '.' and '-', "
                      "starting with a letter or digit")
    return text


def volume_name(node: Node) -> str:
    """A named volume's name on the nodes (its ``name:``)."""
    text = _string(node, "a volume name")
    if not settings.volume_name_ok(text):
        raise Invalid(f"invalid volume name {text!r}: use 2 to 255 letters, digits, '_', '.' and '-', "
                      "starting with a letter or digit")
    return text


def hostname(node: Node) -> str:
    """The container's hostname (``MAX_HOSTNAME`` characters at most)."""
    text = _string(node, "a hostname")
    try:
        check_hostname(text)  # at most MAX_HOSTNAME characters, as the kernel takes
    except QuantityError as err:
        raise Invalid(str(err))
    return text


def user(node: Node) -> str:
    """``uid``, ``uid:gid``, ``name`` or ``name:group`` (a number is read as a uid)."""
    if isinstance(node, Scalar) and isinstance(node.value, int) and not isinstance(node.value, bool):
        text = node.text
    else:
        text = _string(node, "a user such as 1000, 1000:1000 or www-data")
    try:
        check_user(text)
    except QuantityError as err:
        raise Invalid(str(err))
    if not text:
        raise Invalid("the user is empty: leave the key out for the image's")
    return text


def abs_path(what: str) -> Callable[[Node], str]:
    def convert(node: Node) -> str:
        text = _string(node, f"an absolute path ({what})")
        if not text.startswith("/") or "\0" in text:
            raise Invalid(f"expected an absolute path ({what}), got {text!r}")
        return text

    return convert


def stop_signal(node: Node) -> str:
    """``SIGTERM``, ``TERM`` or a number; stored as Docker writes it (``SIGTERM``, ``SIGRTMIN+3``, ``9``)."""
    if isinstance(node, Scalar) and isinstance(node.value, int) and not isinstance(node.value, bool):
        if not 1 <= node.value <= 64:
            raise Invalid(f"signal {node.value} is out of range: expected 1 to 64")
        return str(node.value)
    text = _string(node, "a signal such as SIGTERM")
    name = text.upper() if text.upper().startswith("SIG") else f"SIG{text.upper()}"
    if name not in signal.Signals.__members__ and not re.fullmatch(r"SIGRTM(IN\+[0-9]+|AX-[0-9]+)", name):
        raise Invalid(f"unknown signal {text!r}: expected a name such as SIGTERM, SIGINT or SIGQUIT, "
                      "or a number")
    return name


# ---- capabilities, devices, kernel settings ----------------------------------

def capabilities(node: Node) -> list[str]:
    """``[NET_ADMIN, CAP_SYS_TIME, ALL]``: names as the engine takes them."""
    out = []
    for text, item, suffix in _strings(node, "capability names such as NET_ADMIN"):
        if not _CAPABILITY_RE.fullmatch(text):
            raise Invalid(f"invalid capability {text!r}: expected a name such as NET_ADMIN or ALL",
                          item.line, suffix)
        out.append(text)
    return out


def devices(node: Node) -> list[str]:
    """``/dev/fuse``, ``/dev/sda:/dev/xvda:rwm``: host device, path in the container, permissions."""
    out = []
    for text, item, suffix in _strings(node, "devices such as /dev/fuse or /dev/sda:/dev/xvda:rwm"):
        parts = text.split(":")
        if len(parts) == 3 or (len(parts) == 2 and not parts[1].startswith("/")):
            paths, perms = parts[:-1], parts[-1]
        else:
            paths, perms = parts, "rwm"
        bad = len(parts) > 3 or not all(p.startswith("/") for p in paths) or not re.fullmatch("[rwm]+", perms)
        if bad:
            raise Invalid(f"invalid device {text!r}: expected HOST_PATH[:CONTAINER_PATH][:rwm]", item.line,
                          suffix)
        out.append(text)
    return out


def sysctls(node: Node) -> dict[str, str]:
    """``[net.core.somaxconn=1024]`` or ``{net.core.somaxconn: 1024}``: namespaced kernel settings."""
    out: dict[str, str] = {}
    for key, value, line, suffix in _pairs(node, "sysctls", "="):
        if not settings.sysctl_name_ok(key):
            raise Invalid(f"invalid sysctl {key!r}: expected a dotted name such as net.core.somaxconn",
                          line, suffix)
        if not settings.namespaced_sysctl(key):
            raise Invalid(f"sysctl {key!r} is the node's, not a container's: a task may set net.*, "
                          "kernel.shm*, kernel.msg*, kernel.sem and fs.mqueue.*", line, suffix)
        out[key] = value
    return out


def ulimits(node: Node) -> list[Ulimit]:
    """``{nofile: 65535}`` or ``{nofile: {soft: 1024, hard: 2048}}``; -1 is unlimited."""
    if not isinstance(node, Map):
        raise Invalid("expected a mapping such as {nofile: {soft: 1024, hard: 2048}}, got "
                      f"{describe(node)}")
    out = []
    for entry in node.items:
        suffix = field_path("_", entry.key)[1:]
        if entry.key not in settings.ULIMIT_NAMES:
            message = unknown_key_message(entry.key, settings.ULIMIT_NAMES).replace("key", "ulimit", 1)
            raise Invalid(message, entry.key_line, suffix)
        if isinstance(entry.value, Map):
            values = {e.key: e for e in entry.value.items}
            for e in entry.value.items:
                if e.key not in ("soft", "hard"):
                    raise Invalid(unknown_key_message(e.key, ("soft", "hard")), e.key_line,
                                  f"{suffix}.{e.key}")
            if set(values) != {"soft", "hard"}:
                raise Invalid("expected both soft and hard", entry.value.line, suffix)
            soft = _limit(values["soft"].value, f"{suffix}.soft")
            hard = _limit(values["hard"].value, f"{suffix}.hard")
            if hard != -1 and (soft == -1 or soft > hard):
                raise Invalid(f"soft limit {soft} is above the hard limit {hard}", entry.value.line, suffix)
        else:
            soft = hard = _limit(entry.value, suffix)
        out.append(Ulimit(entry.key, soft, hard))
    return out


def _limit(node: Node, suffix: str) -> int:
    value = node.value if isinstance(node, Scalar) else None
    if isinstance(value, bool) or not isinstance(value, int) or not -1 <= value < 1 << 63:
        raise Invalid(f"expected a non-negative integer, or -1 for unlimited, got {describe(node)}",
                      node.line, suffix)
    return value


# ---- names and addresses -----------------------------------------------------

def dns(node: Node) -> list[str]:
    """Nameservers for the container's resolv.conf: one address or a list."""
    out = []
    for text, item, suffix in _strings(node, "IP addresses", one=True):
        try:
            ipaddress.ip_address(text)
        except ValueError:
            raise Invalid(f"invalid nameserver {text!r}: expected an IP address", item.line, suffix) from None
        out.append(text)
    return out


def extra_hosts(node: Node) -> list[str]:
    """``["db.local:10.0.0.5", "v6=::1"]`` or ``{db.local: 10.0.0.5}``: lines of /etc/hosts, stored as
    ``name:address``."""
    if isinstance(node, Map):
        pairs = _pairs(node, "host entries", ":")
    else:
        pairs = []
        for text, item, suffix in _strings(node, "host entries such as db.local:10.0.0.5"):
            sep = "=" if "=" in text else ":"
            name, found, address = text.partition(sep)
            if not found:
                raise Invalid(f"invalid host entry {text!r}: expected NAME:ADDRESS or NAME=ADDRESS",
                              item.line, suffix)
            pairs.append((name.strip(), address.strip(), item.line, suffix))
    out = []
    for name, address, line, suffix in pairs:
        try:
            ipaddress.ip_address(address.strip("[]"))
            check_hostname(name)
        except (ValueError, QuantityError):
            if address != "host-gateway":
                raise Invalid(f"invalid host entry {name}:{address}: expected a host name and an IP address",
                              line, suffix) from None
            raise Invalid("host-gateway is not supported by orch: a task's node has no single gateway "
                          "address on its networks; give the address", line, suffix) from None
        out.append(f"{name}:{address.strip('[]')}")
    return out


def expose(node: Node) -> list[str]:
    """Ports the service answers on, for its neighbours (``"80"``, ``"8000-8010/udp"``): validated;
    a task's ports are all reachable on its networks already, as Compose's are on its network."""
    if not isinstance(node, Seq):
        raise Invalid(f"expected a list of ports, got {describe(node)}")
    out = []
    for i, item in enumerate(node.items):
        text = _text(item, "a port such as 80 or 8000-8010/tcp", f"[{i}]")
        if not _EXPOSE_RE.fullmatch(text) or any(not 1 <= int(p) <= 65535
                                                 for p in text.split("/")[0].split("-")):
            raise Invalid(f"invalid port {text!r}: expected PORT[-PORT][/tcp|udp], ports 1 to 65535",
                          item.line, f"[{i}]")
        out.append(text)
    return out


# ---- network mode, runtime, platform ----------------------------------------

def network_mode(node: Node) -> str:
    """``bridge`` (no cluster network), ``host`` or ``none``; a neighbour's namespace is refused:
    its tasks may be on another node."""
    text = _string(node, "bridge, host or none")
    if text.startswith(("service:", "container:")):
        raise Invalid(f"network_mode {text!r} is not supported by orch: tasks of two services may run "
                      "on different nodes, so one cannot join the other's network namespace; put both "
                      "on a network")
    if text not in ("bridge", "host", "none"):
        raise Invalid(f"expected bridge, host or none, got {text!r}")
    return text


def runtime(node: Node) -> str:
    text = _string(node, "a runtime name")
    if text not in RUNTIMES:
        raise Invalid(f"runtime {text!r} is not supported by orch: a node runs containers with its own "
                      f"runtime only ({', '.join(RUNTIMES)})"
                      + ("; GPU runtimes are not available" if "nvidia" in text else ""))
    return text


def platform(node: Node) -> str:
    """``linux/amd64``, ``linux/arm64/v8``: the architecture (``arm64``, ``arm/v7``) the tasks need.
    Every orch node is Linux, so another OS is refused."""
    text = _string(node, "a platform such as linux/amd64")
    parts = text.lower().split("/")
    if parts[0] != "linux":
        raise Invalid(f"platform {text!r} is not supported by orch: its nodes run Linux containers only")
    if len(parts) == 1:
        return ""
    arch = _ARCH_ALIASES.get(parts[1], parts[1])
    if arch not in ARCHES or len(parts) > 3:
        raise Invalid(f"unknown platform {text!r}: expected linux/ARCH[/VARIANT], ARCH one of "
                      f"{', '.join(ARCHES)}")
    if len(parts) == 3 and not re.fullmatch(r"v[0-9]+", parts[2]):
        raise Invalid(f"unknown variant in platform {text!r}: expected v6, v7, v8, ...")
    if arch == "arm64" and parts[2:] == ["v8"]:
        return arch  # arm64 is v8 (Docker writes both)
    return "/".join([arch, *parts[2:]])


def build(node: Node) -> None:
    """Compose's ``build``: a context path or a mapping. Checked for its shape; ``orch deploy --build``
    builds it, and without it a service needs its ``image``."""
    if isinstance(node, Scalar) and isinstance(node.value, str) and node.value:
        return None
    if not isinstance(node, Map):
        raise Invalid(f"expected a build context path or a mapping, got {describe(node)}")
    return None


# ---- restart, dependencies, profiles, extends --------------------------------

def restart(node: Node) -> RestartPolicy:
    """Compose's ``restart`` as the service's restart policy: ``no`` -> none, ``always`` and
    ``unless-stopped`` -> any, ``on-failure[:N]`` -> on-failure (at most N replacements)."""
    if isinstance(node, Scalar) and node.value is False:  # YAML 1.1 reads a bare no as false
        return RestartPolicy(condition="none")
    text = _string(node, "no, always, on-failure[:N] or unless-stopped")
    if text == "no":
        return RestartPolicy(condition="none")
    if text in ("always", "unless-stopped"):
        return RestartPolicy(condition="any")
    match = _RESTART_RE.fullmatch(text)
    if match is None:
        raise Invalid(f"expected no, always, on-failure[:N] or unless-stopped, got {text!r}")
    attempts = int(match[2]) if match[2] else 0
    if attempts > 2**31 - 1:
        raise Invalid(f"{text!r}: at most {2**31 - 1} attempts")
    return RestartPolicy(condition="on-failure", max_attempts=attempts)


@dataclass(frozen=True)
class DependencyRef:
    """One entry of a service's ``depends_on``, where it was written."""

    service: str
    condition: str
    required: bool
    line: int
    suffix: str


_DEPENDENCY_KEYS = ("condition", "required", "restart")


def dependencies(node: Node) -> list[DependencyRef]:
    """``[db, cache]`` or ``{db: {condition: service_healthy}}`` (Compose's two forms)."""
    if isinstance(node, Seq):
        return [DependencyRef(name, "service_started", True, item.line, suffix)
                for name, item, suffix in _strings(node, "service names")]
    if not isinstance(node, Map):
        raise Invalid(f"expected a list of services or a mapping, got {describe(node)}")
    out = []
    for entry in node.items:
        suffix = field_path("_", entry.key)[1:]
        condition, required = "service_started", True
        if not isinstance(entry.value, Map):
            raise Invalid(f"expected a mapping such as {{condition: service_healthy}}, got "
                          f"{describe(entry.value)}", entry.value.line, suffix)
        for e in entry.value.items:
            where = f"{suffix}.{e.key}"
            if e.key not in _DEPENDENCY_KEYS:
                raise Invalid(unknown_key_message(e.key, _DEPENDENCY_KEYS), e.key_line, where)
            if e.key == "condition":
                if not isinstance(e.value, Scalar) or e.value.value not in DEPENDENCY_CONDITIONS:
                    raise Invalid(f"expected one of {', '.join(DEPENDENCY_CONDITIONS)}, got "
                                  f"{describe(e.value)}", e.value.line, where)
                condition = str(e.value.value)
            elif e.key == "required":
                if not isinstance(e.value, Scalar) or not isinstance(e.value.value, bool):
                    raise Invalid(f"expected true or false, got {describe(e.value)}", e.value.line, where)
                required = e.value.value
            elif not (isinstance(e.value, Scalar) and e.value.value is False):
                raise Invalid("restart: true is not supported by orch: a service's tasks are not restarted "
                              "when a dependency's are; make the service reconnect", e.key_line, where)
        out.append(DependencyRef(entry.key, condition, required, entry.key_line, suffix))
    return out


def profiles(node: Node) -> list[str]:
    out = []
    for text, item, suffix in _strings(node, "profile names"):
        if not _PROFILE_RE.fullmatch(text):
            raise Invalid(f"invalid profile {text!r}: use letters, digits, '_', '.' and '-', starting with a "
                          "letter or digit", item.line, suffix)
        out.append(text)
    return out


def extends(node: Node) -> str:
    """``extends: base`` or ``{service: base}``: a service of the same file (merged before the walk,
    ``_compose``); ``file:`` is refused."""
    if isinstance(node, Scalar) and isinstance(node.value, str):
        return node.value
    if not isinstance(node, Map):
        raise Invalid(f"expected a service name or {{service: NAME}}, got {describe(node)}")
    service = None
    for e in node.items:
        if e.key == "file":
            raise Invalid("extends.file is not supported by orch: the control plane reads one manifest; "
                          "copy the service into this file, or use a YAML anchor", e.key_line, ".file")
        if e.key != "service":
            raise Invalid(unknown_key_message(e.key, ("service",)), e.key_line, f".{e.key}")
        service = _string(e.value, "a service name", ".service")
    if service is None:
        raise Invalid("missing required key 'service'")
    return service


# ---- logging -----------------------------------------------------------------

def logging_driver(node: Node) -> str:
    text = _string(node, "a logging driver")
    if text not in LOG_DRIVERS:
        raise Invalid(f"logging driver {text!r} is not supported by orch: a node keeps each task's output "
                      f"in rotated files, read by 'orch logs' ({', '.join(LOG_DRIVERS)}: max-size, max-file)")
    return text


def log_options(node: Node) -> tuple[int, int]:
    """(max-size bytes, max-file count); 0 = the node's default."""
    if not isinstance(node, Map):
        raise Invalid(f"expected a mapping such as {{max-size: 10m, max-file: 3}}, got {describe(node)}")
    size = files = 0
    for e in node.items:
        suffix = field_path("_", e.key)[1:]
        if e.key not in LOG_OPTIONS:
            raise Invalid(f"logging option {e.key!r} is not supported by orch: expected "
                          f"{' or '.join(LOG_OPTIONS)}", e.key_line, suffix)
        try:
            if e.key == "max-size":
                size = memory(e.value)
            else:
                text = _text(e.value, "a number of files")
                if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= 2**31 - 1:
                    raise Invalid(f"expected a number of files (at least 1), got {describe(e.value)}")
                files = int(text)
        except Invalid as err:
            raise Invalid(err.message, e.value.line, suffix)
    return size, files


# ---- volumes and tmpfs -------------------------------------------------------

@dataclass(frozen=True)
class VolumeRef:
    """A service's mount as written: ``source`` is a volume key of the manifest (resolved by
    ``_volumes``), an absolute host path, or "" (anonymous volume, tmpfs)."""

    mount: Mount
    line: int
    suffix: str


_MOUNT_KEYS = ("type", "source", "target", "read_only", "volume", "tmpfs", "bind", "consistency")


def volumes(node: Node) -> list[VolumeRef]:
    """``data:/var/lib/x``, ``/srv/www:/usr/share/nginx/html:ro``, ``/cache`` (anonymous), or the long
    form ``{type, source, target, read_only, volume: {nocopy}, tmpfs: {size, mode}}``."""
    if not isinstance(node, Seq):
        raise Invalid(f"expected a list of volumes, got {describe(node)}")
    out: list[VolumeRef] = []
    targets: dict[str, int] = {}
    for i, item in enumerate(node.items):
        suffix = f"[{i}]"
        mount = _long_mount(item, suffix) if isinstance(item, Map) else _short_mount(item, suffix)
        if mount.target in targets:
            raise Invalid(f"{mount.target} is mounted twice (first at line {targets[mount.target]})",
                          item.line, suffix)
        targets[mount.target] = item.line
        out.append(VolumeRef(mount, item.line, suffix))
    return out


def _short_mount(node: Node, suffix: str) -> Mount:
    text = _string(node, "a volume such as data:/var/lib/data or a mapping", suffix)
    parts = text.split(":")
    if len(parts) > 3 or not all(parts):
        raise Invalid(f"invalid volume {text!r}: expected [SOURCE:]TARGET[:MODE]", node.line, suffix)
    if len(parts) == 1:
        return _checked(Mount("volume", parts[0]), node.line, suffix)
    options = parts[2].split(",") if len(parts) == 3 else []
    read_only, nocopy = False, False
    for option in options:
        if option in ("ro", "rw"):
            read_only = option == "ro"
        elif option == "nocopy":
            nocopy = True
        elif option in ("z", "Z"):
            raise Invalid(f"volume option {option!r} is not supported by orch: its nodes do not relabel "
                          "files for SELinux", node.line, suffix)
        else:
            raise Invalid(f"volume option {option!r} is not supported by orch: expected ro, rw or nocopy",
                          node.line, suffix)
    source = parts[0]
    kind = "bind" if source.startswith(("/", ".", "~")) else "volume"
    if kind == "bind" and nocopy:
        raise Invalid(f"invalid volume {text!r}: nocopy applies to named volumes only", node.line, suffix)
    mount = Mount("bind" if kind == "bind" else "volume", parts[1], source, read_only=read_only,
                  volume_nocopy=nocopy)
    return _checked(mount, node.line, suffix)


def _long_mount(node: Map, suffix: str) -> Mount:
    values: dict[str, Node] = {}
    for e in node.items:
        where = f"{suffix}.{e.key}"
        if e.key not in _MOUNT_KEYS:
            raise Invalid(unknown_key_message(e.key, _MOUNT_KEYS), e.key_line, where)
        if e.key == "bind":
            raise Invalid("bind options (propagation, create_host_path, selinux) are not supported by orch: "
                          "a bind mount is private, and its source must exist on the node", e.key_line, where)
        if e.key == "consistency":
            raise Invalid("consistency has no meaning on a Linux node (it tunes Docker Desktop's file "
                          "sharing); leave it out", e.key_line, where)
        values[e.key] = e.value
    for key in ("type", "target"):
        if key not in values:
            raise Invalid(f"missing required key {key!r}", node.line, suffix)
    kind = _string(values["type"], "volume, bind or tmpfs", f"{suffix}.type")
    if kind not in ("volume", "bind", "tmpfs"):
        raise Invalid(f"volume type {kind!r} is not supported by orch: expected volume, bind or tmpfs",
                      values["type"].line, f"{suffix}.type")
    target = _string(values["target"], "an absolute path", f"{suffix}.target")
    source = ""
    if "source" in values:
        source = _string(values["source"], "a volume name or a path", f"{suffix}.source")
    read_only = False
    if "read_only" in values:
        flag = values["read_only"]
        if not isinstance(flag, Scalar) or not isinstance(flag.value, bool):
            raise Invalid(f"expected true or false, got {describe(flag)}", flag.line, f"{suffix}.read_only")
        read_only = flag.value
    mount = Mount(kind, target, source, read_only=read_only)  # type: ignore[arg-type]
    if "volume" in values:
        if kind != "volume":
            raise Invalid(f"'volume' options apply to type volume, not {kind}", node.line, f"{suffix}.volume")
        mount.volume_nocopy = bool(_options(values["volume"], f"{suffix}.volume", {"nocopy": bool})["nocopy"])
    if "tmpfs" in values:
        if kind != "tmpfs":
            raise Invalid(f"'tmpfs' options apply to type tmpfs, not {kind}", node.line, f"{suffix}.tmpfs")
        found = _options(values["tmpfs"], f"{suffix}.tmpfs", {"size": int, "mode": int})
        mount.tmpfs_size, mount.tmpfs_mode = found["size"], found["mode"]
    if kind == "tmpfs" and source:
        raise Invalid("a tmpfs takes no source", values["source"].line, f"{suffix}.source")
    return _checked(mount, node.line, suffix)


def _options(node: Node, suffix: str, keys: dict[str, type]) -> dict[str, int]:
    """``volume: {nocopy: true}``, ``tmpfs: {size: 64m, mode: 1777}``; absent keys are 0/false."""
    if not isinstance(node, Map):
        raise Invalid(f"expected a mapping, got {describe(node)}", node.line, suffix)
    out: dict[str, int] = dict.fromkeys(keys, 0)
    for e in node.items:
        where = f"{suffix}.{e.key}"
        if e.key not in keys:
            raise Invalid(unknown_key_message(e.key, tuple(keys)), e.key_line, where)
        try:
            if keys[e.key] is bool:
                if not isinstance(e.value, Scalar) or not isinstance(e.value.value, bool):
                    raise Invalid(f"expected true or false, got {describe(e.value)}")
                out[e.key] = e.value.value
            elif e.key == "size":
                out[e.key] = memory(e.value)
            else:
                out[e.key] = _mode(e.value)
        except Invalid as err:
            raise Invalid(err.message, e.value.line, where)
    return out


def _mode(node: Node) -> int:
    """Permission bits, octal as Docker reads them (``1777``, ``"0755"``, ``0o700``)."""
    text = _text(node, "permission bits such as 1777")
    digits = text.lower().removeprefix("0o")
    if not re.fullmatch("[0-7]{1,4}", digits):
        raise Invalid(f"expected octal permission bits such as 1777 or 0755, got {describe(node)}")
    return int(digits, 8)


def _checked(mount: Mount, line: int, suffix: str) -> Mount:
    """What every mount must be, whichever form gave it."""
    if not mount.target.startswith("/"):
        raise Invalid(f"mount target {mount.target!r} is not an absolute path in the container", line, suffix)
    if mount.type == "bind":
        if not mount.source.startswith("/"):
            raise Invalid(f"bind source {mount.source!r} is a relative path: a cluster node has no project "
                          "directory; give an absolute path on the node, or use a named volume", line, suffix)
    elif mount.type == "volume" and mount.source and not _VOLUME_KEY_RE.fullmatch(mount.source):
        raise Invalid(f"invalid volume name {mount.source!r}: use letters, digits, '_', '.' and '-'", line,
                      suffix)
    return mount


def tmpfs(node: Node) -> list[Mount]:
    """``/run``, ``["/run:size=64m,mode=1777", /tmp]``: tmpfs mounts (Docker's size and mode options)."""
    out = []
    for text, item, suffix in _strings(node, "paths such as /run or /run:size=64m", one=True):
        target, _, options = text.partition(":")
        mount = Mount("tmpfs", target)
        for option in filter(None, options.split(",")):
            key, _, value = option.partition("=")
            try:
                if key == "size":
                    mount.tmpfs_size = memory(Scalar(item.line, value, value))
                elif key == "mode":
                    mount.tmpfs_mode = _mode(Scalar(item.line, value, value))
                else:
                    raise Invalid(f"tmpfs option {key!r} is not supported by orch: expected size or mode")
            except Invalid as err:
                raise Invalid(err.message, item.line, suffix)
        out.append(_checked(mount, item.line, suffix))
    return out
