"""The node's DNS server: one thread, one selector, many containers' sockets.

Each container with DNS has a UDP socket and a TCP listening socket bound
to 127.0.0.11:53 inside its own network namespace (made there by the
supervisor, handed to the agent as fds: no DNAT, no proxy). A socket
belongs to one container, so a query's socket tells who asks, and the
answer comes from that container's scope (``ContainerScope``) and the
node's names (``NameIndex``); what the node does not know goes upstream
(``Forwarder``) or gets SERVFAIL at once without upstreams.

TCP: messages with a 2-byte length prefix (RFC 1035 4.2.2), several per
connection, answered in order; at most ``MAX_CONNECTIONS`` connections per
container, each closed after ``TCP_IDLE`` seconds without a query.

API (any thread): :meth:`DnsServer.add_container` (replaces a container's
sockets and scope: a restarted container has a new namespace),
:meth:`set_scope`, :meth:`remove_container` (its fds are closed: a socket
holds its network namespace alive), :meth:`close`. The server owns the fds
it is given from the moment it is called.
"""

from __future__ import annotations

import contextlib
import functools
import os
import selectors
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nodeagent.dns import answer
from nodeagent.dns.forward import FORWARD_TIMEOUT, Forwarder
from nodeagent.dns.index import NameIndex
from nodeagent.dns.loop import Loop, log
from nodeagent.dns.scope import ContainerScope
from nodeagent.dns.upstreams import Upstream

__all__ = ["DnsServer"]

MAX_CONNECTIONS = 16  # TCP connections per container at once
TCP_IDLE = 10.0  # seconds a TCP connection may wait for its next query
MAX_UDP_BATCH = 64  # datagrams read per wake-up, so one busy container cannot starve the rest
# The address a datagram was sent to, and the source of a reply (linux/in.h:
# IP_PKTINFO, struct in_pktinfo {int ifindex; in_addr spec_dst; in_addr addr}).
IP_PKTINFO = 8
_PKTINFO = struct.Struct("=i4s4s")
_ANCILLARY = socket.CMSG_SPACE(_PKTINFO.size)


@dataclass
class _Container:
    cid: str
    scope: ContainerScope
    udp: socket.socket | None
    tcp: socket.socket | None
    conns: set[_Conn] = field(default_factory=set)
    gone: bool = False


@dataclass(eq=False)
class _Conn:
    sock: socket.socket
    owner: _Container
    inbuf: bytearray = field(default_factory=bytearray)
    outbuf: bytearray = field(default_factory=bytearray)
    pending: int = 0  # forwarded queries not answered yet
    idle_timer: int = 0
    closed: bool = False


