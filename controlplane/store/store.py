"""The typed store: services, tasks, nodes, networks and secrets in etcd, with optimistic concurrency.

Invariants:
- an object's ``version`` is its key's ``mod_revision`` (0 = not stored); every write
  is one etcd transaction comparing it: create expects 0, update and delete expect
  the version the object was read at. A stale write raises ``StoreConflict`` naming
  the object; nothing is forced;
- ``batch`` writes up to ``max_txn_ops`` ops per transaction, all-or-nothing within
  each transaction; larger batches are split into transactions applied in order, and
  a conflict in one stops the rest (``StoreConflict.applied`` tells how many ops
  were committed before it, ``StoreConflict.revision`` at which revision);
- a write may be *fenced* on a ``Leadership``: it then also compares the leader key's
  create revision, so a deposed leader cannot write (``NotLeader``);
- ``write_guarded`` adds store-level guarantees that span objects, in the same one
  transaction: a *guard* meta key compared at the revision it was read at and
  rewritten (every writer of a kind of allocation, e.g. networks' subnets and VNIs,
  serialises on it), and *claims*, meta keys that must not exist and are created
  (e.g. a node index: at most one node ever takes it);
- ``list_all`` reads every kind at one revision, in pages, so the snapshot is
  consistent and a watch from ``revision + 1`` misses nothing;
- reads retry while etcd is unavailable, up to ``timeout``; writes raise
  ``StoreUnavailable`` at once (a write that timed out may have been applied: re-read);
- objects returned carry the version they were read or written at; callers must
  not mutate objects they did not create (copy with ``dataclasses.replace``).
"""

from __future__ import annotations

import dataclasses
import functools
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from pyetcd import transactions as tx

from model.objects import Network, Node, Secret, Service, Task

from . import keys
from ._client import ClientTLS, connect, read, translate
from .codec import StoreObject, decode, encode, kind_of
from .election import Leadership, campaign
from .errors import NotLeader, StoreCompacted, StoreConflict, StoreError
from .keys import Kind
from .watch import Watch

__all__ = ["Op", "Snapshot", "Store"]

Snapshot = dict[Kind, dict[str, StoreObject]]
T = TypeVar("T", Service, Task, Node, Network, Secret)
Action = Literal["create", "update", "delete"]

DEFAULT_MAX_TXN_OPS = 128  # etcd's default --max-txn-ops


@dataclass(frozen=True)
class Op:  # frozen, but ``key`` is cached in __dict__ by cached_property
    """One write of a batch; build with ``Op.create/update/delete``."""

    action: Action
    obj: StoreObject

    @classmethod
    def create(cls, obj: StoreObject) -> Op:
        return cls("create", obj)

    @classmethod
    def update(cls, obj: StoreObject) -> Op:
        return cls("update", obj)

    @classmethod
    def delete(cls, obj: StoreObject) -> Op:
        return cls("delete", obj)

    @functools.cached_property
    def key(self) -> str:
        return keys.object_key(kind_of(self.obj), self.obj.id)

    @property
    def expected(self) -> int:
        """The mod_revision the key must have for this op to apply."""
        return 0 if self.action == "create" else self.obj.version


