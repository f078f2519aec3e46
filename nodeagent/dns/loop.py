"""The DNS server's event loop: one thread, one selector, timers, and
calls handed in from other threads.

Everything the server owns (sockets, connections, forwarded queries) is
touched only on the loop's thread; other threads reach it through
:meth:`Loop.call_soon`, which queues the call and wakes the selector
(an eventfd-like pipe). Callbacks run to their end, one at a time; one that
raises is logged and the loop goes on.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import selectors
import threading
import time
from collections.abc import Callable
from typing import Any

from common.logging import get_logger

log = get_logger("orch.dns")

Callback = Callable[[], None]


class Loop:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.sel = selectors.DefaultSelector()
        self.clock = clock
        self._timers: list[tuple[float, int, Callback]] = []
        self._cancelled: set[int] = set()
        self._seq = itertools.count(1)
        self._calls: list[Callback] = []
        self._calls_lock = threading.Lock()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.sel.register(self._wake_r, selectors.EVENT_READ, self._drain_wake)
        self.running = False
        self.thread: threading.Thread | None = None

    # ---- from any thread ---------------------------------------------------

    def call_soon(self, fn: Callback) -> None:
        with self._calls_lock:
            self._calls.append(fn)
        with contextlib.suppress(BlockingIOError):  # a wake-up is pending already
            os.write(self._wake_w, b"\0")

    def start(self, name: str = "dns") -> None:
        self.running = True
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """End the loop (its thread closes nothing: see ``close``)."""
        def end() -> None:
            self.running = False

        self.call_soon(end)
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join(timeout)

    def close(self) -> None:
        self.sel.close()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    # ---- on the loop's thread ---------------------------------------------

    def after(self, delay: float, fn: Callback) -> int:
        """Run ``fn`` in ``delay`` seconds; a handle for ``cancel``."""
        handle = next(self._seq)
        heapq.heappush(self._timers, (self.clock() + delay, handle, fn))
        return handle

    def cancel(self, handle: int) -> None:
        if handle:
            self._cancelled.add(handle)

    def register(self, fileobj: Any, events: int, callback: Callable[[int], None]) -> None:
        self.sel.register(fileobj, events, callback)

    def modify(self, fileobj: Any, events: int, callback: Callable[[int], None]) -> None:
        self.sel.modify(fileobj, events, callback)

    def unregister(self, fileobj: Any) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(fileobj)

    def _run(self) -> None:
        while self.running:
            timeout = None
            if self._timers:
                timeout = max(0.0, self._timers[0][0] - self.clock())
            for key, mask in self.sel.select(timeout):
                self._guard(key.data, mask)
            self._run_timers()
            self._run_calls()

    def _run_timers(self) -> None:
        now = self.clock()
        while self._timers and self._timers[0][0] <= now:
            _, handle, fn = heapq.heappop(self._timers)
            if handle in self._cancelled:
                self._cancelled.discard(handle)
                continue
            self._guard(fn)
        if not self._timers:
            self._cancelled.clear()

    def _run_calls(self) -> None:
        with self._calls_lock:
            calls, self._calls = self._calls, []
        for fn in calls:
            self._guard(fn)

    def _drain_wake(self, mask: int) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_r, 4096):
                pass

    @staticmethod
    def _guard(fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("dns loop callback failed")
