"""Supervisor events, fanned out to the gRPC handlers that wait on them.

Besides the supervisor's own events, the client's ``"disconnected"`` (the
supervisor went away) and ``"connected"`` (a new one took over) pass here.
"""

from __future__ import annotations

import threading
from typing import Any


class EventHub:
    """Remembers the last exit of each container and each exec, and wakes
    whoever waits for one. Entries are dropped once consumed or removed."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._exited: dict[str, dict[str, Any]] = {}
        self._exec_exits: dict[int, int] = {}
        self._generation = 0
        self.disconnected = False
        self.listeners: list[Any] = []  # extra callbacks: (event, data)

    def __call__(self, event: str, data: dict[str, Any]) -> None:
        with self._cond:
            if event == "exited":
                self._exited[data["id"]] = data
            elif event == "started":
                self._exited.pop(data["id"], None)
            elif event == "exec_exit":
                self._exec_exits[int(data["exec_id"])] = int(data["exit_code"])
            elif event == "disconnected":
                self.disconnected = True
            elif event == "connected":
                self.disconnected = False
            self._generation += 1
            self._cond.notify_all()
        for listener in self.listeners:
            listener(event, data)

    def exited(self, cid: str) -> dict[str, Any] | None:
        with self._cond:
            return self._exited.get(cid)

    def forget(self, cid: str) -> None:
        with self._cond:
            self._exited.pop(cid, None)

    def wait_exec(self, exec_id: int, timeout: float) -> int | None:
        with self._cond:
            self._cond.wait_for(lambda: exec_id in self._exec_exits or self.disconnected, timeout)
            return self._exec_exits.pop(exec_id, None)

    @property
    def generation(self) -> int:
        """Counts events; read it before checking state, then ``wait_change(since=...)``."""
        with self._cond:
            return self._generation

    def wait_change(self, timeout: float, since: int | None = None) -> None:
        """Wait for an event after ``since`` (default: from now on). With
        ``since`` read before a check, an event that lands between the check
        and this call is not missed."""
        with self._cond:
            gen = self._generation if since is None else since
            self._cond.wait_for(lambda: self._generation != gen, timeout)
