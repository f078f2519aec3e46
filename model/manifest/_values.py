"""Converters from one positioned YAML value to the model's plain values.

Each converter takes a node and returns a value, or raises ``Invalid`` with a
message; the walker (``_walk``) adds the file, line and field path. A
converter that knows a more precise spot (the third item of a list, a key of
a long-form port) says so with ``line`` and ``suffix``.

Invariants: converters are pure; the regular expressions used here are the
ones the JSON Schema publishes (``_table`` imports them), so the schema and
the parser accept the same spellings.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Literal

from model import constraints as grammar
from model import networks as netrules
from model.manifest._errors import field_path
from model.manifest._yaml import Map, Node, Scalar, Seq, describe
from model.objects import PortConfig
from model.units import (
    QuantityError,
    check_cpus,
    check_memory,
    check_pids_limit,
    format_seconds,
    parse_cpus,
    parse_memory,
)

__all__ = [
    "ALIAS_PATTERN",
    "CONSTRAINT_PATTERN",
    "CPUS_PATTERN",
    "DURATION_PATTERN",
    "MEMORY_PATTERN",
    "NETWORK_KEY_PATTERN",
    "NETWORK_NAME_PATTERN",
    "PORT_KEYS",
    "PORT_PATTERN",
    "PREFERENCE_KEYS",
    "RESERVED_LABEL_PREFIX",
    "SERVICE_NAME_PATTERN",
    "SERVICE_NETWORK_KEYS",
    "SPREAD_PATTERN",
    "STACK_NAME_PATTERN",
    "SUBNET_PATTERN",
    "Invalid",
    "NetworkRef",
    "argv",
    "boolean",
    "check_network_key",
    "check_service_name",
    "choice",
    "command",
    "constraints",
    "count",
    "cpus",
    "duration",
    "environment",
    "ignored",
    "image",
    "ipam_config",
    "labels",
    "memory",
    "network_name",
    "pids_limit",
    "ports",
    "preferences",
    "ratio",
    "rollback_failure_action",
    "service_networks",
    "stack_name",
    "unknown_key_message",
]


class Invalid(Exception):
    """A value is wrong; ``line``/``suffix`` narrow the spot inside the value (item, key)."""

    def __init__(self, message: str, line: int | None = None, suffix: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.suffix = suffix


# ---- patterns shared with the JSON Schema --------------------------------

# ASCII digits only, no space around a value: Python's \d and int() also take
# other scripts' digits ("٦٤Mi"), which no other tool reads as a number.
SERVICE_NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"  # an RFC 1123 DNS label
CPUS_PATTERN = r"^([0-9]+(\.[0-9]*)?|\.[0-9]+)m?$"
# Docker's one space between number and unit ("64 MiB") is allowed.
MEMORY_PATTERN = r"^([0-9]+(\.[0-9]*)?|\.[0-9]+)( ?(b|B|[kKmMgGtTpP][iI]?[bB]?))?$"
_DURATION_PART = r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|ms|s|m|h)"
DURATION_PATTERN = rf"^([0-9]+(\.[0-9]*)?|\.[0-9]+|({_DURATION_PART})+)$"
PORT_PATTERN = r"^[0-9]+:[0-9]+(/(tcp|udp))?$"
# Labels orch sets on every task's container (orch.task, orch.service): a
# user's label there would be overwritten, so it is refused instead.
RESERVED_LABEL_PREFIX = "orch."
# The placement grammar's (model.constraints), which the scheduler parses too.
CONSTRAINT_PATTERN = grammar.CONSTRAINT_PATTERN
SPREAD_PATTERN = grammar.SPREAD_PATTERN
PORT_KEYS = ("published", "target", "protocol", "mode")
PORT_MODES = ("ingress", "host")
# Compose's network keys; a stack's network is named "<stack>_<key>" in the cluster.
NETWORK_KEY_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$"
NETWORK_NAME_PATTERN = netrules.NETWORK_NAME_PATTERN
STACK_NAME_PATTERN = netrules.STACK_NAME_PATTERN
ALIAS_PATTERN = netrules.ALIAS_PATTERN
SUBNET_PATTERN = r"^[0-9]{1,3}(\.[0-9]{1,3}){3}/[0-9]{1,2}$"
SERVICE_NETWORK_KEYS = ("aliases",)
IPAM_CONFIG_KEYS = ("subnet",)
PREFERENCE_KEYS = ("spread",)

_SERVICE_NAME_RE = re.compile(SERVICE_NAME_PATTERN)
_NETWORK_KEY_RE = re.compile(NETWORK_KEY_PATTERN)
_DURATION_PART_RE = re.compile(_DURATION_PART)
_DURATION_RE = re.compile(DURATION_PATTERN)
_ENV_NAME_RE = re.compile(r"[^=\s]+")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def unknown_key_message(key: str, known: Collection[str]) -> str:
    """``unknown key 'replica' (did you mean 'replicas'?)``, else the list of keys."""
    import difflib  # only for a bad key

    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    if close:
        return f"unknown key {key!r} (did you mean {close[0]!r}?)"
    return f"unknown key {key!r}; expected one of: {', '.join(sorted(known))}"


def check_service_name(name: str) -> None:
    if not _SERVICE_NAME_RE.fullmatch(name):
        raise Invalid(
            f"invalid service name {name!r}: use at most 63 lower-case letters, digits and '-', "
            "starting and ending with a letter or digit (a DNS label)"
        )


def check_network_key(name: str) -> None:
    if not _NETWORK_KEY_RE.fullmatch(name):
        raise Invalid(f"invalid network name {name!r}: use at most 64 letters, digits, '_', '.' and '-', "
                      "starting with a letter or digit")


# ---- scalars ---------------------------------------------------------------

def _text(node: Node, what: str) -> str:
    """The text of a non-null scalar (numbers and booleans as written)."""
    if not isinstance(node, Scalar) or node.value is None:
        raise Invalid(f"expected {what}, got {describe(node)}")
    return node.text


def _string(node: Node, what: str) -> str:
    if not isinstance(node, Scalar) or not isinstance(node.value, str):
        raise Invalid(f"expected {what}, got {describe(node)}")
    return node.value


def stack_name(node: Node) -> str:
    """The top-level ``name:``: the stack (Compose's project) name its networks are named after."""
    text = _string(node, "a stack name such as shop")
    try:
        return netrules.check_stack_name(text)
    except ValueError as err:
        raise Invalid(str(err))


def network_name(node: Node) -> str:
    """A network's name in the cluster (a network's ``name:``)."""
    text = _string(node, "a network name")
    try:
        return netrules.check_network_name(text)
    except ValueError as err:
        raise Invalid(str(err))


def ignored(node: Node) -> None:
    """Keys Compose files carry that mean nothing to orch (``version``): a string or a
    number, as the schema has it, though the value is not used."""
    if not isinstance(node, Scalar) or isinstance(node.value, bool) or node.value is None:
        raise Invalid(f"expected a string such as '3.8', got {describe(node)}")


def image(node: Node) -> str:
    """A local image (``busybox``, ``site:1``, an image id) or a registry's
    (``127.0.0.1:5000/site:1``, ``host/app@sha256:...``), checked now: a bad
    reference would only fail once a node tries to start the task."""
    ref = _string(node, "an image reference such as busybox:1.36")
    # Imported on first use: the package's other users (the schema, the dumper) need none of it.
    from common.errors import InvalidArgument
    from registry.reference import is_hex_id, parse

    try:
        if not is_hex_id(ref):
            parse(ref)  # Docker's rules: busybox, host:port/ns/app:tag, app@sha256:...
    except InvalidArgument as err:
        raise Invalid(err.message)
    return ref


def count(maximum: int, what: str = "") -> Callable[[Node], int]:
    """A whole number from 0 to ``maximum``; ``what`` names the limit in the error."""
    def convert(node: Node) -> int:
        value = node.value if isinstance(node, Scalar) else None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise Invalid(f"expected a non-negative integer, got {describe(node)}")
        if value > maximum:
            raise Invalid(f"{describe(node)} is too large: at most {maximum}{what}")
        return value

    return convert


def boolean(node: Node) -> bool:
    if not isinstance(node, Scalar) or not isinstance(node.value, bool):
        raise Invalid(f"expected true or false, got {describe(node)}")
    return node.value


def choice(values: tuple[str, ...]) -> Callable[[Node], str]:
    def convert(node: Node) -> str:
        if isinstance(node, Scalar) and node.value in values:
            return str(node.value)
        raise Invalid(f"expected one of {', '.join(values)}, got {describe(node)}")

    return convert


def rollback_failure_action(node: Node) -> str:
    """A rollback's ``failure_action``: ``pause`` or ``continue``, the two the
    Compose spec and Docker's CLI allow there. A failed rollback has no
    earlier spec to go back to (swarmkit pauses instead of rolling a rollback
    back), so ``rollback`` is refused rather than silently read as ``pause``."""
    if isinstance(node, Scalar) and node.value == "rollback":
        raise Invalid("expected pause or continue, got 'rollback': a failed rollback has no earlier spec "
                      "to go back to (Compose and Docker allow only pause or continue here)")
    return choice(("pause", "continue"))(node)


def ratio(node: Node) -> float:
    """A fraction from 0 to 1 (``max_failure_ratio``): 0.1 is one task in ten."""
    value = node.value if isinstance(node, Scalar) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise Invalid(f"expected a number from 0 to 1 (a fraction, such as 0.1), got {describe(node)}")
    return float(value)


def cpus(node: Node) -> float:
    value = node.value if isinstance(node, Scalar) else None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise Invalid(f"expected a number of CPUs such as 0.5 or 500m, got {describe(node)}")
    try:
        if isinstance(value, str):
            return parse_cpus(value)
        number = float(value) if isinstance(value, float) or abs(value) < 1 << 53 else math.inf
        check_cpus(number, describe(node))
        return number
    except QuantityError as err:
        raise Invalid(str(err))


def memory(node: Node) -> int:
    value = node.value if isinstance(node, Scalar) else None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise Invalid(f"expected a memory size such as 64M or 256Mi, got {describe(node)}")
    if isinstance(value, int) and value <= 0:
        raise Invalid(f"expected a memory size of at least 1 byte, got {value}")
    try:
        if isinstance(value, int):
            check_memory(value, describe(node))
            return value
        return parse_memory(value)
    except QuantityError as err:
        raise Invalid(str(err))


def pids_limit(node: Node) -> int:
    """Processes a task may have at once: 1 to the kernel's maximum, or -1 for unlimited.

    0 is refused: Docker reads it as unlimited, orch as "the node's default";
    leaving the key out means the node's default."""
    value = node.value if isinstance(node, Scalar) else None
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(f"expected a number of processes, or -1 for unlimited, got {describe(node)}")
    try:
        check_pids_limit(value, "pids limit", node_default=False)
    except QuantityError as err:
        raise Invalid(str(err) + ("; leave the key out for the node's default" if value == 0 else ""))
    return value


_DURATION_HELP = "a duration such as 5s, 1m30s, 500ms or a number of seconds"


def duration(maximum: float) -> Callable[[Node], float]:
    """``5s``, ``1m30s``, ``500ms`` (Go's units) or a number of seconds, at most ``maximum``."""
    def convert(node: Node) -> float:
        value = node.value if isinstance(node, Scalar) else None
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise Invalid(f"expected {_DURATION_HELP}, got {describe(node)}")
        if isinstance(value, str):
            if not _DURATION_RE.fullmatch(value):
                raise Invalid(f"expected {_DURATION_HELP}, got {describe(node)}")
            parts = _DURATION_PART_RE.findall(value)
            seconds = sum(float(n) * _DURATION_UNITS[u] for n, u in parts) if parts else float(value)
        elif isinstance(value, int):
            seconds = float(value) if abs(value) <= maximum else math.inf * (1 if value > 0 else -1)
        else:
            seconds = value
        if math.isnan(seconds) or seconds < 0 or (isinstance(value, float) and math.isinf(value)):
            raise Invalid(f"expected {_DURATION_HELP}, got {describe(node)}")
        if seconds > maximum:
            raise Invalid(f"{describe(node)} is too long: at most {format_seconds(maximum)}")
        return seconds

    return convert


# ---- commands, environment, labels -----------------------------------------

def argv(node: Node) -> list[str]:
    """A string (split like a shell would, without running one) or a list of strings;
    ``[]`` or ``""`` is an empty list (an entrypoint cleared)."""
    if isinstance(node, Scalar) and isinstance(node.value, str):
        try:
            words = shlex.split(node.value)
        except ValueError as err:
            raise Invalid(f"cannot split {describe(node)} into arguments: {err}")
        if any("\0" in word for word in words):
            raise Invalid("an argument holds a NUL character, which no program can receive")
        return words
    if not isinstance(node, Seq):
        raise Invalid(f"expected a string or a list of strings, got {describe(node)}")
    out = [_item_text(item, i, "a string") for i, item in enumerate(node.items)]
    for i, word in enumerate(out):
        if "\0" in word:
            raise Invalid("an argument holds a NUL character, which no program can receive",
                          node.items[i].line, f"[{i}]")
    return out


def command(node: Node) -> list[str]:
    """``argv`` that runs something: an empty command would only fail when the task starts."""
    words = argv(node)
    if not words:
        raise Invalid("the command is empty: give the program and its arguments, "
                      "or leave the key out for the image's CMD")
    return words


def health_test(node: Node) -> list[str]:
    """Compose's ``healthcheck.test``: a string (run by the container's
    shell: ``CMD-SHELL``), or a list starting with ``CMD``, ``CMD-SHELL`` or
    ``NONE`` (Docker's forms)."""
    if isinstance(node, Scalar) and isinstance(node.value, str):
        if not node.value.strip():
            raise Invalid("the test is empty: give a command, or disable: true")
        return ["CMD-SHELL", node.value]
    words = argv(node)
    if not words or words[0] not in ("CMD", "CMD-SHELL", "NONE"):
        raise Invalid("expected a string, or a list starting with CMD, CMD-SHELL or NONE, "
                      f"got {describe(node)}")
    if words[0] == "NONE" and len(words) > 1:
        raise Invalid("NONE takes no arguments")
    if words[0] != "NONE" and len(words) == 1:
        raise Invalid(f"{words[0]} needs a command after it")
    return words


def port_number(node: Node) -> int:
    """A TCP port, 1 to 65535."""
    value = node.value if isinstance(node, Scalar) else None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise Invalid(f"expected a port from 1 to 65535, got {describe(node)}")
    return value


def http_path(node: Node) -> str:
    text = _string(node, "a path such as /healthz")
    if not text.startswith("/") or any(c.isspace() or ord(c) < 32 for c in text):
        raise Invalid(f"expected a path starting with / and without spaces, got {describe(node)}")
    return text


def http_status(node: Node) -> int:
    value = node.value if isinstance(node, Scalar) else None
    if isinstance(value, bool) or not isinstance(value, int) or not 100 <= value <= 599:
        raise Invalid(f"expected an HTTP status from 100 to 599, got {describe(node)}")
    return value


def _text_at(node: Node, what: str, suffix: str) -> str:
    try:
        return _text(node, what)
    except Invalid as err:
        raise Invalid(err.message, node.line, suffix)


def _string_at(node: Node, what: str, suffix: str) -> str:
    """A string, not a number or boolean as written: names, as the schema has them
    (``aliases: [yes]`` is a boolean to YAML, and to every other tool that reads it)."""
    try:
        return _string(node, what)
    except Invalid as err:
        raise Invalid(err.message, node.line, suffix)


def _item_text(item: Node, index: int, what: str) -> str:
    return _text_at(item, what, f"[{index}]")


def _key_suffix(key: str) -> str:
    """``.name``, or ``["com.example.tier"]`` for a key with dots."""
    return field_path("_", key)[1:]


def _pairs(node: Node, what: str, bare: str) -> list[tuple[str, str | None, int, str]]:
    """(name, value, line, field suffix) from ``[K=V, ...]`` or ``{K: V}``; ``bare`` value for ``K``."""
    if isinstance(node, Map):
        out: list[tuple[str, str | None, int, str]] = []
        for entry in node.items:
            scalar, suffix = entry.value, _key_suffix(entry.key)
            if not isinstance(scalar, Scalar):
                raise Invalid(f"expected a string value, got {describe(scalar)}", scalar.line, suffix)
            out.append((entry.key, None if scalar.value is None else scalar.text, scalar.line, suffix))
        return out
    if not isinstance(node, Seq):
        raise Invalid(f"expected a list of {what} or a mapping, got {describe(node)}")
    out = []
    seen: dict[str, int] = {}
    for i, item in enumerate(node.items):
        text = _item_text(item, i, f"a {what} string")
        name, sep, value = text.partition("=")
        if name in seen:
            raise Invalid(f"duplicate {bare} {name!r} (first at line {seen[name]})", item.line, f"[{i}]")
        seen[name] = item.line
        out.append((name, value if sep else None, item.line, f"[{i}]"))
    return out


def environment(node: Node) -> list[str]:
    env = []
    for name, value, line, suffix in _pairs(node, "NAME=value", "variable"):
        if not _ENV_NAME_RE.fullmatch(name) or "\0" in name:
            raise Invalid(f"invalid variable name {name!r}", line, suffix)
        if value is not None and "\0" in value:
            raise Invalid(f"the value of {name!r} holds a NUL character, which the environment "
                          "cannot carry", line, suffix)
        if value is None:
            raise Invalid(
                f"no value for {name!r}: orch does not copy variables from the deploying shell; "
                f"write {name}=value", line, suffix,
            )
        env.append(f"{name}={value}")
    return env


@dataclass(frozen=True)
class EnvFileRef:
    """One ``env_file`` entry: a file next to the manifest, which the CLI sends."""

    path: str
    required: bool
    line: int
    suffix: str


def env_files(node: Node) -> list[EnvFileRef]:
    """Compose's ``env_file``: a path, or a list of paths and ``{path, required}``."""
    if isinstance(node, Scalar):
        return [EnvFileRef(_text(node, "a path"), True, node.line, "")]
    if not isinstance(node, Seq):
        raise Invalid(f"expected a path or a list of paths, got {describe(node)}")
    out = []
    for i, item in enumerate(node.items):
        if isinstance(item, Map):
            known = {e.key: e.value for e in item.items}
            for key in known:
                if key == "format":
                    raise Invalid("env_file format is not supported: files are read in Compose's "
                                  "default format", item.line, f"[{i}].format")
                if key not in ("path", "required"):
                    raise Invalid(unknown_key_message(key, ("path", "required")), item.line, f"[{i}].{key}")
            if "path" not in known:
                raise Invalid("an env_file entry needs a path", item.line, f"[{i}]")
            required = known.get("required")
            out.append(EnvFileRef(_text_at(known["path"], "a path", f"[{i}].path"),
                                  True if required is None else boolean(required), item.line, f"[{i}]"))
        else:
            out.append(EnvFileRef(_item_text(item, i, "a path"), True, item.line, f"[{i}]"))
    return out


def labels(node: Node) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value, line, suffix in _pairs(node, "key=value", "label"):
        if not name or any(ch.isspace() or ch == "\0" for ch in name):
            raise Invalid(f"invalid label name {name!r}", line, suffix)
        if name.startswith(RESERVED_LABEL_PREFIX):
            raise Invalid(f"label {name!r} is reserved: orch sets the labels under "
                          f"{RESERVED_LABEL_PREFIX!r} on every task; choose another prefix", line, suffix)
        out[name] = value or ""
    return out


# ---- ports -----------------------------------------------------------------

def ports(node: Node) -> list[PortConfig]:
    """``"8080:80"``, ``"8080:80/udp"`` or ``{published: 8080, target: 80, protocol: tcp}``."""
    if not isinstance(node, Seq):
        raise Invalid(f"expected a list of ports, got {describe(node)}")
    return [_port(item, f"[{i}]") for i, item in enumerate(node.items)]


def _port(node: Node, suffix: str) -> PortConfig:
    if isinstance(node, Map):
        return _long_port(node, suffix)
    text = _text_at(node, 'a port mapping such as "8080:80" or a mapping', suffix)
    spec, slash, protocol = text.partition("/")
    if slash and not protocol:
        raise Invalid(f"port {text!r} has an empty protocol: write tcp or udp after '/', or drop the '/'",
                      node.line, suffix)
    parts = spec.split(":")
    if len(parts) == 1:
        raise Invalid(f'port {text!r} has no published port; write "PUBLISHED:{text}"', node.line, suffix)
    if len(parts) > 2 or "-" in spec:
        raise Invalid(f"port {text!r}: host addresses and port ranges are not supported; "
                      'write "PUBLISHED:TARGET[/tcp|udp]"', node.line, suffix)
    published, target = (_port_number(p, node.line, suffix) for p in parts)
    return PortConfig(published, target, _protocol(protocol or "tcp", node.line, suffix))


def _long_port(node: Map, suffix: str) -> PortConfig:
    values: dict[str, Node] = {}
    for item in node.items:
        if item.key not in PORT_KEYS:
            raise Invalid(unknown_key_message(item.key, PORT_KEYS), item.key_line,
                          field_path(suffix, item.key))
        values[item.key] = item.value
    for key in ("published", "target"):
        if key not in values:
            raise Invalid(f"missing required key {key!r}", node.line, suffix)
    numbers = []
    for key in ("published", "target"):
        value = values[key]
        if not isinstance(value, Scalar) or isinstance(value.value, bool) or value.value is None:
            raise Invalid(f"expected a port number, got {describe(value)}", value.line, f"{suffix}.{key}")
        numbers.append(_port_number(value.text, value.line, f"{suffix}.{key}"))
    port = PortConfig(numbers[0], numbers[1])
    protocol = values.get("protocol")
    if protocol is not None:
        text = _text_at(protocol, "tcp or udp", f"{suffix}.protocol")
        port.protocol = _protocol(text, protocol.line, f"{suffix}.protocol")
    mode = values.get("mode")
    if mode is not None:
        port.mode = _port_mode(mode, f"{suffix}.mode")
    return port


def _port_number(text: str, line: int, suffix: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise Invalid(f"port {text!r} is not a number: expected 1 to 65535", line, suffix)
    if len(text) > 5 or not 1 <= int(text) <= 65535:
        raise Invalid(f"port {text!r} is out of range: expected 1 to 65535", line, suffix)
    return int(text)


def _protocol(text: str, line: int, suffix: str) -> Literal["tcp", "udp"]:
    if text not in ("tcp", "udp"):
        raise Invalid(f"unknown protocol {text!r}: expected tcp or udp", line, suffix)
    return "udp" if text == "udp" else "tcp"


def _port_mode(node: Node, suffix: str) -> Literal["ingress", "host"]:
    text = _text_at(node, "ingress or host", suffix)
    if text not in PORT_MODES:
        raise Invalid(f"unknown port mode {text!r}: expected ingress (every node answers) or host "
                      "(only the nodes running a task)", node.line, suffix)
    return "host" if text == "host" else "ingress"


# ---- networks --------------------------------------------------------------

@dataclass(frozen=True)
class NetworkRef:
    """A service's reference to one of the manifest's networks, where it was written."""

    key: str
    aliases: tuple[str, ...]
    line: int
    suffix: str  # the field path below the service's ``networks``


def service_networks(node: Node) -> list[NetworkRef]:
    """``[front, back]`` or ``{back: {aliases: [db]}, front: null}`` (Compose's two forms)."""
    if isinstance(node, Seq):
        refs: list[NetworkRef] = []
        seen: dict[str, int] = {}
        for i, item in enumerate(node.items):
            key = _string_at(item, "a network name", f"[{i}]")
            if key in seen:
                raise Invalid(f"network {key!r} is listed twice (first at line {seen[key]})", item.line,
                              f"[{i}]")
            seen[key] = item.line
            refs.append(NetworkRef(key, (), item.line, f"[{i}]"))
        return refs
    if not isinstance(node, Map):
        raise Invalid(f"expected a list of network names or a mapping, got {describe(node)}")
    return [NetworkRef(entry.key, _service_network(entry.value, _key_suffix(entry.key)), entry.key_line,
                       _key_suffix(entry.key)) for entry in node.items]


def _service_network(node: Node, suffix: str) -> tuple[str, ...]:
    """One entry of the mapping form: null, or a mapping with ``aliases``."""
    if isinstance(node, Scalar) and node.value is None:
        return ()
    if not isinstance(node, Map):
        raise Invalid(f"expected a mapping such as {{aliases: [db]}} or nothing, got {describe(node)}",
                      node.line, suffix)
    aliases: tuple[str, ...] = ()
    for entry in node.items:
        where = field_path(suffix, entry.key)
        if entry.key in ("ipv4_address", "ipv6_address", "link_local_ips", "priority", "mac_address"):
            raise Invalid(f"{entry.key!r} is not supported by orch: the control plane gives every "
                          "task its address", entry.key_line, where)
        if entry.key not in SERVICE_NETWORK_KEYS:
            raise Invalid(unknown_key_message(entry.key, SERVICE_NETWORK_KEYS), entry.key_line, where)
        aliases = tuple(_aliases(entry.value, where))
    return aliases


def _aliases(node: Node, suffix: str) -> list[str]:
    if not isinstance(node, Seq):
        raise Invalid(f"expected a list of DNS names, got {describe(node)}", node.line, suffix)
    out: list[str] = []
    for i, item in enumerate(node.items):
        text = _string_at(item, "a DNS name", f"{suffix}[{i}]")
        try:
            netrules.check_alias(text)
        except ValueError as err:
            raise Invalid(str(err), item.line, f"{suffix}[{i}]")
        if text in out:
            raise Invalid(f"alias {text!r} is given twice", item.line, f"{suffix}[{i}]")
        out.append(text)
    return out


def subnet(node: Node, suffix: str = "") -> str:
    text = _text_at(node, "a subnet such as 10.96.5.0/24", suffix)
    try:
        return str(netrules.parse_subnet(text))
    except ValueError as err:
        raise Invalid(str(err), node.line, suffix)


def ipam_config(node: Node) -> str:
    """``[{subnet: 10.96.5.0/24}]``: the network's subnet (one IPv4 pool)."""
    if not isinstance(node, Seq):
        raise Invalid(f"expected a list such as [{{subnet: 10.96.5.0/24}}], got {describe(node)}")
    if len(node.items) != 1:
        raise Invalid(f"expected one subnet, got {len(node.items)}: an orch network has one IPv4 subnet")
    item = node.items[0]
    if not isinstance(item, Map):
        raise Invalid(f"expected a mapping such as {{subnet: 10.96.5.0/24}}, got {describe(item)}",
                      item.line, "[0]")
    found: Node | None = None
    for entry in item.items:
        if entry.key in ("ip_range", "gateway", "aux_addresses"):
            raise Invalid(f"{entry.key!r} is not supported by orch: the control plane allocates the "
                          "addresses (no gateway is needed)", entry.key_line, field_path("[0]", entry.key))
        if entry.key not in IPAM_CONFIG_KEYS:
            raise Invalid(unknown_key_message(entry.key, IPAM_CONFIG_KEYS), entry.key_line,
                          field_path("[0]", entry.key))
        found = entry.value
    if found is None:
        raise Invalid("missing required key 'subnet'", item.line, "[0]")
    return subnet(found, "[0].subnet")


# ---- placement -------------------------------------------------------------

def constraints(node: Node) -> list[str]:
    """``node.labels.K==V``, ``node.name!=X``, ...; stored in the grammar's canonical form
    (``model.constraints``): no spaces around the operator, and ``node.hostname``,
    Swarm's name for what orch calls the node name, as ``node.name``.
    """
    if not isinstance(node, Seq):
        raise Invalid(f"expected a list of constraints, got {describe(node)}")
    out = []
    for i, item in enumerate(node.items):
        text = _item_text(item, i, "a constraint string")
        try:
            out.append(str(grammar.parse_constraint(text)))
        except grammar.ConstraintError as err:
            raise Invalid(str(err), item.line, f"[{i}]")
    return out


def preferences(node: Node) -> list[str]:
    """``[{spread: node.labels.zone}]`` -> ``["node.labels.zone"]``."""
    if not isinstance(node, Seq):
        raise Invalid(f"expected a list such as [{{spread: node.labels.zone}}], got {describe(node)}")
    out = []
    for i, item in enumerate(node.items):
        if not isinstance(item, Map):
            raise Invalid(f"expected a mapping such as {{spread: node.labels.zone}}, got {describe(item)}",
                          item.line, f"[{i}]")
        for entry in item.items:
            if entry.key not in PREFERENCE_KEYS:
                raise Invalid(unknown_key_message(entry.key, PREFERENCE_KEYS), entry.key_line,
                              field_path(f"[{i}]", entry.key))
        spread = next((entry.value for entry in item.items if entry.key == "spread"), None)
        if spread is None:
            raise Invalid("missing required key 'spread'", item.line, f"[{i}]")
        label = _text_at(spread, "a node label such as node.labels.zone", f"[{i}].spread")
        try:
            grammar.spread_label(label)
        except grammar.PreferenceError as err:
            raise Invalid(str(err), spread.line, f"[{i}].spread")
        out.append(label)
    return out
