"""The agent's side of the supervisor socket.

Thread-safe: gRPC handler threads call :meth:`SupervisorClient.call`
concurrently; one reader thread matches responses to callers by request id
and hands pushed events to the subscribers' callbacks.

One client lasts for the agent's life, across supervisors: when one dies the
connection ends (every call out fails, and ``on_event`` hears
``"disconnected"``), and :meth:`SupervisorClient.reconnect` connects the
same client to its successor (``on_event`` hears ``"connected"`` first). It
then makes again the last call of each of :data:`REPLAYED`, which set up a
connection or a supervisor, so the new one is set up as the old one was.

Events may carry fds (``dns_sockets``): :meth:`SupervisorClient.take_fds`
names who takes them; an event's fds that nobody takes are closed.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import threading
from collections.abc import Callable
from typing import Any

from common.errors import AgentError, from_dict
from common.logging import get_logger
from nodeagent.supervisor import wire


class SupervisorUnavailable(AgentError):
    code = "unavailable"


log = get_logger("orch.supervisor-client")

Callback = Callable[[Any, "AgentError | None"], None]

# Calls whose effect a new supervisor lacks: the events this connection
# wants, and the ports fenced off from containers.
REPLAYED = ("subscribe", "protect")


def _close_fds(fds: list[int]) -> None:
    """Close the fds a reply carried that the caller does not take."""
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


class _Pending:
    __slots__ = ("callback", "done", "error", "fds", "result")

    def __init__(self, callback: Callback | None = None) -> None:
        self.done = threading.Event()
        self.result: Any = None
        self.error: AgentError | None = None
        self.fds: list[int] = []
        self.callback = callback

    def finish(self) -> None:
        if self.callback is None:
            self.done.set()
            return
        _close_fds(self.fds)  # the callback gets the result only
        try:
            self.callback(self.result, self.error)
        except Exception:  # the reader thread must go on
            log.exception("supervisor reply callback failed")


def _connect(socket_path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.connect(socket_path)
    except OSError as err:
        sock.close()
        raise SupervisorUnavailable(f"supervisor not reachable at {socket_path}: {err}")
    return sock


class SupervisorClient:
    def __init__(self, socket_path: str, on_event: Callable[[str, dict[str, Any]], None] | None = None):
        self.socket_path = socket_path
        self.sock = _connect(socket_path)
        self._rids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._on_event = on_event
        self._closed = False
        self._replay: dict[str, dict[str, Any]] = {}  # op -> the args of its last call
        self._fd_takers: dict[str, Callable[[dict[str, Any], list[int]], None]] = {}
        self._reader = self._start_reader(self.sock)

    def _start_reader(self, sock: socket.socket) -> threading.Thread:
        reader = threading.Thread(target=self._read_loop, args=(sock,), name="supervisor-reader",
                                  daemon=True)
        reader.start()
        return reader

    def take_fds(self, event: str, taker: Callable[[dict[str, Any], list[int]], None]) -> None:
        """Hand the fds that ``event`` carries to ``taker(data, fds)``, on the
        reader thread, before ``on_event`` hears of the event; from then on
        they are the taker's to close, even if it raises. It must not block.
        Set it before subscribing to the event: the supervisor sends some
        right after the subscribe's reply."""
        with self._lock:
            self._fd_takers[event] = taker

    @property
    def connected(self) -> bool:
        with self._lock:
            return not self._closed

    def reconnect(self) -> None:
        """Connect to the supervisor now listening at ``socket_path``, after
        the previous one went away, and replay the REPLAYED calls.
        SupervisorUnavailable if none listens (or it goes away meanwhile);
        nothing happens while the connection is still up."""
        with self._lock:
            if not self._closed:
                return
        sock = _connect(self.socket_path)
        with self._send_lock, self._lock:
            old, self.sock, self._closed = self.sock, sock, False
            replay = list(self._replay.items())
        old.close()
        if self._on_event is not None:
            self._on_event("connected", {})  # before any event of the new connection
        self._reader = self._start_reader(sock)
        for op, args in replay:
            try:
                self.call(op, **args)
            except SupervisorUnavailable:
                raise
            except AgentError as err:  # the new one refuses it: said, not fatal
                log.error("the new supervisor refused a replayed call", op=op, error=err.message)

    def call(self, op: str, wait_timeout: float | None = None, **args: Any) -> Any:
        result, fds = self.call_fds(op, wait_timeout=wait_timeout, **args)
        _close_fds(fds)
        if op in REPLAYED:
            with self._lock:
                self._replay[op] = args
        return result

    def call_async(self, op: str, callback: Callback, **args: Any) -> None:
        """Send ``op`` and return at once: ``callback(result, error)`` runs on
        the reader thread when the answer comes (error set if it failed or the
        connection was lost), before any later event is delivered. It must
        not block."""
        self._send(op, args, _Pending(callback))

    def call_fds(self, op: str, wait_timeout: float | None = None, **args: Any) -> tuple[Any, list[int]]:
        pending = _Pending()
        rid = self._send(op, args, pending)
        if not pending.done.wait(wait_timeout):
            with self._lock:
                self._pending.pop(rid, None)
            raise AgentError(f"supervisor did not answer {op} within {wait_timeout} s")
        if pending.error is not None:
            raise pending.error
        return pending.result, pending.fds

    def _send(self, op: str, args: dict[str, Any], pending: _Pending) -> int:
        rid = next(self._rids)
        with self._lock:
            if self._closed:
                raise SupervisorUnavailable("connection to the supervisor is closed")
            self._pending[rid] = pending
        try:
            with self._send_lock:
                wire.send(self.sock, {"rid": rid, "op": op, "args": args})
        except OSError as err:
            with self._lock:
                self._pending.pop(rid, None)
            raise SupervisorUnavailable(f"supervisor connection failed: {err}")
        return rid

    def _read_loop(self, sock: socket.socket) -> None:
        reader = wire.Reader()
        try:
            while True:
                msgs = wire.recv(sock, reader)
                if msgs is None:
                    break
                for msg, fds in msgs:
                    self._deliver(msg, fds)
        except (OSError, ValueError):  # ValueError: a torn or bad line
            pass
        finally:
            with self._lock:
                self._closed = True
                pending, self._pending = self._pending, {}
            for p in pending.values():
                p.error = SupervisorUnavailable("the supervisor went away")
                p.finish()
            if self._on_event is not None:
                self._on_event("disconnected", {})

    def _deliver(self, msg: dict[str, Any], fds: list[int]) -> None:
        if "event" in msg:
            if fds:
                self._hand_over(str(msg["event"]), msg.get("data", {}), fds)
            if self._on_event is not None:
                self._on_event(msg["event"], msg.get("data", {}))
            return
        with self._lock:
            pending = self._pending.pop(int(msg.get("rid", 0)), None)
        if pending is None:
            return
        if msg.get("ok"):
            pending.result = msg.get("result")
            pending.fds = fds
        else:
            pending.error = from_dict(msg.get("error", {}))
        pending.finish()

    def _hand_over(self, event: str, data: dict[str, Any], fds: list[int]) -> None:
        with self._lock:
            taker = self._fd_takers.get(event)
        if taker is None:
            _close_fds(fds)
            return
        try:
            taker(data, fds)
        except Exception:  # the reader thread must go on (the fds are the taker's)
            log.exception("taking an event's fds failed", supervisor_event=event)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
