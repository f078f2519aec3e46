"""The cluster's trust, as the control plane keeps it: the CA, the join
tokens, the revoked nodes, and the certificates it signs (``common.pki``).

**Where the CA key lives, and why: on the control plane's disk**, in
``<pki dir>/ca.key`` (0600, in a 0700 directory), beside ``ca.crt``. Not in
etcd, because etcd's own TLS is built on this CA: its members' certificates
and the control plane's client certificate come from it, so the CA must
exist before etcd can be reached at all. A key in etcd would also travel
in every etcd backup and snapshot. ``orch up`` makes the CA before it starts
etcd, and its replicas share the directory. A replica on another machine
gets the key when it joins with the control-plane token (sealed under the
token, ``common.join``), or is given a copy of the directory.

**Join tokens** (``SWMTKN-1-<CA digest>-<secret>``, one for nodes, one for
control planes) live in etcd's meta keys, their secrets sealed with the
secrets key (``controlplane.envelope``), so every replica accepts the same
ones and ``rotate`` takes effect everywhere; joined nodes keep their
certificates. Each replica also writes them to ``<pki dir>/node-token`` and
``controlplane-token`` (0600) for the local operator; a cluster's first
replica adopts the ones it finds there (``orch up`` writes them first).

**Revocation** is by node id, kept in etcd (``revoked-nodes``): a removed
node's every certificate is refused (``PeerGuard``), and a node that joins
again is given a new id. Each replica reads the list at most once a second;
the replica that revokes knows at once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import secrets
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from common import pki
from common.auth import write_private
from controlplane.envelope import Kek, open_value, seal
from model.objects import Sealed

if TYPE_CHECKING:
    from controlplane.etcd import EtcdTLS
    from controlplane.store import Store
    from controlplane.store._client import ClientTLS

__all__ = ["CA_CERT", "CA_KEY", "Trust", "TrustError", "create_ca", "etcd_client_tls", "etcd_tls",
           "issue_local", "load_ca"]

CA_CERT, CA_KEY = "ca.crt", "ca.key"
TOKENS_META = "join-tokens"
REVOKED_META = "revoked-nodes"
TOKEN_FILES = {"node": "node-token", "controlplane": "controlplane-token"}
JOIN_ROLES = ("node", "controlplane")
_REVOKED_TTL = 1.0


class TrustError(Exception):
    """A CA that cannot be read or made, a role or request that cannot be served."""


def load_ca(pki_dir: str) -> pki.CA | None:
    """The CA in ``pki_dir``; None if there is none. TrustError if it is
    half there, unreadable, or its key is readable by others."""
    cert_path, key_path = os.path.join(pki_dir, CA_CERT), os.path.join(pki_dir, CA_KEY)
    have = [os.path.exists(cert_path), os.path.exists(key_path)]
    if not any(have):
        return None
    if not all(have):
        raise TrustError(f"{pki_dir} holds {CA_CERT if have[0] else CA_KEY} without "
                         f"{CA_KEY if have[0] else CA_CERT}: copy both, or neither")
    try:
        mode = os.stat(key_path).st_mode
        if mode & 0o077:
            raise TrustError(f"the CA key {key_path} is readable by others (mode {mode & 0o777:o}): "
                             f"run chmod 600 {key_path}")
        with open(cert_path, "rb") as f:
            cert = f.read()
        with open(key_path, "rb") as f:
            key = f.read()
    except OSError as err:
        raise TrustError(f"cannot read the CA in {pki_dir}: {err.strerror or err}") from None
    try:
        if not pki.ca_cluster_id(cert) or not pki.matches_key(cert, key):
            raise pki.CertError(f"{CA_KEY} is not the key of {CA_CERT}, or {CA_CERT} names no cluster")
    except pki.CertError as err:
        raise TrustError(f"the CA in {pki_dir} cannot sign: {err}") from None
    return pki.CA(cert, key)


def create_ca(pki_dir: str, now: float | None = None) -> pki.CA:
    """The CA in ``pki_dir``, made first (a new cluster id) if there is none.
    Two processes doing this at once agree on one (a lock in the directory)."""
    os.makedirs(pki_dir, mode=0o700, exist_ok=True)
    with open(os.path.join(pki_dir, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = load_ca(pki_dir)
        if found is not None:
            return found
        ca = pki.new_ca(secrets.token_hex(8), time.time() if now is None else now)
        write_private(os.path.join(pki_dir, CA_KEY), ca.key_pem)
        write_private(os.path.join(pki_dir, CA_CERT), ca.cert_pem)
        os.chmod(os.path.join(pki_dir, CA_CERT), 0o644)
        return ca


def issue_local(ca: pki.CA, node_id: str, role: str, *, now: float | None = None,
                days: float = pki.NODE_DAYS, addresses: list[str] | None = None,
                dns_names: list[str] | None = None) -> tuple[bytes, bytes]:
    """A new key and its certificate, signed here: (cert, key). Carries the
    role's server name (``pki.SERVER_NAMES``), "localhost" and ``addresses``."""
    key = pki.new_key()
    names = [pki.SERVER_NAMES[role], "localhost", *(dns_names or [])]
    cert = pki.issue(ca, pki.new_csr(key), node_id, role, pki.ca_cluster_id(ca.cert_pem),
                     time.time() if now is None else now, days=days, dns_names=names,
                     addresses=["127.0.0.1", *(addresses or [])])
    return cert, key


