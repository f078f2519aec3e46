"""A watch on every object key from a revision on, as typed events.

pyetcd calls back on its own thread; this module only queues the raw responses
there and decodes them in the consumer's thread (``next``), so a slow consumer
never blocks etcd's stream for other watches.

Invariants:
- batches come out in revision order, one batch per etcd watch response, and every
  event of a transaction is in the same batch;
- once the stream breaks (etcd gone, compaction) ``next`` raises a ``StoreError``
  every time and nothing more is delivered: a watch is never silently resumed with a
  gap. The consumer re-lists and opens a new watch;
- after ``cancel`` nothing more is delivered either.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import structlog
from pyetcd import events as etcd_events

from . import keys
from ._client import error_of, translate
from .codec import StoreObject, decode
from .errors import StoreCompacted, StoreCorrupt, StoreError, StoreUnavailable
from .keys import Kind

__all__ = ["StoreEvent", "Watch"]

log = structlog.get_logger("orch.store")

EventType = Literal["put", "delete"]


@dataclass(frozen=True)
class StoreEvent:
    kind: Kind
    type: EventType
    id: str
    obj: StoreObject | None  # the new object for a put; None for a delete
    revision: int  # the etcd revision of this change


class Watch:
    """Typed events under ``keys.ROOT`` from ``from_revision`` on; see the module invariants."""

    def __init__(self, client: Any, from_revision: int) -> None:
        self._client = client
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False  # cancelled or broken: drop anything that still arrives
        self._error: StoreError | None = None
        self.revision = from_revision - 1  # last revision known to be delivered
        self._cancelled = False
        try:
            with translate("watch create"):
                self._id = client.add_watch_prefix_callback(keys.ROOT, self._on_response,
                                                            start_revision=from_revision)
        except StoreCompacted as exc:
            raise StoreCompacted(from_revision, exc.compacted) from exc

    def _on_response(self, response: Any) -> None:
        with self._lock:
            if self._closed:
                return
            if not hasattr(response, "events"):  # an exception, or None when the stream ended
                self._closed = True
            self._queue.put(response)

    def next(self, timeout: float | None = None) -> list[StoreEvent]:
        """The next batch of events; ``[]`` after ``timeout``. Raises ``StoreError`` once broken."""
        if self._error is not None:
            raise self._error
        try:
            response = self._queue.get(timeout=timeout)
        except queue.Empty:
            return []
        if not hasattr(response, "events"):
            self._error = StoreUnavailable("watch cancelled") if response is _CANCELLED else \
                error_of(response, "watch")
            if isinstance(self._error, StoreCompacted):
                self._error = StoreCompacted(self.revision + 1, self._error.compacted)
            raise self._error
        self.revision = max(self.revision, int(response.header.revision))
        return [e for e in map(_to_event, response.events) if e is not None]

    def __iter__(self) -> Iterator[list[StoreEvent]]:
        """Batches until cancelled; raises ``StoreError`` when broken."""
        while True:
            try:
                batch = self.next(timeout=0.5)
            except StoreError:
                if self.cancelled:
                    return
                raise
            if batch:
                yield batch

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            was_closed, self._closed = self._closed, True
            self._queue.put(_CANCELLED)
        if not was_closed:
            try:
                self._client.cancel_watch(self._id)
            except Exception as exc:  # the stream is gone anyway: nothing to cancel
                log.debug("watch cancel failed", error=str(exc))


_CANCELLED = object()


def _to_event(ev: Any) -> StoreEvent | None:
    try:
        kind, ident = keys.parse(ev.key)
    except keys.BadKey:
        return None
    if not isinstance(kind, Kind):
        return None  # leader and meta keys are not objects
    revision = int(ev.mod_revision)
    if isinstance(ev, etcd_events.DeleteEvent):
        return StoreEvent(kind, "delete", ident, None, revision)
    key = ev.key.decode()
    try:
        return StoreEvent(kind, "put", ident, decode(kind, key, ev.value, revision), revision)
    except StoreCorrupt as exc:
        # One bad value must not stall every controller: report it and skip it.
        log.error("skipping undecodable value", key=key, error=str(exc))
        return None
