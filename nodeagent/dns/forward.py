"""Queries this node does not know, sent on to its upstream resolvers.

From the agent's network namespace (the node's), never a container's. Each
forwarded query gets a socket of its own (a fresh source port, so a reply
is matched by its socket, then checked: same id, a response, the same
question). Per query: UDP to the first upstream with a short timeout, then
once more to the next one (the same one when there is only one): at most
two attempts in all, so the asker hears SERVFAIL well before its own
resolver gives up (glibc waits 5 s). A truncated UDP answer is asked again
over TCP of the same upstream. A refused or failed attempt moves on at
once. At most ``MAX_IN_FLIGHT`` queries are out at a time; beyond that a
query fails at once (SERVFAIL), so a flood cannot exhaust the agent's fds.

Runs on the DNS loop's thread only.
"""

from __future__ import annotations

import contextlib
import errno
import selectors
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from nodeagent.dns.loop import Loop
from nodeagent.dns.upstreams import Upstream

__all__ = ["ATTEMPTS", "FORWARD_TIMEOUT", "Forwarder"]

FORWARD_TIMEOUT = 2.0  # seconds per attempt
ATTEMPTS = 2
MAX_IN_FLIGHT = 512
MAX_TCP_REPLY = 65535

Done = Callable[[bytes | None], None]  # the upstream's answer, or None: SERVFAIL


@dataclass
class _Query:
    data: bytes
    done: Done
    attempt: int = 0
    sock: socket.socket | None = None
    timer: int = 0
    tcp: bool = False
    buf: bytearray = field(default_factory=bytearray)
    finished: bool = False


class Forwarder:
    def __init__(self, loop: Loop, upstreams: list[Upstream], timeout: float = FORWARD_TIMEOUT) -> None:
        self.loop = loop
        self.upstreams = list(upstreams)
        self.timeout = timeout
        self.in_flight = 0

    def forward(self, data: bytes, done: Done) -> None:
        """Ask upstream; ``done`` hears the answer or None (no upstream, all
        attempts failed), exactly once, on the loop's thread (maybe at once)."""
        if not self.upstreams or self.in_flight >= MAX_IN_FLIGHT or len(data) < 12:
            done(None)
            return
        self.in_flight += 1
        self._attempt(_Query(data, done))

    def _upstream(self, q: _Query) -> Upstream:
        return self.upstreams[q.attempt % len(self.upstreams)]

    def _attempt(self, q: _Query) -> None:
        up = self._upstream(q)
        q.tcp = False
        try:
            sock = socket.socket(_family(up), socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        except OSError:
            self._finish(q, None)
            return
        q.sock = sock
        try:
            sock.connect((up.host, up.port))
            sock.send(q.data)
        except OSError:
            self._failed(q)
            return
        self.loop.register(sock, selectors.EVENT_READ, lambda mask: self._on_udp(q))
        q.timer = self.loop.after(self.timeout, lambda: self._failed(q))

    def _on_udp(self, q: _Query) -> None:
        assert q.sock is not None
        try:
            reply = q.sock.recv(65535)
        except BlockingIOError:
            return
        except OSError:  # ICMP port unreachable: ECONNREFUSED
            self._failed(q)
            return
        if not _matches(q.data, reply):
            return  # not the answer: keep waiting for it until the timeout
        if reply[2] & 0x02:  # TC: ask again over TCP
            self._tcp(q)
            return
        self._finish(q, reply)

    def _tcp(self, q: _Query) -> None:
        self._close(q)
        up = self._upstream(q)
        q.tcp = True
        try:
            sock = socket.socket(_family(up), socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        except OSError:
            self._finish(q, None)
            return
        q.sock = sock
        code = sock.connect_ex((up.host, up.port))
        if code not in (0, errno.EINPROGRESS):
            self._failed(q)
            return
        self.loop.register(sock, selectors.EVENT_WRITE, lambda mask: self._on_connected(q))
        q.timer = self.loop.after(self.timeout, lambda: self._failed(q))

    def _on_connected(self, q: _Query) -> None:
        assert q.sock is not None
        if q.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
            self._failed(q)
            return
        try:
            # A query is small: it fits in an empty socket buffer at once.
            q.sock.sendall(struct.pack("!H", len(q.data)) + q.data)
        except OSError:
            self._failed(q)
            return
        self.loop.modify(q.sock, selectors.EVENT_READ, lambda mask: self._on_tcp_data(q))

    def _on_tcp_data(self, q: _Query) -> None:
        assert q.sock is not None
        try:
            chunk = q.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            self._failed(q)
            return
        if not chunk:
            self._failed(q)
            return
        q.buf += chunk
        if len(q.buf) < 2:
            return
        (length,) = struct.unpack("!H", q.buf[:2])
        if len(q.buf) - 2 < length:
            return
        reply = bytes(q.buf[2:2 + length])
        if _matches(q.data, reply):
            self._finish(q, reply)
        else:
            self._failed(q)

    def _failed(self, q: _Query) -> None:
        if q.finished:
            return
        self._close(q)
        q.attempt += 1
        if q.attempt >= ATTEMPTS:
            self._finish(q, None)
            return
        q.buf.clear()
        self._attempt(q)

    def _finish(self, q: _Query, reply: bytes | None) -> None:
        if q.finished:
            return
        q.finished = True
        self._close(q)
        self.in_flight -= 1
        q.done(reply)

    def _close(self, q: _Query) -> None:
        self.loop.cancel(q.timer)
        q.timer = 0
        if q.sock is not None:
            self.loop.unregister(q.sock)
            with contextlib.suppress(OSError):
                q.sock.close()
            q.sock = None


def _family(up: Upstream) -> int:
    return socket.AF_INET6 if ":" in up.host else socket.AF_INET


def _matches(query: bytes, reply: bytes) -> bool:
    """``reply`` answers ``query``: same id, QR set, same question (its
    bytes: the name compared without case, type and class exactly)."""
    if len(reply) < 12 or reply[:2] != query[:2] or not reply[2] & 0x80:
        return False
    end = _question_end(query)
    if end is None:
        return False
    if reply[4:6] != query[4:6]:  # QDCOUNT
        return False
    return reply[12:end].lower() == query[12:end].lower()


def _question_end(msg: bytes) -> int | None:
    """Where the first question of ``msg`` ends (its name is never
    compressed in a query); None if it cannot be read."""
    if len(msg) < 12 or struct.unpack("!H", msg[4:6])[0] < 1:
        return None
    i = 12
    while i < len(msg):
        n = msg[i]
        if n == 0:
            end = i + 1 + 4
            return end if end <= len(msg) else None
        if n & 0xC0:
            return None
        i += 1 + n
    return None