class Store:
    """Typed access to etcd; thread-safe (pyetcd's client is)."""

    def __init__(self, endpoints: list[str], *, timeout: float = 5.0, tls: ClientTLS | None = None,
                 max_txn_ops: int = DEFAULT_MAX_TXN_OPS, page_size: int = 1000) -> None:
        self.endpoints = list(endpoints)
        self.timeout = timeout
        self.max_txn_ops = max_txn_ops
        self.page_size = page_size
        self._kv = connect(self.endpoints, timeout, tls)
        # Watches get their own connection: a failed unary call makes pyetcd drop the
        # client's watch stream, and that must not break watches for a hiccup elsewhere.
        self._watch_client = connect(self.endpoints, timeout, tls)
        self._lock = threading.Lock()
        self._leaderships: list[Leadership] = []

    def close(self) -> None:
        """Stop keep-alives of leaderships still held (without resigning) and close connections."""
        with self._lock:
            held, self._leaderships = self._leaderships, []
        for leadership in held:
            leadership.stop()
        self._watch_client.close()
        self._kv.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- reads ------------------------------------------------------------

    def get(self, kind: Kind, ident: str) -> StoreObject | None:
        key = keys.object_key(kind, ident)
        raw, meta = read(f"get {key}", lambda: self._kv.get(key), self.timeout)
        return None if raw is None else decode(kind, key, raw, meta.mod_revision)

    def get_service(self, ident: str) -> Service | None:
        return _typed(self.get(Kind.SERVICE, ident), Service)

    def get_task(self, ident: str) -> Task | None:
        return _typed(self.get(Kind.TASK, ident), Task)

    def get_node(self, ident: str) -> Node | None:
        return _typed(self.get(Kind.NODE, ident), Node)

    def get_network(self, ident: str) -> Network | None:
        return _typed(self.get(Kind.NETWORK, ident), Network)

    def get_secret(self, ident: str) -> Secret | None:
        return _typed(self.get(Kind.SECRET, ident), Secret)

    def list_kind(self, kind: Kind) -> list[StoreObject]:
        objs, _ = self._list_kind(kind, revision=0)
        return list(objs.values())

    def list_services(self) -> list[Service]:
        return [_typed_req(o, Service) for o in self.list_kind(Kind.SERVICE)]

    def list_tasks(self, service_id: str | None = None, node_id: str | None = None) -> list[Task]:
        """Tasks, optionally of one service and/or node (filtered here; controllers use the informer)."""
        tasks = [_typed_req(o, Task) for o in self.list_kind(Kind.TASK)]
        return [t for t in tasks if (service_id is None or t.service_id == service_id)
                and (node_id is None or t.node_id == node_id)]

    def list_nodes(self) -> list[Node]:
        return [_typed_req(o, Node) for o in self.list_kind(Kind.NODE)]

    def list_networks(self) -> list[Network]:
        return [_typed_req(o, Network) for o in self.list_kind(Kind.NETWORK)]

    def list_secrets(self) -> list[Secret]:
        """Every version of every secret and config (values sealed)."""
        return [_typed_req(o, Secret) for o in self.list_kind(Kind.SECRET)]

    def list_all(self) -> tuple[Snapshot, int]:
        """Every object of every kind at one revision, and that revision."""
        for _ in range(3):
            snapshot: Snapshot = {}
            revision = 0
            try:
                for kind in Kind:
                    snapshot[kind], revision = self._list_kind(kind, revision)
            except StoreCompacted:
                continue  # compacted under a long paged read: read again at a newer revision
            return snapshot, revision
        raise StoreCompacted(revision, 0)

    def _list_kind(self, kind: Kind, revision: int) -> tuple[dict[str, StoreObject], int]:
        """All objects of ``kind`` at ``revision`` (0 = now), paged; returns the revision read."""
        out: dict[str, StoreObject] = {}
        start, end = keys.prefix(kind).encode(), keys.range_end(keys.prefix(kind)).encode()
        while True:
            resp = read(f"range {keys.prefix(kind)}", functools.partial(
                self._kv.get_range_response, start, end, limit=self.page_size,
                revision=revision or None), self.timeout)
            revision = revision or int(resp.header.revision)
            for kv in resp.kvs:
                key = kv.key.decode()
                out[keys.parse(key)[1]] = decode(kind, key, kv.value, kv.mod_revision)
            if not resp.more or not resp.kvs:
                return out, revision
            start = resp.kvs[-1].key + b"\0"

    def revision(self) -> int:
        """etcd's current revision."""
        resp = read("revision", lambda: self._kv.get_response(keys.ROOT, count_only=True), self.timeout)
        return int(resp.header.revision)

    # ---- writes -----------------------------------------------------------

    def create(self, obj: T) -> T:
        """Store a new object; ``StoreConflict`` if its key exists. Returns it with its version."""
        return _typed_req(self.batch([Op.create(obj)])[0], type(obj))

    def update(self, obj: T) -> T:
        """Replace an object read at ``obj.version``; ``StoreConflict`` if it changed since."""
        return _typed_req(self.batch([Op.update(obj)])[0], type(obj))

    def delete(self, obj: StoreObject) -> None:
        """Delete an object read at ``obj.version``; ``StoreConflict`` if it changed or is gone."""
        self.batch([Op.delete(obj)])

    def batch(self, ops: Sequence[Op], fence: Leadership | None = None) -> list[StoreObject | None]:
        """Apply ``ops`` (see the module invariants); returns each op's object with its new
        version, or None for a delete."""
        _check_batch(ops)
        results: list[StoreObject | None] = []
        step = max(1, self.max_txn_ops - (1 if fence else 0))
        revision = 0  # of the last transaction committed
        for start in range(0, len(ops), step):
            try:
                revision, done = self._txn(ops[start:start + step], fence)
            except StoreConflict as conflict:
                conflict.applied, conflict.revision = start, revision
                raise
            results.extend(done)
        return results

    def _txn(self, ops: Sequence[Op], fence: Leadership | None) -> tuple[int, list[StoreObject | None]]:
        compare = [tx.Mod(op.key) == op.expected for op in ops]
        specs: dict[int, str] = {}  # ops keep every spec alive while this memo is used
        success: list[Any] = [tx.Delete(op.key) if op.action == "delete"
                              else tx.Put(op.key, encode(op.obj, specs)) for op in ops]
        if fence is not None:
            compare.append(tx.Create(fence.key) == fence.revision)
        with translate(f"txn of {len(ops)} ops"):
            ok, responses = self._kv.transaction(compare=compare, success=success, failure=[])
        if not ok:
            raise self._conflict(ops, fence)
        revision = _txn_revision(responses)
        return revision, [None if op.action == "delete" else dataclasses.replace(op.obj, version=revision)
                          for op in ops]

    def write_guarded(self, ops: Sequence[Op], *, guard: tuple[str, int] | None = None,
                      claims: Sequence[str] = ()) -> list[StoreObject | None]:
        """Apply ``ops`` in one transaction that also requires the meta key ``guard[0]``
        to be at mod_revision ``guard[1]`` (0: absent; see :meth:`meta_version`) and
        rewrites it, and creates each meta key of ``claims``, which must not exist.
        ``StoreConflict`` (naming what differed) if any compare fails; nothing is written."""
        _check_batch(ops)
        if len(ops) + len(claims) + (1 if guard else 0) > self.max_txn_ops:
            raise ValueError(f"a guarded write of {len(ops)} ops and {len(claims)} claims does not fit "
                             f"one transaction of {self.max_txn_ops}")
        stamp = ops[0].obj.id if ops else ""
        compare = [tx.Mod(op.key) == op.expected for op in ops]
        success: list[Any] = [tx.Delete(op.key) if op.action == "delete" else tx.Put(op.key, encode(op.obj))
                              for op in ops]
        extra = [(keys.meta_key(name), 0, "claim") for name in claims]
        if guard is not None:
            extra.append((keys.meta_key(guard[0]), guard[1], "guard"))
        for key, expected, what in extra:
            compare.append((tx.Create(key) if what == "claim" else tx.Mod(key)) == expected)
            success.append(tx.Put(key, stamp))
        with translate(f"guarded txn of {len(ops)} ops"):
            ok, responses = self._kv.transaction(compare=compare, success=success, failure=[])
        if not ok:
            found = self._conflict(ops, None).conflicts if ops else []
            raise StoreConflict(found + self._meta_conflicts(extra))
        revision = _txn_revision(responses)
        return [None if op.action == "delete" else dataclasses.replace(op.obj, version=revision)
                for op in ops]

    def _meta_conflicts(self, extra: list[tuple[str, int, str]]) -> list[str]:
        gets: list[Any] = [tx.Get(key) for key, _, _ in extra]
        with translate("read conflicting meta keys"):
            _, found = self._kv.transaction(compare=[], success=gets, failure=[])
        out = []
        for (key, expected, what), kvs in zip(extra, found, strict=False):
            found_rev = kvs[0][1].mod_revision if kvs else 0
            if what == "claim" and kvs:
                out.append(f"{key.removeprefix(keys.ROOT)}: already claimed")
            elif what == "guard" and found_rev != expected:
                out.append(f"{key.removeprefix(keys.ROOT)}: guard expected version {expected}, "
                           f"found {found_rev}")
        return out

    def meta_version(self, name: str) -> int:
        """The mod_revision of meta key ``name`` (0: absent): what a guarded write compares."""
        _, meta = read(f"get meta {name}", lambda: self._kv.get(keys.meta_key(name)), self.timeout)
        return 0 if meta is None else int(meta.mod_revision)

    def _conflict(self, ops: Sequence[Op], fence: Leadership | None) -> StoreConflict:
        """Name what failed. Read after the failed txn (not inside it, which would send every
        value back on each success too): a key changed since is reported as found then."""
        gets: list[Any] = [tx.Get(op.key) for op in ops] + ([tx.Get(fence.key)] if fence else [])
        with translate("read conflicting keys"):
            _, found = self._kv.transaction(compare=[], success=gets, failure=[])
        if fence is not None:
            leader = found[-1]
            if not leader or leader[0][1].create_revision != fence.revision:
                fence.mark_lost("a fenced write found another leader term")
                return NotLeader(fence.name, fence.candidate_id)
        conflicts = []
        for op, kvs in zip(ops, found, strict=False):
            found_rev = kvs[0][1].mod_revision if kvs else 0
            if found_rev != op.expected:
                conflicts.append(f"{op.key.removeprefix(keys.ROOT)}: {op.action} expected version "
                                 f"{op.expected}, found {found_rev}")
        return StoreConflict(conflicts)

    # ---- watch ------------------------------------------------------------

    def watch(self, from_revision: int) -> Watch:
        """Every object change from ``from_revision`` on. If that revision is compacted,
        ``StoreCompacted`` is raised here or by the watch's first ``next``."""
        return Watch(self._watch_client, from_revision)

    # ---- cluster metadata -------------------------------------------------

    def get_meta(self, name: str) -> str | None:
        raw, _ = read(f"get meta {name}", lambda: self._kv.get(keys.meta_key(name)), self.timeout)
        return None if raw is None else bytes(raw).decode()

    def put_meta(self, name: str, value: str) -> None:
        with translate(f"put meta {name}"):
            self._kv.put(keys.meta_key(name), value)

    def update_meta(self, name: str, change: Callable[[str | None], str]) -> str:
        """Set ``name`` to ``change(its value)`` (None: absent), compare-and-swap
        on the version read, again while another writer came between; the
        value written."""
        key = keys.meta_key(name)
        while True:
            raw, meta = read(f"get meta {name}", lambda: self._kv.get(key), self.timeout)
            value = change(None if raw is None else bytes(raw).decode())
            version = 0 if meta is None else int(meta.mod_revision)
            with translate(f"put meta {name}"):
                ok, _ = self._kv.transaction(compare=[tx.Mod(key) == version], success=[tx.Put(key, value)],
                                             failure=[])
            if ok:
                return value

    def create_meta(self, name: str, value: str) -> str:
        """Set ``name`` unless it is set; returns the value that is stored (first writer wins)."""
        key = keys.meta_key(name)
        with translate(f"create meta {name}"):
            ok, responses = self._kv.transaction(compare=[tx.Create(key) == 0], success=[tx.Put(key, value)],
                                                 failure=[tx.Get(key)])
        return value if ok else bytes(responses[0][0][0]).decode()

    # ---- leader election --------------------------------------------------

    def campaign(self, name: str, candidate_id: str, ttl: int, *, timeout: float | None = None,
                 stop: threading.Event | None = None) -> Leadership | None:
        """Block until ``candidate_id`` leads election ``name`` (None on timeout or ``stop``)."""
        leadership = campaign(self._kv, name, candidate_id, ttl, timeout=timeout, stop=stop)
        if leadership is not None:
            with self._lock:
                self._leaderships = [ld for ld in self._leaderships if not ld.lost()]
                self._leaderships.append(leadership)
        return leadership

    def leader(self, name: str) -> str | None:
        """The candidate id currently leading ``name``, if any."""
        raw, _ = read(f"get leader {name}", lambda: self._kv.get(keys.leader_key(name)), self.timeout)
        return None if raw is None else bytes(raw).decode()


# ---- helpers ----------------------------------------------------------------

def _check_batch(ops: Sequence[Op]) -> None:
    seen: set[str] = set()
    for op in ops:
        if op.action != "create" and op.obj.version <= 0:
            raise ValueError(f"{op.action} of {op.key} needs the version it was read at, got "
                             f"{op.obj.version}")
        if op.key in seen:  # etcd rejects a txn that writes one key twice
            raise ValueError(f"batch writes {op.key} twice")
        seen.add(op.key)


def _txn_revision(responses: list[Any]) -> int:
    for r in responses:
        kind = r.WhichOneof("response")
        return int(getattr(r, kind).header.revision)
    raise StoreError("empty transaction response")


def _typed(obj: StoreObject | None, cls: type[T]) -> T | None:
    return None if obj is None else _typed_req(obj, cls)


def _typed_req(obj: StoreObject | None, cls: type[T]) -> T:
    if not isinstance(obj, cls):
        raise TypeError(f"expected a {cls.__name__}, got {type(obj).__name__}")
    return obj

