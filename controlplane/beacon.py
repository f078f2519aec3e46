"""The control plane's ear for liveness beacons (``common.beacon``).

One UDP socket per ``--listen`` host, all on one port (the first listen
address's: ``port``), read by one thread. Each node session opens a key
(``open``) that its ``Registered`` message carries to the node; a datagram
counts only if it is sealed with the key of the node it names and its
sequence number is above the last one taken (no replays), and only while
that session lasts (``close``). Each one taken is handed to ``on_beat``
with the node's id: the dispatcher records it as a heartbeat.

The port is TCP's API port, as UDP: one number for a firewall to open.
"""

from __future__ import annotations

import contextlib
import secrets
import selectors
import socket
import threading
from collections.abc import Callable

import structlog

from common.beacon import KEY_BYTES, MAX_DATAGRAM, opened, parsed

_log = structlog.get_logger("orch.beacon")


class BeaconError(RuntimeError):
    """A beacon socket could not be bound."""


class BeaconListener:
    def __init__(self, hosts: list[str], port: int, on_beat: Callable[[str], None]) -> None:
        self.port = port
        self.on_beat = on_beat
        self._keys: dict[str, list[bytes | int]] = {}  # node id -> [key, last seq]
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sel = selectors.DefaultSelector()
        self._socks: list[socket.socket] = []
        try:
            for host in dict.fromkeys(hosts):
                family = socket.AF_INET6 if ":" in host else socket.AF_INET
                sock = socket.socket(family, socket.SOCK_DGRAM)
                self._socks.append(sock)
                sock.bind((host.strip("[]"), port))
                sock.setblocking(False)
                self._sel.register(sock, selectors.EVENT_READ)
        except OSError as err:
            self.close_all()
            raise BeaconError(f"cannot listen for beacons on UDP port {port}: {err.strerror}") from err
        self._thread = threading.Thread(target=self._run, name="beacon", daemon=True)

    def start(self) -> BeaconListener:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        self.close_all()

    def close_all(self) -> None:
        for sock in self._socks:
            with contextlib.suppress(Exception):
                self._sel.unregister(sock)
            sock.close()
        self._socks = []

    def open(self, node_id: str) -> bytes:
        """A new key for ``node_id``'s session (any older session's is void)."""
        key = secrets.token_bytes(KEY_BYTES)
        with self._lock:
            self._keys[node_id] = [key, 0]
        return key

    def close(self, node_id: str, key: bytes) -> None:
        """The session that opened ``key`` ended: its beacons no longer count."""
        with self._lock:
            entry = self._keys.get(node_id)
            if entry is not None and entry[0] == key:
                del self._keys[node_id]

    def take(self, data: bytes) -> str | None:
        """The node a datagram proves alive, or None (malformed, unknown,
        forged or replayed)."""
        fields = parsed(data)
        if fields is None:
            return None
        node_id, seq, body, mac = fields
        with self._lock:
            entry = self._keys.get(node_id)
            if entry is None:
                return None
            key, last = entry
            assert isinstance(key, bytes) and isinstance(last, int)
            if seq <= last or not opened(key, body, mac):
                return None
            entry[1] = seq
        return node_id

    def _run(self) -> None:
        while not self._stop.is_set():
            for event, _ in self._sel.select(timeout=0.5):
                sock = event.fileobj
                assert isinstance(sock, socket.socket)
                while True:
                    try:
                        data = sock.recv(MAX_DATAGRAM + 1)
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:
                        break
                    node_id = self.take(data)
                    if node_id is not None:
                        try:
                            self.on_beat(node_id)
                        except Exception as err:  # never let one beat end the ear
                            _log.warning("beacon not recorded", node_id=node_id, error=str(err))
