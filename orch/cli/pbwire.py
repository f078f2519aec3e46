"""Protobuf wire format, written and read by hand (no protobuf import).

For the CLI's hot paths (``orch run``, ``orch deploy``): importing protobuf
and the generated classes costs more than the whole call. Tests check every
message written or read here against the generated classes.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative int64/int32: two's complement, ten bytes
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def field_bytes(num: int, data: bytes) -> bytes:
    return varint(num << 3 | 2) + varint(len(data)) + data


def field_string(num: int, text: str) -> bytes:
    return field_bytes(num, text.encode())


def field_int(num: int, n: int) -> bytes:
    return varint(num << 3) + varint(n) if n else b""


def field_double(num: int, x: float) -> bytes:
    import struct  # only --cpus needs it

    return varint(num << 3 | 1) + struct.pack("<d", x)


class WireError(ValueError):
    """A message that is not valid protobuf wire format."""


def decode_fields(data: bytes, keep: frozenset[int] | None = None) -> dict[int, list[Any]]:
    """Field number -> values: ints for varints, bytes for everything else.
    With ``keep``, other fields are skipped without being copied (a task's
    spec, say, is most of its bytes and of no use to a rollout)."""
    out: dict[int, list[Any]] = {}
    pos, end = 0, len(data)
    while pos < end:
        key = data[pos]  # one-byte keys and lengths are the rule: read them inline
        if key < 0x80:
            pos += 1
        else:
            key, pos = read_varint(data, pos)
        wire = key & 7
        value: Any
        if wire == 0:
            value = data[pos] if pos < end else 0x80
            if value < 0x80:
                pos += 1
            else:
                value, pos = read_varint(data, pos)
        elif wire == 2:
            length = data[pos] if pos < end else 0x80
            if length < 0x80:
                pos += 1
            else:
                length, pos = read_varint(data, pos)
            value, pos = data[pos:pos + length] if keep is None or key >> 3 in keep else None, pos + length
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, pos = data[pos:pos + size], pos + size
        else:
            raise WireError(f"unsupported wire type {wire}")
        if pos > end:
            raise WireError("message ends inside a field")
        if keep is None or key >> 3 in keep:
            out.setdefault(key >> 3, []).append(value)
    return out


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise WireError("bad varint")
        byte = data[pos]
        pos += 1
        n |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return n, pos


def last_value(fields: dict[int, list[Any]], num: int, kind: type, default: Any) -> Any:
    values = fields.get(num)
    if not values:
        return default
    if not isinstance(values[-1], kind):
        raise WireError(f"field {num} has the wrong wire type")
    return values[-1]


def text_value(fields: dict[int, list[Any]], num: int) -> str:
    return str(last_value(fields, num, bytes, b"").decode(errors="replace"))


def messages(data: bytes, num: int) -> list[bytes]:
    """The embedded messages of repeated field ``num``."""
    out = decode_fields(data).get(num, [])
    if not all(isinstance(body, bytes) for body in out):
        raise WireError(f"field {num} is not a message")
    return out


def int32(n: int) -> int:
    n &= 0xFFFFFFFF
    return n - (1 << 32) if n >= 1 << 31 else n


def int64(n: int) -> int:
    return n - (1 << 64) if n >= 1 << 63 else n


# ---- proto/cluster.proto: what `orch deploy` sends and reads ----------------
# The enums' words by wire number (proto/cluster.proto's names, lower case,
# "_" as "-" as in model.objects); tests check them against the generated enums.
TASK_STATES = ("new", "pending", "assigned", "preparing", "starting", "running", "complete",
               "failed", "shutdown", "rejected", "orphaned")
SERVICE_MODES = ("replicated", "global")
EVENT_ACTIONS = ("unspecified", "put", "delete", "synced", "keepalive")
# Defaults of the optional fields (proto/cluster.proto says them too).
DEFAULT_REPLICAS = 1
DEFAULT_PARALLELISM = 1  # UpdateConfig.parallelism when unset
DEFAULT_DESIRED_STATE = "running"


def _word(words: tuple[str, ...], number: int) -> str:
    """The enum word for ``number``; one from a newer peer reads as "unknown-N"."""
    return words[number] if 0 <= number < len(words) else f"unknown-{number}"


class _Record:
    """A few fields of a message, by name (a plain class: dataclasses and
    NamedTuple would load modules the deploy path does without)."""

    __slots__: tuple[str, ...] = ()

    def __init__(self, **values: Any) -> None:
        for name in self.__slots__:
            setattr(self, name, values.pop(name))
        if values:
            raise TypeError(f"unexpected fields: {', '.join(values)}")

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self._values() == other._values()  # type: ignore[attr-defined]

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        fields = ", ".join(f"{n}={v!r}" for n, v in zip(self.__slots__, self._values(), strict=True))
        return f"{type(self).__name__}({fields})"


class ServiceSummary(_Record):
    """What a rollout needs of a ``Service``."""

    __slots__ = ("failed", "id", "message", "mode", "name", "parallelism", "replicas", "revision", "rollout",
                 "started", "total", "updated", "version")
    id: str
    name: str
    mode: str  # one of SERVICE_MODES
    replicas: int
    version: int
    revision: int
    # Its rollout (UpdateStatus): the state ("" if it never had one), when it
    # started (the raw double: compared, never read), its counts and message,
    # and the parallelism of the config it follows.
    rollout: str
    started: bytes
    updated: int
    total: int
    failed: int
    message: str
    parallelism: int


class TaskSummary(_Record):
    """What a rollout needs of a ``Task``; states are TASK_STATES words."""

    __slots__ = ("desired_state", "error", "health", "id", "message", "service_name", "slot", "state",
                 "version")
    id: str
    service_name: str
    slot: int
    desired_state: str
    state: str
    message: str
    error: str
    version: int
    health: str  # "" (no check), "starting", "healthy", "unhealthy"


# SecretKind's words by wire number.
SECRET_KINDS = ("secret", "config")


def encode_deploy_request(manifest: str = "", manifest_path: str = "",
                          services: list[bytes] | None = None, stack: str = "",
                          files: list[tuple[str, str, bytes]] | None = None,
                          profiles: list[str] | None = None,
                          env_files: list[tuple[str, bytes]] | None = None,
                          built: dict[str, str] | None = None) -> bytes:
    """``DeployRequest``: a manifest (and the stack's name when it has none),
    or ``services`` (each a serialized ``ServiceSpec``); ``files``: the
    values of the manifest's secrets and configs, as (kind, key, data);
    ``profiles`` to activate; ``env_files``: (path as written, variables);
    ``built``: `orch deploy --build`'s pinned image of each service."""
    out = b"".join(field_bytes(1, spec) for spec in services or ())
    if manifest:
        out += field_string(2, manifest)
    if manifest_path:
        out += field_string(3, manifest_path)
    if stack:
        out += field_string(4, stack)
    for kind, key, data in files or ():
        body = field_int(1, SECRET_KINDS.index(kind)) + field_string(2, key)
        out += field_bytes(5, body + (field_bytes(3, data) if data else b""))
    for name in profiles or ():
        out += field_string(6, name)
    for path, data in env_files or ():
        out += field_bytes(5, (field_bytes(3, data) if data else b"") + field_string(4, path))
    for service, image in (built or {}).items():  # a map: entries of (key 1, value 2)
        out += field_bytes(7, field_string(1, service) + field_string(2, image))
    return out


def decode_deploy_response(data: bytes) -> list[ServiceSummary]:
    """``DeployResponse``: the services as written, in order."""
    return [decode_service(body) for body in messages(data, 1)]


def encode_events_request(services: list[str], initial: bool, keepalive: float) -> bytes:
    """``EventsRequest``."""
    return (b"".join(field_string(1, s) for s in services) + field_int(2, int(initial))
            + (field_double(3, keepalive) if keepalive else b""))


def decode_event_batch(data: bytes) -> list[tuple[str, str, ServiceSummary | TaskSummary | None]]:
    """``EventBatch``: each event as :func:`decode_cluster_event` gives it."""
    return [decode_cluster_event(body) for body in messages(data, 1)]


def decode_cluster_event(data: bytes) -> tuple[str, str, ServiceSummary | TaskSummary | None]:
    """``Event``: its action, its object's kind ("service", "task", "node" or
    "" for none) and the object (None for a node: a rollout has no use for it)."""
    f = decode_fields(data)
    action = _word(EVENT_ACTIONS, last_value(f, 1, int, 0))
    if 3 in f:
        return action, "task", decode_task(last_value(f, 3, bytes, b""))
    if 2 in f:
        return action, "service", decode_service(last_value(f, 2, bytes, b""))
    return action, "node" if 4 in f else "", None


_SERVICE_FIELDS = frozenset({1, 2, 5, 7, 10})  # not 9: the history's specs
_SPEC_FIELDS = frozenset({1, 8, 9, 20, 21})


def decode_service(data: bytes) -> ServiceSummary:
    """``Service``, as much as a rollout needs."""
    f = decode_fields(data, _SERVICE_FIELDS)
    spec = decode_fields(last_value(f, 2, bytes, b""), _SPEC_FIELDS)
    status = decode_fields(last_value(f, 10, bytes, b""))
    rollout = text_value(status, 1)
    config = decode_fields(last_value(spec, 21 if rollout.startswith("rollback") else 20, bytes, b""))
    return ServiceSummary(id=text_value(f, 1), name=text_value(spec, 1),
                          mode=_word(SERVICE_MODES, last_value(spec, 8, int, 0)),
                          replicas=int64(last_value(spec, 9, int, DEFAULT_REPLICAS)),
                          version=int64(last_value(f, 5, int, 0)), revision=int64(last_value(f, 7, int, 1)),
                          rollout=rollout, started=last_value(status, 2, bytes, b""),
                          updated=int64(last_value(status, 6, int, 0)),
                          total=int64(last_value(status, 5, int, 0)), failed=len(status.get(7, [])),
                          message=text_value(status, 4),
                          parallelism=int64(last_value(config, 1, int, DEFAULT_PARALLELISM)))


_TASK_FIELDS = frozenset({1, 3, 4, 7, 8, 11})  # not 5: the spec
_STATUS_FIELDS = frozenset({1, 2, 3, 7})


def decode_task(data: bytes) -> TaskSummary:
    """``Task``, as much as a rollout needs (its spec is skipped)."""
    f = decode_fields(data, _TASK_FIELDS)
    status = decode_fields(last_value(f, 8, bytes, b""), _STATUS_FIELDS)
    desired = last_value(f, 7, int, None)
    return TaskSummary(id=text_value(f, 1), service_name=text_value(f, 3),
                       slot=int64(last_value(f, 4, int, 0)),
                       desired_state=DEFAULT_DESIRED_STATE if desired is None
                       else _word(TASK_STATES, desired),
                       state=_word(TASK_STATES, last_value(status, 1, int, 0)),
                       message=text_value(status, 2), error=text_value(status, 3),
                       version=int64(last_value(f, 11, int, 0)), health=text_value(status, 7))
