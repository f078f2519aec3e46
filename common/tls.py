"""Mutual TLS for orch's gRPC links, on certificates from ``common.pki``.

- ``ServerTLS``: a server's credentials over a certificate it can swap at run
  time. grpcio asks ``dynamic_ssl_server_credentials``'s fetcher for the
  configuration at each new handshake, so ``rotate`` takes effect for the
  next connection while open ones go on: a renewal restarts nothing.
  Clients must present a certificate of the same CA.
- ``client_credentials``: a channel's credentials (the CA to trust, and the
  client's own pair).
- ``PeerGuard``: a server interceptor that admits a call only from a peer
  whose certificate (already checked against the CA by the handshake) is of
  this cluster, has a role this server serves, and is not revoked; refused
  calls end UNAUTHENTICATED or PERMISSION_DENIED with a line saying why,
  before any handler runs.

The peer's certificate comes from the call's auth context (``x509_pem_cert``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection
from typing import Any

import grpc

from common import pki

__all__ = ["PeerGuard", "ServerTLS", "client_credentials", "peer_identity"]


class ServerTLS:
    """A server's certificate, key and trusted CA; ``rotate`` swaps the pair."""

    def __init__(self, ca_pem: bytes, cert_pem: bytes, key_pem: bytes) -> None:
        self.ca_pem = ca_pem
        self._lock = threading.Lock()
        self._pair = (key_pem, cert_pem)
        self._served: tuple[bytes, bytes] | None = None

    def rotate(self, cert_pem: bytes, key_pem: bytes) -> None:
        with self._lock:
            self._pair = (key_pem, cert_pem)

    @property
    def cert_pem(self) -> bytes:
        with self._lock:
            return self._pair[1]

    def _config(self) -> Any:
        return grpc.ssl_server_certificate_configuration([self._pair], root_certificates=self.ca_pem)

    def _fetch(self) -> Any:
        """grpcio's fetcher: a new configuration if the pair changed, else None (keep)."""
        with self._lock:
            if self._served == self._pair:
                return None
            self._served = self._pair
            return self._config()

    def credentials(self) -> grpc.ServerCredentials:
        with self._lock:
            self._served = self._pair
            initial = self._config()
        return grpc.dynamic_ssl_server_credentials(initial, self._fetch,
                                                   require_client_authentication=True)


def client_credentials(ca_pem: bytes, cert_pem: bytes, key_pem: bytes) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(root_certificates=ca_pem, private_key=key_pem,
                                        certificate_chain=cert_pem)


def peer_identity(context: grpc.ServicerContext) -> pki.Identity | None:
    """The identity in the peer's certificate, None for a peer without one."""
    certs: list[Any] = list((context.auth_context() or {}).get("x509_pem_cert") or [])
    if not certs:
        return None
    pem = certs[0]
    return pki.identity(pem if isinstance(pem, bytes) else str(pem).encode())


class PeerGuard(grpc.ServerInterceptor):  # type: ignore[misc]
    """Admits calls from this cluster's peers in ``roles``, not revoked."""

    def __init__(self, cluster_id: str, roles: Collection[str],
                 revoked: Callable[[], Collection[int]] = frozenset,
                 clock: Callable[[], float] = time.time) -> None:
        self.cluster_id = cluster_id
        self.roles = frozenset(roles)
        self.revoked = revoked
        self.clock = clock

    def refusal(self, who: pki.Identity | None) -> tuple[grpc.StatusCode, str] | None:
        """Why a peer may not call (a status and a line), or None."""
        if who is None:
            return grpc.StatusCode.UNAUTHENTICATED, "no client certificate"
        if who.cluster_id != self.cluster_id:
            return grpc.StatusCode.UNAUTHENTICATED, (
                f"certificate of {who.node_id} is for cluster {who.cluster_id}, not this one")
        if who.serial in self.revoked():
            return grpc.StatusCode.UNAUTHENTICATED, f"certificate of {who.node_id} is revoked"
        if who.role not in self.roles:
            return grpc.StatusCode.PERMISSION_DENIED, (
                f"{who.node_id} is a {who.role}: this API serves {', '.join(sorted(self.roles))}")
        return None

    def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        guard = self

        def checked(behavior: Any) -> Any:
            def run(request: Any, context: grpc.ServicerContext) -> Any:
                why = guard.refusal(peer_identity(context))
                if why is not None:
                    context.abort(*why)
                return behavior(request, context)
            return run

        for kind in ("unary_unary", "unary_stream", "stream_unary", "stream_stream"):
            behavior = getattr(handler, kind)
            if behavior is not None:
                return handler._replace(**{kind: checked(behavior)})
        return handler