def etcd_tls(ca: pki.CA, directory: str, name: str, addresses: list[str]) -> EtcdTLS:
    """An etcd member's TLS files in ``directory`` (``<name>.crt``/``.key``
    and ``ca.crt``), made from the CA if missing: role ``etcd``, which no orch
    API serves. The member takes only control planes as clients and only
    members as peers. The files last as long as the CA: etcd is not told of a
    renewal."""
    from controlplane.etcd import EtcdTLS

    cert_path, key_path = os.path.join(directory, f"{name}.crt"), os.path.join(directory, f"{name}.key")
    if not (os.path.exists(cert_path) and os.path.exists(key_path)):
        cert, key = issue_local(ca, name, "etcd", days=pki.CA_YEARS * 365, addresses=addresses)
        write_private(key_path, key)
        write_private(cert_path, cert)
    return EtcdTLS(os.path.join(directory, CA_CERT), cert_path, key_path,
                   client_name=pki.SERVER_NAMES["controlplane"], peer_name=pki.SERVER_NAMES["etcd"])


def etcd_client_tls(ca: pki.CA, replica: str, endpoints: list[str]) -> ClientTLS | None:
    """This replica's client certificate towards etcd (in memory only, as
    long-lived as the CA: the store's channels are not re-made on a
    renewal), when any endpoint is https; else None."""
    from controlplane.store._client import ClientTLS

    if not any(e.startswith("https://") for e in endpoints):
        return None
    cert, key = issue_local(ca, replica, "controlplane", days=pki.CA_YEARS * 365)
    return ClientTLS(ca.cert_pem, cert, key)


