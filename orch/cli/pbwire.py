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


def decode_fields(data: bytes) -> dict[int, list[Any]]:
    """Field number -> values: ints for varints, bytes for everything else."""
    out: dict[int, list[Any]] = {}
    pos, end = 0, len(data)
    while pos < end:
        key, pos = read_varint(data, pos)
        wire = key & 7
        value: Any
        if wire == 0:
            value, pos = read_varint(data, pos)
        elif wire == 2:
            length, pos = read_varint(data, pos)
            value, pos = data[pos:pos + length], pos + length
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, pos = data[pos:pos + size], pos + size
        else:
            raise WireError(f"unsupported wire type {wire}")
        if pos > end:
            raise WireError("message ends inside a field")
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

def encode_deploy_request(services_json: list[str], manifest: str = "",
                          manifest_path: str = "") -> bytes:
    """``DeployRequest``."""
    out = b"".join(field_string(1, j) for j in services_json)
    if manifest:
        out += field_string(2, manifest)
    if manifest_path:
        out += field_string(3, manifest_path)
    return out


def decode_deploy_response(data: bytes) -> list[str]:
    """``DeployResponse``: the names of the services, in order."""
    return [text_value(decode_fields(body), 2) for body in messages(data, 1)]


def encode_events_request(services: list[str], initial: bool, keepalive: float) -> bytes:
    """``EventsRequest``."""
    return (b"".join(field_string(1, s) for s in services) + field_int(2, int(initial))
            + (field_double(3, keepalive) if keepalive else b""))


def decode_event_batch(data: bytes) -> list[tuple[str, str, str, str, int]]:
    """``EventBatch``: each event as :func:`decode_cluster_event` gives it."""
    return [decode_cluster_event(body) for body in messages(data, 1)]


def decode_cluster_event(data: bytes) -> tuple[str, str, str, str, int]:
    """``Event``: kind, action, id, json, version."""
    f = decode_fields(data)
    return (text_value(f, 1), text_value(f, 2), text_value(f, 3), text_value(f, 4),
            int64(last_value(f, 5, int, 0)))
