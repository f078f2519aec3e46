"""The store's exceptions: one hierarchy, so callers can catch ``StoreError``.

::

    StoreError
    ├── StoreConflict      a compare failed: an object changed (or exists, or is gone)
    │                      since it was read; re-read and retry the decision, never force
    │   └── NotLeader      a write fenced on a leadership that has been lost
    ├── StoreUnavailable   etcd did not answer (down, timeout, no endpoint left)
    ├── StoreFull          etcd refuses writes: its database reached its space quota
    ├── StoreCompacted     a revision asked for was compacted away; re-list
    └── StoreCorrupt       a stored value does not decode; names the key
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["NotLeader", "StoreCompacted", "StoreConflict", "StoreCorrupt", "StoreError", "StoreFull",
           "StoreUnavailable"]


class StoreError(Exception):
    """Base of every store error."""


class StoreConflict(StoreError):
    """Compare-and-swap failed.

    ``conflicts`` names each stale object as ``"<kind>/<id>: expected version E, found F"``
    (found 0 = absent). ``applied`` is how many ops of a chunked batch were committed
    before the failing chunk (0 for single writes), and ``revision`` the etcd revision
    they were committed at (0 when none were): a cache at that revision holds them.
    """

    def __init__(self, conflicts: Sequence[str], applied: int = 0, revision: int = 0) -> None:
        self.conflicts = list(conflicts)
        self.applied = applied  # set by a chunked batch once it knows
        self.revision = revision
        super().__init__(self.conflicts)

    def __str__(self) -> str:
        shown = "; ".join(self.conflicts[:5])
        more = f" (+{len(self.conflicts) - 5} more)" if len(self.conflicts) > 5 else ""
        done = f"; {self.applied} earlier ops were committed" if self.applied else ""
        return f"conflict: {shown}{more}{done}; re-read and retry"


class NotLeader(StoreConflict):
    """The write was fenced on a leadership this candidate no longer holds."""

    def __init__(self, election: str, candidate: str) -> None:
        self.election, self.candidate = election, candidate
        super().__init__([f"leader/{election}: {candidate} is no longer the leader"])


class StoreUnavailable(StoreError):
    """etcd could not be reached or did not answer in time."""


class StoreFull(StoreError):
    """etcd's database reached its quota (``--quota-backend-bytes``): etcd raised
    its NOSPACE alarm and refuses every write that adds data, and leases, until
    an operator frees space and disarms the alarm. Reads and deletes still work."""

    def __init__(self, what: str) -> None:
        self.what = what
        super().__init__(
            f"the cluster store is full: etcd's database reached its space quota and refuses writes "
            f"({what}); reads still work. To recover, compact and defragment etcd or restart it with a "
            "larger --quota-backend-bytes, then clear its alarm: etcdctl alarm disarm")


class StoreCompacted(StoreError):
    """The revision asked for is older than etcd's compaction point."""

    def __init__(self, revision: int, compacted: int) -> None:
        self.revision, self.compacted = revision, compacted
        super().__init__(f"revision {revision} is compacted (compaction point {compacted}); re-list")


class StoreCorrupt(StoreError):
    """A stored value could not be decoded."""

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        super().__init__(f"cannot decode {key}: {reason}")
