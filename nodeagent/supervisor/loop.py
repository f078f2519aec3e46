"""The supervisor's event loop: one thread, one ``selectors`` loop.

It watches the listening socket, client connections, container output pipes,
launches' report fds and a self-pipe for signals. Each registration carries
the callback that handles its fd, so the loop itself knows nothing of
containers. Timers (stop grace periods, restart backoff, output drains) sit
in a heap and bound the loop's wait.

A step of the loop: the callbacks of every ready fd, then the timers that
are due, then :meth:`Loop._between_steps` (work that waits until the step's
replies and events are out).

Invariants:
- a callback runs to its end before the next one starts: no state is seen
  half-changed, and nothing needs a lock;
- nothing a client sends, and nothing a record holds, ends the loop: every
  callback, every timer and the work between steps is guarded (an exception
  is logged and the loop goes on);
- every delay is clamped (:func:`clamp_delay`), so that no deadline, and no
  wait handed to ``select``, can overflow.
"""

from __future__ import annotations

import errno
import functools
import heapq
import itertools
import os
import selectors
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from common.logging import JsonLogger
from nodeagent.supervisor import wire

# The supervisor keeps common.logging's small JSON logger rather than
# structlog: importing structlog (and asyncio, which it loads) would nearly
# double its idle memory (bench/agent_memory.py, supervisor_idle_kib).
log = JsonLogger("orch.supervisor")

# The longest a timer is set for, and the longest one select() waits. A stop
# timeout of 1e400 s (infinite) or 99999999999999 h means "never" in practice:
# a century is as good, and keeps the deadline a finite float. The loop
# wakes at least hourly and computes its wait again, so select() never gets
# a timeout past what epoll takes (an int of milliseconds).
MAX_TIMER_DELAY = 100 * 365 * 86400.0
MAX_WAIT = 3600.0

# What a ready fd's registration carries: called with the fd.
Handler = Callable[[int], None]


def read_ready(fd: int) -> bytes | None:
    """What a non-blocking pipe or pty has now: None if nothing yet, b"" at
    its end (EIO, a pty whose other side closed, is an end too)."""
    try:
        return os.read(fd, 65536)
    except BlockingIOError:
        return None
    except OSError as err:
        if err.errno != errno.EIO:
            raise
        return b""


def clamp_delay(delay: object) -> float:
    """``delay`` seconds as a timer takes them: 0 for a negative, NaN or
    non-numeric delay (the timer fires at once), at most MAX_TIMER_DELAY."""
    try:
        value = float(delay)  # type: ignore[arg-type]
    except OverflowError:  # an int past any float: as long as it gets
        return MAX_TIMER_DELAY
    except (TypeError, ValueError):
        return 0.0
    if not value > 0:
        return 0.0
    return min(value, MAX_TIMER_DELAY)


@dataclass
class Conn:
    sock: socket.socket
    reader: wire.Reader = field(default_factory=wire.Reader)
    subscribed: bool = False
    events: frozenset[str] | None = None  # what a subscriber wants; None: every event
    closed: bool = False


class Loop:
    """The loop, its timers and its client connections. The layers above
    handle what arrives: :meth:`_dispatch` (a request, ``ops``) and
    :meth:`_between_steps` (``lifecycle``)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.timers: list[tuple[float, int, Callable[[], None]]] = []
        self.cancelled: set[int] = set()
        self._seq = itertools.count(1)
        self.sel = selectors.DefaultSelector()
        self.conns: list[Conn] = []
        self.running = True

    def _run(self) -> None:
        """Run steps until :attr:`running` is cleared."""
        while self.running:
            try:
                ready = self.sel.select(self._next_timeout())
            except Exception:
                log.exception("select failed")
                ready = []
            for key, _ in ready:
                self._guard(functools.partial(key.data, key.fd))
            self._guard(self._run_timers)
            self._guard(self._between_steps)

    def _between_steps(self) -> None:
        """The end of a step, once its replies and events are sent."""

    def _dispatch(self, conn: Conn, msg: dict[str, Any]) -> None:
        """Handle one request from ``conn`` (the operations layer does)."""
        raise NotImplementedError

    # ---- timers ----------------------------------------------------------

    def _after(self, delay: float, fn: Callable[[], None]) -> int:
        seq = next(self._seq)
        heapq.heappush(self.timers, (self.clock() + clamp_delay(delay), seq, fn))
        return seq

    def _cancel(self, seq: int) -> None:
        if seq:
            self.cancelled.add(seq)

    def _next_timeout(self) -> float:
        """How long select() may wait: until the next timer, at most MAX_WAIT."""
        if not self.timers:
            return MAX_WAIT
        wait = self.timers[0][0] - self.clock()
        return min(MAX_WAIT, wait) if wait > 0 else 0.0

    def _run_timers(self) -> None:
        now = self.clock()
        while self.timers and self.timers[0][0] <= now:
            _, seq, fn = heapq.heappop(self.timers)
            if seq in self.cancelled:
                self.cancelled.discard(seq)
                continue
            self._guard(fn)

    def _guard(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception:
            log.exception("supervisor task failed")

    # ---- connections -----------------------------------------------------

    def _accept(self, listener: socket.socket) -> None:
        sock, _ = listener.accept()
        sock.setblocking(True)
        conn = Conn(sock)
        self.conns.append(conn)
        self.sel.register(sock, selectors.EVENT_READ, lambda _fd: self._on_conn(conn))

    def _close(self, conn: Conn) -> None:
        if conn.closed:
            return
        conn.closed = True
        self.sel.unregister(conn.sock)
        conn.sock.close()
        self.conns.remove(conn)

    def _send(self, conn: Conn, msg: dict[str, Any], fds: list[int] | None = None) -> None:
        if conn.closed:
            return
        try:
            wire.send(conn.sock, msg, fds)
        except OSError:
            self._close(conn)

    def _emit(self, event: str, data: dict[str, Any], fds: list[int] | None = None) -> None:
        """Push an event to every subscriber that wants it; ``fds`` go with
        it (each subscriber gets its own copies; the sender keeps its own)."""
        for conn in list(self.conns):
            if conn.subscribed and (conn.events is None or event in conn.events):
                self._send(conn, {"event": event, "data": data}, fds)

    def _on_conn(self, conn: Conn) -> None:
        try:
            msgs = wire.recv(conn.sock, conn.reader)
        except OSError:
            msgs = None
        if msgs is None:
            self._close(conn)
            return
        for msg, fds in msgs:
            for fd in fds:
                os.close(fd)
            self._dispatch(conn, msg)
