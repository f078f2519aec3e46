"""The informer: an in-memory copy of the store, kept current by list + watch.

Controllers read the informer and never poll etcd. One thread lists every kind
at one revision, then watches from the next revision and applies each change
to the cache and its indexes, then calls the handlers. If the watch breaks
(etcd restarted, revision compacted, connection lost) it lists again and
reports the difference to the handlers as ordinary events.

Invariants:
- the cache equals the store at ``revision`` (as of the last applied change);
- work per change is O(1) plus the handlers: the tasks-by-service and
  tasks-by-node indexes, networks by name and the addresses in use are updated
  incrementally, never rebuilt;
- the addresses in use (``address_owner``) are, per network, those of the tasks
  that are not terminal and the services' VIPs, as of the cached revision: the
  index changes under the cache's lock, with the cache, so a reader who waited for
  a revision (``wait_revision``) sees that revision's addresses;
- handlers run on the informer thread, in revision order, after the cache holds
  the change; a handler that raises is logged and does not stop the informer;
- objects handed out are shared with the cache: treat them as read-only and copy
  (``dataclasses.replace``) before changing one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import structlog

from controlplane.logctx import object_fields
from model.objects import Network, Node, Secret, Service, Task

from .codec import StoreObject
from .errors import StoreError
from .keys import Kind
from .store import Store
from .watch import StoreEvent, Watch

__all__ = ["Change", "Handler", "Informer", "address_key"]

log = structlog.get_logger("orch.informer")

ChangeType = Literal["add", "update", "delete"]


@dataclass(frozen=True)
class Change:
    kind: Kind
    type: ChangeType
    obj: StoreObject  # the new object; for a delete, the last one cached
    old: StoreObject | None  # the previous object for update/delete, None for add


Handler = Callable[[Change], None]


class _TaskIndex:
    """Task ids grouped by one attribute (service id or node id), kept per change."""

    def __init__(self, attr: str) -> None:
        self.attr = attr
        self.groups: dict[str, dict[str, Task]] = {}

    def put(self, old: Task | None, new: Task) -> None:
        if old is not None and getattr(old, self.attr) != getattr(new, self.attr):
            self.remove(old)
        self.groups.setdefault(getattr(new, self.attr), {})[new.id] = new

    def remove(self, task: Task) -> None:
        group = self.groups.get(getattr(task, self.attr))
        if group is not None:
            group.pop(task.id, None)
            if not group:
                del self.groups[getattr(task, self.attr)]

    def get(self, value: str) -> list[Task]:
        return list(self.groups.get(value, {}).values())


def address_key(address: str) -> int:
    """An ``"IP/prefix"`` (or bare IP) as the integer the address index keys on."""
    ip = address.partition("/")[0]
    a, b, c, d = (int(part) for part in ip.split("."))
    return a << 24 | b << 16 | c << 8 | d


class _AddressIndex:
    """Per network id, address (as an int) -> its owner (a task or service id)."""

    def __init__(self) -> None:
        self.used: dict[str, dict[int, str]] = {}

    @staticmethod
    def _held(obj: StoreObject | None) -> list[tuple[str, str]]:
        """(network id, address) pairs ``obj`` holds."""
        if isinstance(obj, Task):
            return [] if obj.status.state.terminal else [(n.network_id, n.address) for n in obj.networks]
        if isinstance(obj, Service):
            return [(v.network_id, v.address) for v in obj.vips if v.address]
        return []

    def update(self, old: StoreObject | None, new: StoreObject | None) -> None:
        before, after = self._held(old), self._held(new)
        if before == after:
            return
        owner = (old or new).id  # type: ignore[union-attr]
        for network_id, address in before:
            group = self.used.get(network_id)
            key = _key_or_none(address)
            if group is not None and key is not None and group.get(key) == owner:
                del group[key]
                if not group:
                    del self.used[network_id]
        for network_id, address in after:
            key = _key_or_none(address)
            if key is not None:
                self.used.setdefault(network_id, {})[key] = owner


def _key_or_none(address: str) -> int | None:
    try:
        return address_key(address)
    except ValueError:  # not IPv4: holds nothing an allocator could give
        return None


class Informer:
    """List+watch cache of services, tasks and nodes; see the module invariants."""

    def __init__(self, store: Store, *, retry_delay: float = 0.2, poll_interval: float = 0.5) -> None:
        self._store = store
        self._retry_delay = retry_delay
        self._poll = poll_interval  # how often the thread checks for stop while idle
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._cache: dict[Kind, dict[str, StoreObject]] = {k: {} for k in Kind}
        self._by_service = _TaskIndex("service_id")
        self._by_node = _TaskIndex("node_id")
        self._networks_by_name: dict[str, Network] = {}
        self._addresses = _AddressIndex()
        self._handlers: list[Handler] = []
        self._revision = 0
        self._synced = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.relists = 0  # how many times the cache was (re)built from a list

    # ---- lifecycle ----------------------------------------------------------

    def add_handler(self, handler: Handler) -> None:
        """Call ``handler`` for every change from now on (register before ``start`` to see all)."""
        with self._lock:
            self._handlers.append(handler)

    def remove_handler(self, handler: Handler) -> None:
        with self._lock:
            if handler in self._handlers:
                self._handlers.remove(handler)

    def start(self) -> Informer:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="orch-informer", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> Informer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_synced(self, timeout: float | None = None) -> bool:
        """True once the first list has been loaded."""
        return self._synced.wait(timeout)

    def wait_revision(self, revision: int, timeout: float | None = None) -> bool:
        """True once the cache reflects the store at ``revision`` (e.g. after a write)."""
        with self._changed:
            return self._changed.wait_for(lambda: self._revision >= revision, timeout)

    # ---- reads ----------------------------------------------------------------

    @property
    def revision(self) -> int:
        return self._revision

    def get(self, kind: Kind, ident: str) -> StoreObject | None:
        with self._lock:
            return self._cache[kind].get(ident)

    def list_kind(self, kind: Kind) -> list[StoreObject]:
        with self._lock:
            return list(self._cache[kind].values())

    def services(self) -> list[Service]:
        return [o for o in self.list_kind(Kind.SERVICE) if isinstance(o, Service)]

    def nodes(self) -> list[Node]:
        return [o for o in self.list_kind(Kind.NODE) if isinstance(o, Node)]

    def tasks(self) -> list[Task]:
        return [o for o in self.list_kind(Kind.TASK) if isinstance(o, Task)]

    def networks(self) -> list[Network]:
        return [o for o in self.list_kind(Kind.NETWORK) if isinstance(o, Network)]

    def secrets(self) -> list[Secret]:
        """Every version of every secret and config (their values sealed)."""
        return [o for o in self.list_kind(Kind.SECRET) if isinstance(o, Secret)]

    def network_named(self, name: str) -> Network | None:
        with self._lock:
            return self._networks_by_name.get(name)

    def address_owner(self, network_id: str, address: int) -> str | None:
        """The task or service that holds ``address`` (see :func:`address_key`) on the network."""
        with self._lock:
            group = self._addresses.used.get(network_id)
            return None if group is None else group.get(address)

    def addresses_in_use(self, network_id: str) -> dict[int, str]:
        """A copy of the network's addresses in use, by owner."""
        with self._lock:
            return dict(self._addresses.used.get(network_id, {}))

    def tasks_of_service(self, service_id: str) -> list[Task]:
        with self._lock:
            return self._by_service.get(service_id)

    def tasks_of_node(self, node_id: str) -> list[Task]:
        """Tasks on ``node_id``; ``""`` gives the tasks not assigned to any node."""
        with self._lock:
            return self._by_node.get(node_id)

    # ---- the loop -------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                watch = self._relist()
                try:
                    self._follow(watch)
                finally:
                    watch.cancel()
            except StoreError as exc:
                log.warning("informer lost its watch; listing again", error=str(exc),
                            revision=self._revision)
                self._stop.wait(self._retry_delay)

    def _relist(self) -> Watch:
        snapshot, revision = self._store.list_all()
        watch = self._store.watch(revision + 1)
        changes: list[Change] = []
        with self._changed:
            for kind in Kind:
                changes.extend(self._replace(kind, snapshot.get(kind, {})))
            self._revision = revision
            self.relists += 1
            self._changed.notify_all()
        self._synced.set()
        self._dispatch(changes)
        return watch

    def _replace(self, kind: Kind, fresh: dict[str, StoreObject]) -> list[Change]:
        """Swap one kind's cache for ``fresh``; the differences, as changes."""
        changes = []
        for ident, old in list(self._cache[kind].items()):
            if ident not in fresh:
                changes.append(self._apply_delete(kind, ident, old))
        for obj in fresh.values():
            change = self._apply_put(kind, obj, only_newer=False)
            if change is not None:
                changes.append(change)
        return changes

    def _follow(self, watch: Watch) -> None:
        while not self._stop.is_set():
            events = watch.next(timeout=self._poll)
            if not events:
                continue
            with self._changed:
                changes = [c for c in map(self._apply, events) if c is not None]
                self._revision = max(self._revision, watch.revision)
                self._changed.notify_all()
            self._dispatch(changes)

    def _apply(self, event: StoreEvent) -> Change | None:
        if event.type == "delete":
            old = self._cache[event.kind].get(event.id)
            return None if old is None else self._apply_delete(event.kind, event.id, old)
        assert event.obj is not None
        return self._apply_put(event.kind, event.obj, only_newer=True)

    def _apply_put(self, kind: Kind, obj: StoreObject, only_newer: bool) -> Change | None:
        """Cache ``obj``. A watch event older than the cache is a replay and is dropped; a
        re-list reports any difference (a replaced etcd may have gone back in revisions)."""
        old = self._cache[kind].get(obj.id)
        if old is not None and (old.version >= obj.version if only_newer else old.version == obj.version):
            return None
        self._cache[kind][obj.id] = obj
        if isinstance(obj, Task):
            old_task = old if isinstance(old, Task) else None
            self._by_service.put(old_task, obj)
            self._by_node.put(old_task, obj)
        elif isinstance(obj, Network):
            if isinstance(old, Network) and self._networks_by_name.get(old.name) is old:
                del self._networks_by_name[old.name]
            self._networks_by_name[obj.name] = obj
        self._addresses.update(old, obj)
        return Change(kind, "add" if old is None else "update", obj, old)

    def _apply_delete(self, kind: Kind, ident: str, old: StoreObject) -> Change:
        del self._cache[kind][ident]
        if isinstance(old, Task):
            self._by_service.remove(old)
            self._by_node.remove(old)
        elif isinstance(old, Network) and self._networks_by_name.get(old.name) is old:
            del self._networks_by_name[old.name]
        self._addresses.update(old, None)
        return Change(kind, "delete", old, old)

    def _dispatch(self, changes: list[Change]) -> None:
        with self._lock:
            handlers = list(self._handlers)
        for change in changes:
            for handler in handlers:
                try:
                    handler(change)
                except Exception:
                    log.exception("informer handler failed", kind=change.kind.value,
                                  change=change.type, id=change.obj.id, **object_fields(change.obj))
