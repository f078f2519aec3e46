"""Liveness beacons: a node's "still here" as a sealed UDP datagram.

Why not only the session stream's heartbeats: the stream is TCP, and once a
link drops packets TCP backs off its retransmissions (200 ms, doubling), so
after a 1 s blip the next heartbeat arrives about 1.4 s after the blip began
and may queue behind others. A control plane that must tell a blip from a
dead link then needs a grace period of ~3 s, and a partitioned node's tasks
wait that long to move. A datagram is never retransmitted: the first one
sent after the link is back arrives within one interval. With a beacon every
``INTERVAL`` (0.1 s) the grace period is 1.5 s (``NodeMonitor``) and a 1 s
blip still flaps nothing.

The datagram, sealed with the session's key (32 random bytes the control
plane gives the node in ``Registered``, over the mutual-TLS stream)::

    b"OB1" | len(node_id) (1 byte) | node_id | seq (8 bytes, big endian)
          | HMAC-SHA256(key, everything before)[:16]

A datagram without the key is dropped (``opened``), and so is a replay: the
receiver keeps the highest ``seq`` of each session and takes only higher
ones. The key lives as long as the session; a new session, a new key. The
stream's heartbeats go on (every 0.5 s): a control plane that serves no
beacon port (``beacon_port`` 0) still sees the node.

Pure format plus a sender thread: no control-plane code here.
"""

from __future__ import annotations

import hashlib
import hmac
import socket
import struct
import threading

__all__ = ["INTERVAL", "KEY_BYTES", "Sender", "opened", "sealed"]

INTERVAL = 0.1  # seconds between a node's beacons
KEY_BYTES = 32
_MAGIC = b"OB1"
_MAC = 16
_SEQ = struct.Struct(">Q")
MAX_DATAGRAM = len(_MAGIC) + 1 + 255 + _SEQ.size + _MAC


def sealed(key: bytes, node_id: str, seq: int) -> bytes:
    """The datagram saying ``node_id`` is alive, the ``seq``-th of its session."""
    ident = node_id.encode()
    if not 0 < len(ident) < 256:
        raise ValueError(f"a node id of {len(ident)} bytes does not fit a beacon")
    body = _MAGIC + bytes([len(ident)]) + ident + _SEQ.pack(seq)
    return body + hmac.new(key, body, hashlib.sha256).digest()[:_MAC]


def parsed(data: bytes) -> tuple[str, int, bytes, bytes] | None:
    """(node id, seq, body, mac) of a well-formed datagram, else None.
    Not yet authentic: the receiver checks the mac with the node's key
    (``opened``)."""
    if len(data) < len(_MAGIC) + 1 + _SEQ.size + _MAC or not data.startswith(_MAGIC):
        return None
    n = data[len(_MAGIC)]
    end = len(_MAGIC) + 1 + n
    if len(data) != end + _SEQ.size + _MAC:
        return None
    try:
        node_id = data[len(_MAGIC) + 1:end].decode()
    except UnicodeDecodeError:
        return None
    (seq,) = _SEQ.unpack_from(data, end)
    return node_id, seq, data[:-_MAC], data[-_MAC:]


def opened(key: bytes, body: bytes, mac: bytes) -> bool:
    """Whether ``mac`` seals ``body`` under ``key`` (constant time)."""
    return hmac.compare_digest(hmac.new(key, body, hashlib.sha256).digest()[:_MAC], mac)


class Sender:
    """Sends ``node_id``'s beacons to ``(host, port)`` every ``interval``
    until ``stop``; a send that fails (no route during a partition) is
    skipped, as a lost datagram would be."""

    def __init__(self, host: str, port: int, key: bytes, node_id: str,
                 interval: float = INTERVAL) -> None:
        self.target = (host, port)
        self.key = key
        self.node_id = node_id
        self.interval = interval if interval > 0 else INTERVAL
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="beacon", daemon=True)

    def start(self) -> Sender:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        try:  # a name is looked up once, not per datagram
            family, _, _, _, address = socket.getaddrinfo(*self.target, type=socket.SOCK_DGRAM)[0]
        except OSError:
            return  # no beacons: the stream's heartbeats still count
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            # Connected: it takes datagrams from the control plane's address
            # only, so it is no open port on the node (`ss -l` lists none).
            try:
                sock.connect(address)
            except OSError:
                return
            seq = 0
            while not self._stop.is_set():
                seq += 1
                try:
                    sock.send(sealed(self.key, self.node_id, seq))
                except OSError:  # unreachable for now (a partition), or refused: as a lost datagram
                    pass
                self._stop.wait(self.interval)
