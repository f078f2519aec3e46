"""Liveness beacons for many simulated nodes from one UDP socket.

A real node sends its beacons from a thread of its own (``common.beacon.Sender``);
a simulation of thousands cannot. ``BeaconHub`` sends every registered
node's datagram (``common.beacon.sealed``, with the key its session got)
every ``interval`` from one socket, on the event loop. The control plane's
listener checks the node's key and sequence, not the sender's address.

Optional (``--beacons``): the stream's heartbeats alone keep a node up, and
at 10 datagrams a second a node, beacons cost a simulation of thousands
more CPU than everything else it does at rest.
"""

from __future__ import annotations

import asyncio
import socket

from common.beacon import INTERVAL, sealed

__all__ = ["BeaconHub"]


class BeaconHub:
    def __init__(self) -> None:
        self._nodes: dict[str, tuple[tuple[str, int], bytes]] = {}  # node id -> (address, key)
        self._seq: dict[str, int] = {}
        self._sock: socket.socket | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.interval = INTERVAL
        self.sent = 0

    def add(self, node_id: str, target: str, port: int, key: bytes, interval: float) -> None:
        """Send ``node_id``'s beacons, sealed with ``key``, to ``target``'s host on ``port``."""
        host = target.rpartition(":")[0].strip("[]")
        self._nodes[node_id] = ((host, port), key)
        self._seq[node_id] = 0
        if interval > 0:
            self.interval = min(self.interval, interval)
        if self._timer is None:
            self._tick()

    def remove(self, node_id: str) -> None:
        self._nodes.pop(node_id, None)
        self._seq.pop(node_id, None)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _tick(self) -> None:
        if self._sock is None:
            self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self._sock.setblocking(False)
        for node_id, (address, key) in self._nodes.items():
            seq = self._seq[node_id] = self._seq[node_id] + 1
            try:
                self._sock.sendto(sealed(key, node_id, seq), address)
                self.sent += 1
            except OSError:  # a full buffer or no route: as a lost datagram
                pass
        self._timer = asyncio.get_running_loop().call_later(self.interval, self._tick)
