"""Leader election on a lease-bound etcd key (the recipe of etcd's concurrency package).

A candidate grants a lease and creates the election key bound to it, with a
transaction that requires the key not to exist (``create_revision == 0``). The
winner keeps the lease alive; when it stops (crash, partition, ``resign``) the
lease expires or is revoked, etcd deletes the key, and a waiting candidate's
watch wakes it to try again.

Invariants:
- at most one candidate holds the key; its ``create_revision`` names the term and
  fences writes (``Store.batch(ops, fence=leadership)``);
- ``lost()`` becomes true, and stays true, as soon as the holder cannot be sure it
  still leads: the lease is gone (keep-alive answers TTL 0), or no keep-alive has
  succeeded for a whole TTL; a lost leadership is never regained: campaign again;
- waiting candidates keep their own lease alive, so they can win at once.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import structlog
from pyetcd import transactions as tx

from . import keys
from ._client import translate
from .errors import StoreError

__all__ = ["Leadership", "campaign"]

log = structlog.get_logger("orch.store")


class Leadership:
    """A won election; keeps its lease alive on a thread until lost, resigned or stopped."""

    def __init__(self, client: Any, name: str, candidate_id: str, lease_id: int, ttl: int,
                 revision: int) -> None:
        self.name, self.candidate_id = name, candidate_id
        self.key = keys.leader_key(name)
        self.lease_id, self.ttl = lease_id, ttl
        self.revision = revision  # create_revision of the key: this term's fencing token
        self.lost_reason = ""
        self._client = client
        self._lost = threading.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._keepalive, name=f"orch-lease-{name}", daemon=True)
        self._thread.start()

    def lost(self) -> bool:
        return self._lost.is_set()

    def wait_lost(self, timeout: float | None = None) -> bool:
        """Block until the leadership is lost (True) or ``timeout`` passes (False)."""
        return self._lost.wait(timeout)

    def mark_lost(self, reason: str) -> None:
        if not self._lost.is_set():
            self.lost_reason = reason
            log.warning("leadership lost", election=self.name, candidate=self.candidate_id, reason=reason)
            self._lost.set()

    def stop(self) -> None:
        """Stop keeping the lease alive without resigning: others take over after the TTL."""
        self._stopped.set()
        self.mark_lost("stopped")
        if self._thread is not threading.current_thread():
            self._thread.join()

    def resign(self) -> None:
        """Give up leadership now: delete the key if it is still this term's, revoke the lease."""
        self.stop()
        self.lost_reason = "resigned"
        try:
            with translate(f"resign {self.key}"):
                self._client.transaction(compare=[tx.Create(self.key) == self.revision],
                                         success=[tx.Delete(self.key)], failure=[])
                self._client.revoke_lease(self.lease_id)
        except StoreError as exc:  # the lease expires by itself after the TTL
            log.warning("resign failed", election=self.name, error=str(exc))

    def _keepalive(self) -> None:
        interval = max(self.ttl / 3.0, 0.1)
        last_ok = time.monotonic()
        while not self._stopped.wait(interval):
            try:
                remaining = _refresh(self._client, self.lease_id)
            except StoreError as exc:
                if time.monotonic() - last_ok >= self.ttl:
                    self.mark_lost(f"no keep-alive for {self.ttl}s: {exc}")
                    return
                continue
            if remaining <= 0:
                self.mark_lost("lease expired or revoked")
                return
            last_ok = time.monotonic()


def _refresh(client: Any, lease_id: int) -> int:
    """Keep ``lease_id`` alive once; returns its remaining TTL (<= 0: it is gone)."""
    with translate("lease keep-alive"):
        responses = list(client.refresh_lease(lease_id))
    return int(responses[0].TTL) if responses else 0


def campaign(client: Any, name: str, candidate_id: str, ttl: int, *, timeout: float | None = None,
             stop: threading.Event | None = None) -> Leadership | None:
    """Block until ``candidate_id`` wins ``name``; None if ``timeout`` passes or ``stop`` is set."""
    key = keys.leader_key(name)
    deadline = None if timeout is None else time.monotonic() + timeout
    stop = stop or threading.Event()
    lease_id = 0
    try:
        while not stop.is_set():
            if lease_id == 0 or _refresh(client, lease_id) <= 0:
                with translate("lease grant"):
                    lease_id = int(client.lease(ttl).id)
            with translate(f"campaign {key}"):
                ok, responses = client.transaction(
                    compare=[tx.Create(key) == 0], success=[tx.Put(key, candidate_id, lease=lease_id)],
                    failure=[tx.Get(key)])
            if ok:
                revision = int(responses[0].response_put.header.revision)
                log.info("leadership won", election=name, candidate=candidate_id, term=revision)
                won, lease_id = Leadership(client, name, candidate_id, lease_id, ttl, revision), 0
                return won
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            _wait_for_delete(client, key, responses[0], min(ttl / 3.0, left or ttl), stop)
        return None
    finally:
        if lease_id:
            _revoke_quietly(client, lease_id)


def _wait_for_delete(client: Any, key: str, current: Any, timeout: float, stop: threading.Event) -> None:
    """Wait until ``key`` changes after the read that found it held, ``timeout`` or ``stop``."""
    if not current:
        return  # released between our compare and our read: try again now
    gone = threading.Event()
    after = int(current[0][1].response_header.revision) + 1

    def on_response(response: Any) -> None:
        gone.set()  # a delete, or a broken stream: either way, look again

    with translate(f"watch {key}"):
        watch_id = client.add_watch_callback(key, on_response, start_revision=after)
    try:
        deadline = time.monotonic() + timeout
        while not gone.is_set() and not stop.is_set() and time.monotonic() < deadline:
            gone.wait(min(0.05, max(deadline - time.monotonic(), 0)))
    finally:
        try:
            client.cancel_watch(watch_id)
        except Exception as exc:  # a stream that is gone has nothing to cancel
            log.debug("cancel campaign watch failed", error=str(exc))


def _revoke_quietly(client: Any, lease_id: int) -> None:
    try:
        with translate("lease revoke"):
            client.revoke_lease(lease_id)
    except StoreError as exc:
        log.debug("revoke of an unused lease failed", error=str(exc))
