"""The event streams: every change as it reaches this replica's cache.

The informer calls ``fan_out`` with each change, on its one thread; each open
stream has a queue in ``_watchers`` and drains it in its own handler thread.
A stream asking for the initial state registers its queue *before* it reads
the snapshot, so a change made meanwhile is in the snapshot, the queue, or
both (a client keeps the newest version of each object): none is lost.
A stream naming services gets the changes of those services' objects only.
Secrets and configs are not in any stream: a change to one is not an event
(their metadata is ``GetSecret``'s to give, and their values nobody's).

``Events`` sends one message per change; ``EventBatches`` the same events,
each message carrying all that were ready (at most ``EVENT_BATCH``). The
hub keeps the last ``RECENT`` changes with their times, for a stream that
asks for those since a time (``orch events --since``), as Docker keeps its
last events.
"""

from __future__ import annotations

import collections
import dataclasses
import queue
import threading
import time
from collections.abc import Callable, Iterator

import grpc
import structlog

from controlplane.store import Change, Informer, StoreObject
from model.objects import Network, Node, Service, Task
from model.wire import event_to_pb
from proto import cluster_pb2 as cpb

log = structlog.get_logger("orch.api")

EVENT_BATCH = 500  # events per EventBatches message at most
WATCHER_QUEUE = 100000  # changes a stream may fall behind by
RECENT = 4096  # changes kept for a stream that asks for those since a time


_STREAMED = (Service, Task, Node, Network)  # the kinds an Event can carry


def _service_name(obj: StoreObject) -> str | None:
    if isinstance(obj, Task):
        return obj.service_name
    if isinstance(obj, Service):
        return obj.spec.name
    return None


def _heartbeat_only(change: Change) -> bool:
    """A node's write that only moved its heartbeat: every node's, every
    second, which the kept changes would otherwise be made of."""
    old, new = change.old, change.obj
    return isinstance(old, Node) and isinstance(new, Node) and dataclasses.replace(
        old, last_heartbeat=new.last_heartbeat, version=new.version) == new


class _Watcher:
    """One stream's queue; ``overflowed`` once it fell WATCHER_QUEUE behind."""

    __slots__ = ("overflowed", "queue")

    def __init__(self, size: int) -> None:
        self.queue: queue.Queue[Change] = queue.Queue(maxsize=size)
        self.overflowed = False


class EventHub:
    """Fans the informer's changes out to the open streams.

    ``fan_out`` never blocks: it runs on the informer's one thread, which
    every handler of this replica shares. A stream whose client stopped
    reading is cut off once it falls ``queue_size`` changes behind (it ends
    RESOURCE_EXHAUSTED, so its client lists again), not waited for.
    """

    def __init__(self, informer: Informer, queue_size: int = WATCHER_QUEUE,
                 clock: Callable[[], float] = time.time) -> None:
        self.informer = informer
        self.queue_size = queue_size
        self.clock = clock
        self._watchers: list[_Watcher] = []
        self._recent: collections.deque[tuple[float, Change]] = collections.deque(maxlen=RECENT)
        self._lock = threading.Lock()
        informer.add_handler(self.fan_out)

    def fan_out(self, change: Change) -> None:
        with self._lock:
            if isinstance(change.obj, _STREAMED) and not _heartbeat_only(change):
                self._recent.append((self.clock(), change))
            for watcher in self._watchers:
                if watcher.overflowed:
                    continue
                try:
                    watcher.queue.put_nowait(change)
                except queue.Full:
                    watcher.overflowed = True
                    log.warning("event stream fell behind; cutting it off", behind=self.queue_size)

    def events(self, request: cpb.EventsRequest, context: grpc.ServicerContext) -> Iterator[cpb.Event]:
        """Changes as they reach this replica's cache; see ``EventsRequest``."""
        return (event for event in self._events(request, context, "Events") if event is not None)

    def event_batches(self, request: cpb.EventsRequest,
                      context: grpc.ServicerContext) -> Iterator[cpb.EventBatch]:
        """The events of ``events``, each message carrying all that were ready
        (at most ``EVENT_BATCH``): one message per change cost the control
        plane and the client far more than the change itself."""
        batch: list[cpb.Event] = []
        for event in self._events(request, context, "EventBatches"):
            if event is not None:
                batch.append(event)
            if batch and (event is None or len(batch) >= EVENT_BATCH):
                yield cpb.EventBatch(events=batch)
                batch = []

    def _events(self, request: cpb.EventsRequest, context: grpc.ServicerContext,
                method: str) -> Iterator[cpb.Event | None]:
        """The events for ``request``, and None whenever no more are ready."""
        names = set(request.services)
        watcher = _Watcher(self.queue_size)
        q = watcher.queue
        with self._lock:
            self._watchers.append(watcher)
            replay = [(at, c) for at, c in self._recent if at >= request.since] if request.since else []
        call = log.bind(method=method, services=sorted(names))
        call.debug("event stream opened", initial=request.initial, since=request.since)
        try:
            for at, change in replay:
                if not isinstance(change.obj, _STREAMED) or (
                        names and _service_name(change.obj) not in names):
                    continue
                if isinstance(change.old, _STREAMED):
                    base = event_to_pb("put", change.old)
                    base.base = True
                    yield base
                event = event_to_pb("delete" if change.type == "delete" else "put", change.obj)
                event.time = at
                yield event
            if request.initial:
                yield from _snapshot(self.informer, names)
            wait = request.keepalive if request.keepalive > 0 else 0.5
            while context.is_active():
                try:
                    change = q.get_nowait()
                except queue.Empty:
                    if watcher.overflowed:
                        context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                      f"this event stream fell more than {self.queue_size} changes "
                                      "behind and was cut off; open it again (with initial state)")
                    yield None
                    try:
                        change = q.get(timeout=wait)
                    except queue.Empty:
                        if request.keepalive > 0:
                            yield event_to_pb("keepalive")
                        continue
                if not isinstance(change.obj, _STREAMED):
                    continue
                if names and _service_name(change.obj) not in names:
                    continue
                yield event_to_pb("delete" if change.type == "delete" else "put", change.obj)
        finally:
            with self._lock:
                self._watchers.remove(watcher)
            call.debug("event stream closed")


def _snapshot(informer: Informer, names: set[str]) -> Iterator[cpb.Event]:
    """The cached services and tasks (of ``names``, when given), then ``synced``."""
    everything: list[Service | Task] = [*informer.services(), *informer.tasks()]
    snapshot = [o for o in everything if not names or _service_name(o) in names]
    del everything
    # Memoised by identity: ``snapshot`` keeps the specs alive while it is used.
    specs: dict[int, cpb.ServiceSpec] = {}
    for obj in snapshot:
        yield event_to_pb("put", obj, specs)
    del specs, snapshot
    yield event_to_pb("synced")
