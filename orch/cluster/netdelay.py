"""A slow link without netem: what ``tc netem delay D loss P`` does, in user space.

Kernels built without the netem qdisc still have netfilter's packet queue:
an NFQUEUE rule in a node's network namespace hands every packet crossing
its ``eth0`` (both ways) to a process bound to that queue, which holds it for
the delay and then accepts it, or drops it with the loss rate. The delay is
fixed, so packets leave in the order they came.

Invariants:
- the rules carry ``--queue-bypass`` and the queue is bound fail-open: with
  the process gone (killed, crashed) or its queue full, packets pass
  undelayed; a dead delayer never cuts a node off;
- the process runs in the node's namespace (a netfilter queue belongs to
  one) and its argv names the cluster's run dir, so ``orch down``'s sweep
  finds it even if nothing else does;
- on SIGTERM it accepts what it holds before it exits: healing loses nothing.

The wire format is nfnetlink_queue's (linux/netfilter/nfnetlink_queue.h).
"""

from __future__ import annotations

import collections
import os
import random
import select
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Callable

QUEUE = 7711  # the queue number in the node's namespace (one queue per namespace)
DEVICE = "eth0"  # the node's end of its link
_COMMENT = "orch-chaos-slow"
_RULES = (("PREROUTING", "-i"), ("POSTROUTING", "-o"))

NETLINK_NETFILTER = 12
SOL_NETLINK = 270
NETLINK_NO_ENOBUFS = 5
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT, NFQNL_MSG_CONFIG = 0, 1, 2
NFQA_PACKET_HDR, NFQA_VERDICT_HDR = 1, 2
NFQA_CFG_CMD, NFQA_CFG_PARAMS, NFQA_CFG_QUEUE_MAXLEN, NFQA_CFG_MASK, NFQA_CFG_FLAGS = 1, 2, 3, 4, 5
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_META = 1
NFQA_CFG_F_FAIL_OPEN = 1
NF_DROP, NF_ACCEPT = 0, 1
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NLMSG_ERROR = 2
MAX_HELD = 20000  # packets held at once; beyond, the kernel lets them pass (fail-open)


class DelayError(Exception):
    """The queue or its rules could not be set up: one line for the user."""


# ---- the rules ---------------------------------------------------------------------

def _iptables(netns_path: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["nsenter", f"--net={netns_path}", "--", "iptables", "-w", "-t", "mangle", *args],
                          capture_output=True, text=True)


def _rule(chain: str, flag: str) -> list[str]:
    return [chain, flag, DEVICE, "-m", "comment", "--comment", _COMMENT, "-j", "NFQUEUE",
            "--queue-num", str(QUEUE), "--queue-bypass"]


def add_rules(netns_path: str) -> None:
    """Queue what crosses the node's link (once, however often it is called)."""
    for chain, flag in _RULES:
        if _iptables(netns_path, "-C", *_rule(chain, flag)).returncode == 0:
            continue
        proc = _iptables(netns_path, "-A", *_rule(chain, flag))
        if proc.returncode != 0:
            remove_rules(netns_path)
            raise DelayError(f"iptables -t mangle -A {' '.join(_rule(chain, flag))}: {proc.stderr.strip()}")


def remove_rules(netns_path: str) -> None:
    """Delete the rules (every copy); a namespace without them is left alone."""
    for chain, flag in _RULES:
        for _ in range(10):
            if _iptables(netns_path, "-D", *_rule(chain, flag)).returncode != 0:
                break


def has_rules(netns_path: str) -> bool:
    return any(_iptables(netns_path, "-C", *_rule(chain, flag)).returncode == 0 for chain, flag in _RULES)


# ---- the queue -----------------------------------------------------------------------

def _attr(kind: int, data: bytes) -> bytes:
    size = 4 + len(data)
    return struct.pack("=HH", size, kind) + data + b"\0" * (-size % 4)