class Trust:
    """The control plane's CA and the cluster's tokens and revocations."""

    def __init__(self, ca: pki.CA, store: Store, kek: Kek, *, pki_dir: str = "",
                 days: float = pki.NODE_DAYS, clock: Callable[[], float] = time.time) -> None:
        self.ca = ca
        self.cluster_id = pki.ca_cluster_id(ca.cert_pem)
        self.store = store
        self.kek = kek
        self.pki_dir = pki_dir
        self.days = days
        self.clock = clock
        self._lock = threading.Lock()
        self._revoked: tuple[float, frozenset[str]] = (-1e18, frozenset())

    # ---- certificates ---------------------------------------------------

    def issue(self, csr: bytes, node_id: str, role: str, days: float = 0.0) -> bytes:
        """A certificate for the CSR's key, as ``node_id`` in ``role``."""
        try:
            return pki.issue(self.ca, csr, node_id, role, self.cluster_id, self.clock(),
                             days=days or self.days, dns_names=[pki.SERVER_NAMES[role], "localhost"],
                             addresses=["127.0.0.1"])
        except pki.CertError as err:
            raise TrustError(str(err)) from None

    def own(self, replica: str, addresses: list[str] | None = None) -> tuple[bytes, bytes]:
        """A new certificate and key for this control-plane replica."""
        return issue_local(self.ca, replica, "controlplane", now=self.clock(), days=self.days,
                           addresses=addresses)

    # ---- join tokens ------------------------------------------------------

    def _aad(self, role: str) -> bytes:
        return f"orch-join-token\0{self.cluster_id}\0{role}".encode()

    def _secrets(self) -> dict[str, str]:
        raw = self.store.get_meta(TOKENS_META)
        if raw is None:
            fresh = {role: self._seal(role, self._initial(role)) for role in JOIN_ROLES}
            raw = self.store.create_meta(TOKENS_META, json.dumps(fresh))
        try:
            sealed = json.loads(raw)
            return {role: open_value(self.kek, Sealed(**sealed[role]), self._aad(role)).decode()
                    for role in JOIN_ROLES}
        except (ValueError, KeyError, TypeError) as err:
            raise TrustError(f"the join tokens in etcd do not open with this secrets key: {err}") from None

    def _initial(self, role: str) -> str:
        """A first token's secret: the one in the pki dir's token file if
        it is this CA's (``orch up`` writes them before anything starts, so
        its agents can be given theirs at once), else a new one."""
        path = os.path.join(self.pki_dir, TOKEN_FILES[role]) if self.pki_dir else ""
        with contextlib.suppress(OSError, pki.TokenError):
            with open(path) as f:
                token = f.read().strip()
            if pki.token_pins(token, self.ca.cert_pem):
                return pki.parse_token(token)[1]
        return pki.make_token(self.ca.cert_pem).rsplit("-", 1)[1]

    def _seal(self, role: str, secret: str) -> dict[str, str]:
        return dataclasses.asdict(seal(self.kek, secret.encode(), self._aad(role)))

    def secret(self, role: str) -> str:
        if role not in JOIN_ROLES:
            raise TrustError(f"role {role!r}: a join token is for {' or '.join(JOIN_ROLES)}")
        return self._secrets()[role]

    def tokens(self) -> dict[str, str]:
        """Role -> the full join token; written to the pki dir too."""
        tokens = {role: pki.make_token(self.ca.cert_pem, secret) for role, secret in self._secrets().items()}
        if self.pki_dir:
            for role, token in tokens.items():
                write_private(os.path.join(self.pki_dir, TOKEN_FILES[role]), (token + "\n").encode())
        return tokens

    def rotate(self, role: str) -> dict[str, str]:
        """A new token for ``role``: the old one no longer joins anything."""
        if role not in JOIN_ROLES:
            raise TrustError(f"role {role!r}: a join token is for {' or '.join(JOIN_ROLES)}")
        self._secrets()  # they exist, and open

        def rotated(raw: str | None) -> str:
            current = json.loads(raw or "{}")
            current[role] = self._seal(role, pki.make_token(self.ca.cert_pem).rsplit("-", 1)[1])
            return json.dumps(current)

        self.store.update_meta(TOKENS_META, rotated)
        return self.tokens()

    # ---- revocation ---------------------------------------------------------

    def revoked(self, fresh: bool = False) -> frozenset[str]:
        """The removed nodes' ids (read at most once a second, unless ``fresh``)."""
        now = time.monotonic()
        with self._lock:
            at, ids = self._revoked
            if now - at < _REVOKED_TTL and not fresh:
                return ids
        try:
            ids = frozenset(json.loads(self.store.get_meta(REVOKED_META) or "[]"))
        except Exception:  # etcd away: keep what was known
            return ids
        with self._lock:
            self._revoked = (now, ids)
        return ids

    def revoke(self, node_id: str) -> None:
        written = self.store.update_meta(
            REVOKED_META, lambda raw: json.dumps(sorted(set(json.loads(raw or "[]")) | {node_id})))
        with self._lock:
            self._revoked = (time.monotonic(), frozenset(json.loads(written)))
