"""The store: the only code that knows etcd keys, and the informer controllers read.

- ``keys``: builds and parses every key (``/orch/<kind>/<id>``, leader, meta);
  secrets and configs are a kind too, their values sealed before they get here
  (``controlplane.envelope``): the store never sees a plaintext;
- ``Store``: typed get/list/create/update/delete and batched transactional writes,
  each comparing the object's ``version`` (its ``mod_revision``); guarded writes
  (a guard key compared and rewritten, claim keys created) for allocations that
  span objects (networks' subnets and VNIs, node indexes); watch; leader
  election (``campaign`` -> ``Leadership``);
- ``Informer``: list + watch cache with tasks-by-service/node indexes, networks by
  name and the addresses in use per network;
- errors (see ``errors``)::

    StoreError
    ├── StoreConflict ── NotLeader
    ├── StoreUnavailable
    ├── StoreFull
    ├── StoreCompacted
    └── StoreCorrupt

Invariants: every write is a transaction that compares versions; nothing outside
this package builds an etcd key or imports pyetcd.
"""

from .codec import StoreObject, encode, kind_of
from .election import Leadership
from .errors import (
    NotLeader,
    StoreCompacted,
    StoreConflict,
    StoreCorrupt,
    StoreError,
    StoreFull,
    StoreUnavailable,
)
from .informer import Change, Handler, Informer
from .keys import NETWORKS_GUARD, Kind, node_index_claim
from .store import Op, Snapshot, Store
from .watch import StoreEvent, Watch

__all__ = [
    "NETWORKS_GUARD", "Change", "Handler", "Informer", "Kind", "Leadership", "NotLeader", "Op", "Snapshot",
    "Store", "StoreCompacted", "StoreConflict", "StoreCorrupt", "StoreError", "StoreEvent", "StoreFull",
    "StoreObject", "StoreUnavailable", "Watch", "encode", "kind_of", "node_index_claim",
]