def _message(kind: int, attrs: list[bytes], flags: int = NLM_F_REQUEST) -> bytes:
    body = struct.pack("=BBH", socket.AF_UNSPEC, 0, socket.htons(QUEUE)) + b"".join(attrs)
    return struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | kind, flags, 0, 0) + body


class _Stop(Exception):
    pass


class Delayer:
    """Bound to the queue of the namespace it runs in: ``run`` holds each
    packet ``delay`` seconds, drops ``loss`` percent of them."""

    def __init__(self, delay: float, loss: float, rng: Callable[[], float] = random.random) -> None:
        self.delay, self.loss, self.rng = delay, loss, rng
        self.held: collections.deque[tuple[float, int]] = collections.deque()  # (release at, packet id)
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        self.sock.bind((0, 0))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        self.sock.setsockopt(SOL_NETLINK, NETLINK_NO_ENOBUFS, 1)
        self._configure([_attr(NFQA_CFG_CMD, struct.pack("=BxH", NFQNL_CFG_CMD_BIND, 0))])
        self._configure([_attr(NFQA_CFG_PARAMS, struct.pack("!IB", 0, NFQNL_COPY_META))])
        self._configure([_attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", MAX_HELD))])
        self._configure([_attr(NFQA_CFG_MASK, struct.pack("!I", NFQA_CFG_F_FAIL_OPEN)),
                         _attr(NFQA_CFG_FLAGS, struct.pack("!I", NFQA_CFG_F_FAIL_OPEN))])

    def _configure(self, attrs: list[bytes]) -> None:
        self.sock.send(_message(NFQNL_MSG_CONFIG, attrs, NLM_F_REQUEST | NLM_F_ACK))
        data = self.sock.recv(65536)
        _, kind = struct.unpack_from("=IH", data)
        if kind == NLMSG_ERROR:
            errno = -struct.unpack_from("=i", data, 16)[0]
            if errno:
                raise DelayError(f"binding netfilter queue {QUEUE}: {os.strerror(errno)}")

    def _verdict(self, packet: int, verdict: int) -> None:
        header = struct.pack("!II", verdict, packet)
        self.sock.send(_message(NFQNL_MSG_VERDICT, [_attr(NFQA_VERDICT_HDR, header)]))

    def _receive(self) -> None:
        try:
            data = self.sock.recv(1 << 16)
        except BlockingIOError:
            return
        now = time.monotonic()
        offset = 0
        while offset + 16 <= len(data):
            size, kind = struct.unpack_from("=IH", data, offset)
            if size < 16:
                break
            if kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
                packet = _packet_id(data, offset + 20, offset + size)
                if packet is None:
                    pass
                elif self.loss and self.rng() * 100 < self.loss:
                    self._verdict(packet, NF_DROP)
                else:
                    self.held.append((now + self.delay, packet))
            offset += (size + 3) & ~3

    def _release(self, until: float) -> None:
        while self.held and self.held[0][0] <= until:
            self._verdict(self.held.popleft()[1], NF_ACCEPT)

    def run(self) -> None:
        """Until SIGTERM: then what it holds is accepted at once."""
        def stop(_signum: int, _frame: object) -> None:
            raise _Stop

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        try:
            while True:
                timeout = max(0.0, self.held[0][0] - time.monotonic()) if self.held else None
                ready, _, _ = select.select([self.sock], [], [], timeout)
                if ready:
                    self._receive()
                self._release(time.monotonic())
        except _Stop:
            self._release(float("inf"))


def _packet_id(data: bytes, start: int, end: int) -> int | None:
    """The packet id in a NFQNL_MSG_PACKET's attributes (after its nfgenmsg)."""
    pos = start
    while pos + 4 <= end:
        size, kind = struct.unpack_from("=HH", data, pos)
        if size < 4:
            return None
        if kind & 0x7FFF == NFQA_PACKET_HDR:
            return int(struct.unpack_from("!I", data, pos + 4)[0])
        pos += (size + 3) & ~3
    return None
