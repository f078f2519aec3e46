"""A node's identity in the cluster: its certificate, how it gets one by
joining, and how it renews it.

Files, in ``<state dir>/pki`` (0700): ``ca.crt``, ``node.crt`` and
``node.key`` (0600). The node id is the certificate's CN.

**Joining** (``join``): the agent has a join token (``SWMTKN-1-<CA
digest>-<secret>``) and the control plane's API address. Its join port is
the API port + ``JOIN_PORT_OFFSET``, 50 (two ports where swarmkit has one:
grpcio's servers either require a client certificate or never ask for one,
so a node without a certificate cannot be served on the mTLS port). The
node fetches the CA there, checks it against the token's digest *before
sending anything else*, then sends a certificate request with an HMAC proof
of the token (``common.join``). The certificate it gets back must verify
against that CA and match its key. A node keeps its certificate across
restarts; it joins again only when it has none, the one it has expired, or
it is given a token for another CA.

**Renewal** (``Renewer``): at a random point between 50% and 80% of the
certificate's lifetime (``pki.renew_at``), the node asks the control plane
over its mTLS link (``Dispatcher.Renew``) for a new certificate for a new
key, writes it, and swaps it into ``creds``: the node API serves it from
the next handshake on and the next session uses it. No task restarts.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from common import join as joincrypto
from common import pki
from common.auth import write_private
from common.tls import ServerTLS

__all__ = ["JOIN_PORT_OFFSET", "JoinRefused", "Joined", "NodeIdentity", "Renewer", "join", "join_address",
           "load", "obtain"]

JOIN_PORT_OFFSET = 50  # below a local cluster's metrics ports (API port + 100)
_TIMEOUT = 10.0
_JOIN = "/orch.cluster.v1.Join"


class JoinRefused(Exception):
    """The cluster will not have this node (a wrong token, another CA): retrying cannot help."""


@dataclass
class NodeIdentity:
    pki_dir: str
    creds: ServerTLS

    @property
    def node_id(self) -> str:
        return pki.identity(self.creds.cert_pem).node_id


def join_address(api: str) -> str:
    """The join port's address for a control plane's API address."""
    host, _, port = api.rpartition(":")
    return f"{host}:{int(port) + JOIN_PORT_OFFSET}"


def _paths(pki_dir: str) -> tuple[str, str, str]:
    return (os.path.join(pki_dir, "ca.crt"), os.path.join(pki_dir, "node.crt"),
            os.path.join(pki_dir, "node.key"))


def load(pki_dir: str, token: str = "", now: float | None = None) -> NodeIdentity | None:
    """The identity kept in ``pki_dir`` if it is usable: present, valid for
    a while yet, and of the CA ``token`` pins (when given); else None."""
    ca_path, cert_path, key_path = _paths(pki_dir)
    try:
        with open(ca_path, "rb") as f:
            ca = f.read()
        with open(cert_path, "rb") as f:
            cert = f.read()
        with open(key_path, "rb") as f:
            key = f.read()
        if token and not pki.token_pins(token, ca):
            return None
        who = pki.verify(cert, ca, time.time() if now is None else now)
        if not pki.matches_key(cert, key) or who.role != "node":
            return None
    except (OSError, pki.CertError, pki.TokenError):
        return None
    return NodeIdentity(pki_dir, ServerTLS(ca, cert, key))


@dataclass
class Joined:
    identity: NodeIdentity
    api_addresses: list[str]  # as the control plane gave them
    csr: bytes  # the request sent, which ``sealed`` is bound to
    sealed: bytes  # a control plane's: the CA key and the secrets key (``common.join``)


def join(pki_dir: str, addresses: list[str], token: str, name: str, node_id: str = "",
         role: str = "node", *, pb: Any) -> Joined:
    """Join through the first control plane that answers; the identity is
    written to ``pki_dir``. ``pb``: the generated ``proto.cluster_pb2``
    (given by the caller: this layer does not import the wire messages).
    JoinRefused when one answers no; OSError-like ``ConnectionError`` when
    none answers."""
    import grpc

    try:
        digest_secret = pki.parse_token(token)
    except pki.TokenError as err:
        raise JoinRefused(f"the join token: {err}") from None
    secret = digest_secret[1]
    last = ""
    for api in addresses:
        target = join_address(api)
        with grpc.insecure_channel(target) as channel:
            ca_call = channel.unary_unary(f"{_JOIN}/CA", request_serializer=pb.CARequest.SerializeToString,
                                          response_deserializer=pb.CAReply.FromString)
            cert_call = channel.unary_unary(f"{_JOIN}/Certificate",
                                            request_serializer=pb.JoinRequest.SerializeToString,
                                            response_deserializer=pb.JoinReply.FromString)
            try:
                ca = bytes(ca_call(pb.CARequest(), timeout=_TIMEOUT).ca)
            except grpc.RpcError as err:
                last = f"{target}: {err.details() or err.code().name}"
                continue
            try:
                pinned = pki.token_pins(token, ca)
            except pki.CertError:
                pinned = False
            if not pinned:
                raise JoinRefused(f"the control plane at {target} shows a CA that is not the one the join "
                                  "token pins: refusing to send it anything (another cluster, or an "
                                  "impostor)")
            key = pki.new_key()
            csr = pki.new_csr(key)
            when = time.time()
            req = pb.JoinRequest(role=role, csr=csr, name=name, node_id=node_id, time=when,
                                  proof=joincrypto.proof(secret, role, csr, name, node_id, when))
            try:
                reply = cert_call(req, timeout=_TIMEOUT)
            except grpc.RpcError as err:
                if err.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED,
                                  grpc.StatusCode.INVALID_ARGUMENT):
                    raise JoinRefused(f"the control plane at {target} refused to join this node: "
                                      f"{err.details()}") from None
                last = f"{target}: {err.details() or err.code().name}"
                continue
        cert = bytes(reply.cert)
        try:
            who = pki.verify(cert, ca, time.time())
        except pki.CertError as err:
            raise JoinRefused(f"the certificate from {target} does not verify: {err}") from None
        if not pki.matches_key(cert, key) or who.role != role:
            raise JoinRefused(f"the certificate from {target} is not for this node's key and role")
        ca_path, cert_path, key_path = _paths(pki_dir)
        write_private(key_path, key)
        write_private(cert_path, cert)
        write_private(ca_path, ca)
        return Joined(NodeIdentity(pki_dir, ServerTLS(ca, cert, key)), list(reply.api_addresses) or addresses,
                      csr, bytes(reply.sealed))
    raise ConnectionError(f"no control plane answered on its join port ({last})")


class Renewer:
    """Renews ``identity``'s certificate at a random 50-80% of its life,
    over ``renew`` (a CSR in, a certificate out)."""

    def __init__(self, identity: NodeIdentity, renew: Callable[[bytes], bytes], stopped: threading.Event,
                 log: object | None = None, draw: Callable[[], float] = random.random) -> None:
        self.identity = identity
        self.renew = renew
        self.stopped = stopped
        self.log = log
        self.draw = draw
        self.renewed = 0

    def due(self) -> float:
        return pki.renew_at(self.identity.creds.cert_pem, self.draw())

    def run(self) -> None:
        when = self.due()
        while not self.stopped.wait(max(0.0, when - time.time())):
            try:
                self.renew_now()
                when = self.due()
            except Exception as err:
                left = pki.identity(self.identity.creds.cert_pem).not_after - time.time()
                when = time.time() + max(1.0, min(30.0, left / 10))
                if self.log is not None:
                    self.log.warning("certificate renewal failed", error=str(err))  # type: ignore[attr-defined]

    def renew_now(self) -> None:
        creds = self.identity.creds
        key = pki.new_key()
        cert = self.renew(pki.new_csr(key))
        who = pki.verify(cert, creds.ca_pem, time.time())
        if not pki.matches_key(cert, key) or who.node_id != self.identity.node_id:
            raise pki.CertError("the renewed certificate is not for this node's new key")
        _, cert_path, key_path = _paths(self.identity.pki_dir)
        write_private(key_path, key)
        write_private(cert_path, cert)
        creds.rotate(cert, key)
        self.renewed += 1
        if self.log is not None:
            self.log.info("certificate renewed", serial=who.serial,  # type: ignore[attr-defined]
                          not_after=who.not_after)


def obtain(pki_dir: str, addresses: list[str], token: str, name: str, node_id: str,
           stopped: threading.Event, log: object | None = None, *, pb: Any) -> NodeIdentity | None:
    """The kept identity if usable, else one got by joining, retrying while
    no control plane answers (the cluster may be starting); None if
    ``stopped`` first. JoinRefused if the cluster says no."""
    found = load(pki_dir, token)
    if found is not None:
        return found
    delay, quiet_until = 0.05, 0.0
    while not stopped.is_set():
        try:
            identity = join(pki_dir, addresses, token, name, node_id, pb=pb).identity
        except ConnectionError as err:
            if log is not None and time.monotonic() >= quiet_until:
                log.warning("cannot join yet", error=str(err))  # type: ignore[attr-defined]
                quiet_until = time.monotonic() + 10.0
            stopped.wait(delay)
            delay = min(delay * 2, 1.0)
            continue
        if log is not None:
            log.info("joined: certificate issued", node_id=identity.node_id)  # type: ignore[attr-defined]
        return identity
    return None
