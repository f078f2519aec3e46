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

import inspect
import threading
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any

import grpc
import grpc.aio

from common import pki

# In every refusal of a revoked certificate: a node that reads it was removed.
REVOKED = "is revoked"

__all__ = ["REVOKED", "PeerGuard", "ServerTLS", "client_credentials", "peer_identity", "secure_channel"]


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

    @property
    def key_pem(self) -> bytes:
        with self._lock:
            return self._pair[0]

    def channel(self, target: str, role: str, options: list[tuple[str, Any]] | None = None) -> grpc.Channel:
        """A channel to a peer in ``role``, presenting the current pair (as a client)."""
        with self._lock:
            key, cert = self._pair
        return secure_channel(target, self.ca_pem, cert, key, role, options)

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


def secure_channel(target: str, ca_pem: bytes, cert_pem: bytes, key_pem: bytes, role: str,
                   options: list[tuple[str, Any]] | None = None) -> grpc.Channel:
    """A mutual-TLS channel to a peer in ``role``: its certificate must come
    from the CA and carry the role's server name (``pki.SERVER_NAMES``),
    whatever address it is reached at."""
    return grpc.secure_channel(target, client_credentials(ca_pem, cert_pem, key_pem),
                               options=[("grpc.ssl_target_name_override", pki.SERVER_NAMES[role]),
                                        *(options or [])])


def peer_identity(context: grpc.ServicerContext | grpc.aio.ServicerContext) -> pki.Identity | None:
    """The identity in the peer's certificate, None for a peer without one."""
    certs: list[Any] = list((context.auth_context() or {}).get("x509_pem_cert") or [])
    if not certs:
        return None
    pem = certs[0]
    return pki.identity(pem if isinstance(pem, bytes) else str(pem).encode())


class PeerGuard(grpc.ServerInterceptor):  # type: ignore[misc]
    """Admits calls from this cluster's peers in ``roles``, not revoked.

    ``roles``: the roles every method serves, or a map from a method
    (``/orch.agent.v1.Agent/Logs``) or a service (``/orch.cluster.v1.Dispatcher/``)
    to the roles it serves; a method neither names is refused. ``revoked``: the revoked certificates' serials
    and node ids."""

    def __init__(self, cluster_id: str, roles: Collection[str] | Mapping[str, Collection[str]],
                 revoked: Callable[[], Collection[int | str]] = frozenset,
                 clock: Callable[[], float] = time.time) -> None:
        self.cluster_id = cluster_id
        self.by_prefix = ({prefix: frozenset(r) for prefix, r in roles.items()}
                          if isinstance(roles, Mapping) else {"": frozenset(roles)})
        self.revoked = revoked
        self.clock = clock

    @property
    def roles(self) -> frozenset[str]:
        return frozenset().union(*self.by_prefix.values())

    def roles_for(self, method: str) -> frozenset[str]:
        """The roles a method serves: its own entry, else its service's (a
        key ending in ``/``, or "" for every method)."""
        if method in self.by_prefix:
            return self.by_prefix[method]
        return next((r for prefix, r in self.by_prefix.items()
                     if (prefix == "" or prefix.endswith("/")) and method.startswith(prefix)), frozenset())

    def refusal(self, who: pki.Identity | None, method: str = "") -> tuple[grpc.StatusCode, str] | None:
        """Why a peer may not call ``method`` (a status and a line), or None."""
        if who is None:
            return grpc.StatusCode.UNAUTHENTICATED, "no client certificate"
        if who.cluster_id != self.cluster_id:
            return grpc.StatusCode.UNAUTHENTICATED, (
                f"certificate of {who.node_id} is for cluster {who.cluster_id}, not this one")
        revoked = self.revoked()
        if who.serial in revoked or who.node_id in revoked:
            return grpc.StatusCode.UNAUTHENTICATED, (
                f"certificate of {who.node_id} {REVOKED}: the node was removed from the cluster")
        roles = self.roles_for(method) if method else self.roles
        if who.role not in roles:
            return grpc.StatusCode.PERMISSION_DENIED, (
                f"{who.node_id} is a {who.role}: this API serves {', '.join(sorted(roles)) or 'no one'}")
        return None

    def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        guard = self
        method = handler_call_details.method

        def checked(behavior: Any) -> Any:
            if inspect.iscoroutinefunction(behavior):  # on grpc.aio (common.aioserver): the sessions
                async def call(request: Any, context: Any) -> Any:
                    why = guard.refusal(peer_identity(context), method)
                    if why is not None:
                        await context.abort(*why)
                    return await behavior(request, context)
                return call

            def run(request: Any, context: grpc.ServicerContext) -> Any:
                why = guard.refusal(peer_identity(context), method)
                if why is not None:
                    context.abort(*why)
                return behavior(request, context)
            return run

        for kind in ("unary_unary", "unary_stream", "stream_unary", "stream_stream"):
            behavior = getattr(handler, kind)
            if behavior is not None:
                return handler._replace(**{kind: checked(behavior)})
        return handler
