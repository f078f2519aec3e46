"""The trust part of the API: ``orch node rm`` (revokes, then removes; the
node's session is cut by every replica's dispatcher when it sees the node
go), ``orch cert issue --user`` and ``orch token [rotate]``."""

from __future__ import annotations

import re

import grpc
import structlog

from controlplane.store import Informer, Store
from controlplane.trust import JOIN_ROLES, Trust, TrustError
from proto import cluster_pb2 as cpb

from .lookups import find_node

__all__ = ["TrustAPI"]

log = structlog.get_logger("orch.api")

_NAME = re.compile(r"^[0-9a-z][0-9a-z_.-]{0,62}$")
USER_DAYS_MAX = 3650.0


class TrustAPI:
    """Node removal, user certificates and join tokens."""

    def __init__(self, store: Store, informer: Informer, trust: Trust | None) -> None:
        self.store = store
        self.informer = informer
        self.trust = trust

    def _trust(self, context: grpc.ServicerContext) -> Trust:
        if self.trust is None:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, "this control plane runs without a CA")
        assert self.trust is not None
        return self.trust

    def remove_node(self, request: cpb.RemoveNodeRequest,
                    context: grpc.ServicerContext) -> cpb.RemoveResponse:
        trust = self._trust(context)
        node = find_node(self.informer, request.node, context)
        if node.state == "ready" and not request.force:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          f"node {node.name} is ready: stop its agent first, or remove it with --force "
                          "(its certificate is revoked and its tasks move elsewhere)")
        trust.revoke(node.id)  # first: the node is refused before it is gone
        current = self.store.get_node(node.id)
        if current is not None:
            self.store.delete(current)
        log.info("node removed", node=node.name, node_id=node.id, force=request.force)
        return cpb.RemoveResponse(id=node.id)

    def issue_certificate(self, request: cpb.IssueCertificateRequest,
                          context: grpc.ServicerContext) -> cpb.IssueCertificateReply:
        trust = self._trust(context)
        if not _NAME.match(request.name or ""):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"user name {request.name!r}: lowercase letters, digits, '.', '_' and '-', "
                          "at most 63")
        if not 0 <= request.days <= USER_DAYS_MAX:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"--days {request.days:g}: from 0 (the default lifetime) to {USER_DAYS_MAX:g}")
        try:
            cert = trust.issue(request.csr, request.name, "user", request.days)
        except TrustError as err:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"the certificate request: {err}")
        log.info("user certificate issued", user=request.name)
        return cpb.IssueCertificateReply(cert=cert, ca=trust.ca.cert_pem)

    def join_tokens(self, request: cpb.JoinTokensRequest,
                    context: grpc.ServicerContext) -> cpb.JoinTokensReply:
        trust = self._trust(context)
        if request.rotate and request.rotate not in JOIN_ROLES:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"rotate {request.rotate!r}: node or controlplane")
        tokens = trust.rotate(request.rotate) if request.rotate else trust.tokens()
        if request.rotate:
            log.info("join token rotated", role=request.rotate)
        return cpb.JoinTokensReply(node=tokens["node"], controlplane=tokens["controlplane"])