class DnsServer:
    def __init__(self, index: NameIndex, upstreams: list[Upstream],
                 forward_timeout: float = FORWARD_TIMEOUT) -> None:
        self.index = index
        self.loop = Loop()
        self.forwarder = Forwarder(self.loop, upstreams, forward_timeout)
        self._containers: dict[str, _Container] = {}
        self.loop.start("dns")

    # ---- API (any thread) -----------------------------------------------

    def add_container(self, cid: str, udp_fd: int | None, tcp_fd: int | None,
                      scope: ContainerScope) -> None:
        """Serve a container's sockets (either fd may be None; both are
        closed if either is not what it should be), answering from
        ``scope``; replaces what the container had."""
        try:
            udp = _adopt(udp_fd, socket.SOCK_DGRAM)
        except Exception:
            _close_fd(tcp_fd)
            raise
        try:
            tcp = _adopt(tcp_fd, socket.SOCK_STREAM)
        except Exception:
            if udp is not None:
                udp.close()
            raise
        self.loop.call_soon(lambda: self._add(_Container(cid, scope, udp, tcp)))

    def set_scope(self, cid: str, scope: ContainerScope) -> None:
        def update() -> None:
            ctr = self._containers.get(cid)
            if ctr is not None:
                ctr.scope = scope
                self.index.set_container(cid, scope)

        self.loop.call_soon(update)

    def remove_container(self, cid: str) -> None:
        self.loop.call_soon(lambda: self._remove(cid))

    def remove_all(self) -> None:
        def remove_all() -> None:
            for cid in list(self._containers):
                self._remove(cid)

        self.loop.call_soon(remove_all)

    def containers(self) -> list[str]:
        """The containers served (a snapshot, for tests and inspection)."""
        return sorted(list(self._containers))  # list(): one step under the GIL

    def close(self) -> None:
        """Stop the thread and close every socket."""
        def close_all() -> None:
            for cid in list(self._containers):
                self._remove(cid)

        self.loop.call_soon(close_all)
        self.loop.stop()
        self.loop.close()

    # ---- the loop's thread ------------------------------------------------

    # A container's names (the index) change with its sockets, here: in the
    # order its additions and removals were asked for.

    def _add(self, ctr: _Container) -> None:
        self._remove(ctr.cid)
        self._containers[ctr.cid] = ctr
        self.index.set_container(ctr.cid, ctr.scope)
        if ctr.udp is not None:
            self.loop.register(ctr.udp, selectors.EVENT_READ, lambda mask: self._on_udp(ctr))
        if ctr.tcp is not None:
            with contextlib.suppress(OSError):  # a socket already listening keeps its backlog
                ctr.tcp.listen(64)
            self.loop.register(ctr.tcp, selectors.EVENT_READ, lambda mask: self._on_accept(ctr))

    def _remove(self, cid: str) -> None:
        ctr = self._containers.pop(cid, None)
        if ctr is None:
            return
        self.index.drop_container(cid)
        ctr.gone = True
        for conn in list(ctr.conns):
            self._close_conn(conn)
        for sock in (ctr.udp, ctr.tcp):
            if sock is not None:
                self.loop.unregister(sock)
                sock.close()

    # UDP

    def _on_udp(self, ctr: _Container) -> None:
        assert ctr.udp is not None
        sock = ctr.udp
        for _ in range(MAX_UDP_BATCH):
            try:
                data, ancillary, _, peer = sock.recvmsg(answer.MAX_EDNS, _ANCILLARY)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as err:
                log.warning("dns udp receive failed", container=ctr.cid[:12], error=str(err))
                return
            self._query(ctr, data, udp=True,
                        reply=functools.partial(_sendto, sock, peer=peer, source=_destination(ancillary)))

    # TCP

    def _on_accept(self, ctr: _Container) -> None:
        assert ctr.tcp is not None
        try:
            sock, _ = ctr.tcp.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as err:
            log.warning("dns tcp accept failed", container=ctr.cid[:12], error=str(err))
            return
        if len(ctr.conns) >= MAX_CONNECTIONS:
            sock.close()
            return
        sock.setblocking(False)
        conn = _Conn(sock, ctr)
        ctr.conns.add(conn)
        self.loop.register(sock, selectors.EVENT_READ, lambda mask: self._on_conn(conn, mask))
        self._touch(conn)

    def _on_conn(self, conn: _Conn, mask: int) -> None:
        if mask & selectors.EVENT_WRITE:
            self._flush(conn)
        if conn.closed or not mask & selectors.EVENT_READ:
            return
        try:
            chunk = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._close_conn(conn)
            return
        conn.inbuf += chunk
        while len(conn.inbuf) >= 2 and not conn.closed:
            (length,) = struct.unpack("!H", conn.inbuf[:2])
            if len(conn.inbuf) - 2 < length:
                break
            data = bytes(conn.inbuf[2:2 + length])
            del conn.inbuf[:2 + length]
            self._touch(conn)
            self._query(conn.owner, data, udp=False, reply=functools.partial(self._tcp_reply, conn),
                        conn=conn)

    def _tcp_reply(self, conn: _Conn, out: bytes) -> None:
        if conn.closed:
            return
        conn.outbuf += struct.pack("!H", len(out)) + out
        self._flush(conn)

    def _flush(self, conn: _Conn) -> None:
        try:
            sent = conn.sock.send(conn.outbuf) if conn.outbuf else 0
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self._close_conn(conn)
            return
        del conn.outbuf[:sent]
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if conn.outbuf else 0)
        self.loop.modify(conn.sock, events, lambda mask: self._on_conn(conn, mask))

    def _touch(self, conn: _Conn) -> None:
        self.loop.cancel(conn.idle_timer)
        conn.idle_timer = self.loop.after(TCP_IDLE, lambda: self._idle(conn))

    def _idle(self, conn: _Conn) -> None:
        conn.idle_timer = 0
        if conn.pending or conn.outbuf:
            self._touch(conn)  # still answering: not idle
        else:
            self._close_conn(conn)

    def _close_conn(self, conn: _Conn) -> None:
        if conn.closed:
            return
        conn.closed = True
        self.loop.cancel(conn.idle_timer)
        conn.owner.conns.discard(conn)
        self.loop.unregister(conn.sock)
        conn.sock.close()

    # queries

    def _query(self, ctr: _Container, data: bytes, udp: bool, reply: Callable[[bytes], None],
               conn: _Conn | None = None) -> None:
        verdict = answer.respond(self.index, ctr.scope, data, udp)
        if verdict.reply is not None:
            reply(verdict.reply)
            return
        if not verdict.forward or verdict.query is None:
            return
        query = verdict.query
        if conn is not None:
            conn.pending += 1

        def done(upstream: bytes | None) -> None:
            if conn is not None:
                conn.pending -= 1
            if ctr.gone:
                return
            if upstream is None:
                reply(answer.servfail(query))
            else:
                reply(answer.truncate_for_udp(query, upstream) if udp else upstream)

        self.forwarder.forward(data, done)


def _destination(ancillary: list[tuple[int, int, bytes]]) -> bytes | None:
    """The address a datagram was sent to (IP_PKTINFO), packed; None if not given."""
    for level, kind, data in ancillary:
        if level == socket.SOL_IP and kind == IP_PKTINFO and len(data) >= _PKTINFO.size:
            return _PKTINFO.unpack_from(data)[2]
    return None


def _sendto(sock: socket.socket, data: bytes, peer: Any, source: bytes | None) -> None:
    """Reply from the address the query was sent to: the socket was bound
    (IP_FREEBIND) before the container's loopback was up, and the kernel
    would otherwise pick 127.0.0.1, which a client that connected its
    socket (busybox, musl) never accepts as the answer."""
    ancillary = [] if source is None else [(socket.SOL_IP, IP_PKTINFO, _PKTINFO.pack(0, source, source))]
    with contextlib.suppress(OSError):  # UDP: a reply that cannot go is lost, as on the wire
        sock.sendmsg([data], ancillary, 0, peer)


def _close_fd(fd: int | None) -> None:
    if fd is not None and fd >= 0:
        with contextlib.suppress(OSError):
            os.close(fd)


def _adopt(fd: int | None, kind: int) -> socket.socket | None:
    """A socket object owning ``fd``, non-blocking; its family from the fd."""
    if fd is None or fd < 0:
        return None
    sock = socket.socket(fileno=fd)
    if sock.type != kind:
        sock.close()
        raise ValueError(f"fd {fd} is not a {'UDP' if kind == socket.SOCK_DGRAM else 'TCP'} socket")
    sock.setblocking(False)
    if kind == socket.SOCK_DGRAM and sock.family == socket.AF_INET:
        sock.setsockopt(socket.SOL_IP, IP_PKTINFO, 1)
    return sock
