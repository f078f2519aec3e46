"""Framing between the agent and the supervisor: JSON objects, one per line.

Requests:  ``{"rid": 7, "op": "start", "args": {...}}``
Responses: ``{"rid": 7, "ok": true, "result": ...}`` or
           ``{"rid": 7, "ok": false, "error": {"code": ..., "message": ...}}``
Events:    ``{"event": "exited", "data": {...}}`` (pushed to subscribers)

A message may carry file descriptors (SCM_RIGHTS); it then says how many in
``"nfds"`` and the receiver takes that many from the fds that arrived with it.
"""

from __future__ import annotations

import json
import socket
from typing import Any

MAX_FDS = 8


def encode(msg: dict[str, Any]) -> bytes:
    return json.dumps(msg, separators=(",", ":")).encode() + b"\n"


def send(sock: socket.socket, msg: dict[str, Any], fds: list[int] | None = None) -> None:
    data = encode({**msg, "nfds": len(fds)} if fds else msg)
    if fds:
        sent = socket.send_fds(sock, [data], fds)
        data = data[sent:]
    if data:
        sock.sendall(data)


class Reader:
    """Splits a byte stream into JSON messages, pairing them with their fds."""

    def __init__(self) -> None:
        self._buf = b""
        self._fds: list[int] = []

    def feed(self, data: bytes, fds: list[int]) -> list[tuple[dict[str, Any], list[int]]]:
        self._buf += data
        self._fds.extend(fds)
        out: list[tuple[dict[str, Any], list[int]]] = []
        while True:
            line, sep, rest = self._buf.partition(b"\n")
            if not sep:
                return out
            self._buf = rest
            msg = json.loads(line)
            n = int(msg.pop("nfds", 0))
            taken, self._fds = self._fds[:n], self._fds[n:]
            out.append((msg, taken))


def recv(sock: socket.socket, reader: Reader) -> list[tuple[dict[str, Any], list[int]]] | None:
    """Read what is available; ``None`` at EOF."""
    data, fds, _flags, _addr = socket.recv_fds(sock, 65536, MAX_FDS)
    if not data and not fds:
        return None
    return reader.feed(data, list(fds))
