"""Task status: what the node last said of each task, sent in batches.

The reconciler reports (:meth:`StatusReporter.report`); the status thread
sends what is due on the session's stream, at most one message per
``BATCH_WINDOW``: an update after a quiet spell goes at once, one in a busy
spell with the rest of its window, unless the node has settled (nothing
starting or stopping, nothing left to start): then no more updates are on
their way to join it, and it goes at once. A "starting" update waits
``STARTING_QUIET`` first (see :class:`StatusQueue`).

Invariants:
- ``reported`` holds the last status of every task the control plane may
  not have heard of as finished: a new session sends it all again, so
  nothing is lost while no session is up;
- updates wait while no session is up (no stream to send them on); a
  finished task leaves ``reported`` once a batch holding its final status
  has gone and the task is no longer assigned.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable

from model.objects import TaskState, TaskStatus
from model.wire import status_update_to_pb
from proto import cluster_pb2 as cpb

__all__ = ["BATCH_WINDOW", "STARTING_QUIET", "Outbox", "StatusQueue", "StatusReporter"]

BATCH_WINDOW = 0.02
STARTING_QUIET = 0.25

# The session's stream: messages to the control plane; None ends it.
Outbox = queue.Queue[cpb.AgentMessage | None]


class StatusQueue:
    """Task status updates, (task id, status), waiting to be sent (the caller holds a lock).

    "starting" is held back for ``quiet`` seconds and dropped if a later
    update for the task comes first: most starts end within that, and their
    "starting" would be one more write per task, for the control plane, etcd
    and every watcher, just before "running". A start that takes longer
    (a pull, a slow disk) is still shown as starting.
    """

    def __init__(self, quiet: float = STARTING_QUIET) -> None:
        self.quiet = quiet
        self._pending: list[tuple[str, TaskStatus]] = []
        self._held: dict[str, tuple[str, TaskStatus]] = {}

    def add(self, update: tuple[str, TaskStatus]) -> bool:
        """Queue ``update``; False when it is held back (nothing to send yet)."""
        tid, status = update
        if status.state == TaskState.STARTING:
            self._held[tid] = update
            return False
        self._held.pop(tid, None)
        self._pending.append(update)
        return True

    def replace(self, updates: list[tuple[str, TaskStatus]]) -> None:
        """Send ``updates`` (all of them: a new session's resend) instead."""
        self._held.clear()
        self._pending = list(updates)

    def next_due(self) -> float | None:
        """When the oldest held update falls due; None if none is held."""
        if not self._held:
            return None
        return min(status.timestamp for _, status in self._held.values()) + self.quiet

    def take(self, now: float) -> list[tuple[str, TaskStatus]]:
        """Everything due by ``now``, oldest first; the queue keeps the rest."""
        for tid, (_, status) in list(self._held.items()):
            if status.timestamp + self.quiet <= now:
                self._pending.append(self._held.pop(tid))
        batch, self._pending = self._pending, []
        return batch


class StatusReporter:
    """The node's task status and the thread that sends it (:meth:`run`).

    ``settled`` and ``assigned`` are the reconciler's: whether nothing is
    starting, stopping or waiting its turn, and whether a task is still
    assigned here.
    """

    def __init__(self, stopped: threading.Event, settled: Callable[[], bool],
                 assigned: Callable[[str], bool]) -> None:
        self._stopped = stopped
        self._settled = settled
        self._assigned = assigned
        self._lock = threading.Lock()
        self.reported: dict[str, TaskStatus] = {}  # task id -> the last status sent or queued
        self.queue = StatusQueue()
        self._outbox: Outbox | None = None  # the registered session's stream
        self._ready = threading.Event()  # something may be due
        self._settled_event = threading.Event()  # cuts a batch window short (or stop)

    # ---- the reconciler's side --------------------------------------------

    def report(self, tid: str, state: TaskState, message: str, error: str = "",
               exit_code: int = 0, container_id: str = "", health: str = "") -> None:
        """``health``: the container's health-check status ("" without a check,
        "starting", "healthy", "unhealthy"; see ``model.health``)."""
        if self._stopped.is_set():
            return
        status = TaskStatus(state=state, message=message, error=error, container_id=container_id,
                            exit_code=exit_code, timestamp=time.time(), health=health)
        with self._lock:
            self.reported[tid] = status
            ready = self.queue.add((tid, status))
        if ready:
            self._ready.set()

    def last(self, tid: str) -> TaskStatus | None:
        """The last status reported for ``tid``, if the node still keeps it."""
        with self._lock:
            return self.reported.get(tid)

    def forget(self, tid: str) -> None:
        with self._lock:
            self.reported.pop(tid, None)

    def node_settled(self) -> None:
        """The node may have settled (a start or stop has answered): a batch
        window waiting for more updates checks again."""
        self._settled_event.set()

    # ---- the session's side -----------------------------------------------

    def attach(self, outbox: Outbox) -> None:
        """A session registered: batches go on its stream, starting with
        everything reported (the control plane may have missed updates
        while the node was apart)."""
        with self._lock:
            self._outbox = outbox
            self.queue.replace(list(self.reported.items()))
        self._ready.set()

    def detach(self, outbox: Outbox) -> None:
        """The session on ``outbox`` ended: updates wait for the next one."""
        with self._lock:
            if self._outbox is outbox:
                self._outbox = None

    def stop(self) -> None:
        self._settled_event.set()
        self._ready.set()

    # ---- the status thread ------------------------------------------------

    def run(self) -> None:
        last_sent = 0.0  # monotonic time of the last batch
        while not self._stopped.is_set():
            with self._lock:
                due = self.queue.next_due()
            self._ready.wait(1.0 if due is None else min(1.0, max(0.0, due - time.time())))
            self._ready.clear()
            if self.rest_of_window(last_sent + BATCH_WINDOW):
                return
            with self._lock:
                if self._outbox is None:
                    continue  # a new session's registration sends them all anyway
                batch = self.queue.take(time.time())
                if not batch:
                    continue
                updates = [status_update_to_pb(tid, status) for tid, status in batch]
                self._outbox.put(cpb.AgentMessage(status=cpb.StatusBatch(updates=updates)))
                last_sent = time.monotonic()
            # Forget finished tasks the control plane has been told about.
            done = [tid for tid, status in batch if status.state.terminal and not self._assigned(tid)]
            with self._lock:
                for tid in done:
                    self.reported.pop(tid, None)

    def rest_of_window(self, end: float) -> bool:
        """Wait until ``end`` (monotonic), or less once the node has settled;
        True if the worker stopped meanwhile."""
        while not self._stopped.is_set():
            rest = end - time.monotonic()
            if rest <= 0 or self._settled():
                return False
            self._settled_event.wait(rest)
            self._settled_event.clear()
        return True
