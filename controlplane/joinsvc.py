"""The join port: ``JoinService`` serves the ``Join`` RPCs (plaintext: a
joining node has no certificate yet, see ``common.identity`` and
``common.join``): the CA, then a certificate for a request that proves its
token. A node keeps the id it asks for unless that id was removed; a control
plane also gets the CA key and the secrets key, sealed under its token.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable

import grpc
import structlog

from common import join as joincrypto
from controlplane.envelope import Kek
from controlplane.trust import JOIN_ROLES, Trust, TrustError
from proto import cluster_pb2 as cpb
from proto import cluster_pb2_grpc as cpb_grpc

__all__ = ["JoinService"]

log = structlog.get_logger("orch.controlplane.join")

_ID = re.compile(r"^[0-9a-z][0-9a-z_.-]{0,62}$")


class JoinService(cpb_grpc.JoinServicer):
    def __init__(self, trust: Trust, kek: Kek, api_addresses: Callable[[], list[str]],
                 clock: Callable[[], float] = time.time) -> None:
        self.trust = trust
        self.kek = kek
        self.api_addresses = api_addresses
        self.clock = clock

    def CA(self, request: cpb.CARequest, context: grpc.ServicerContext) -> cpb.CAReply:
        return cpb.CAReply(ca=self.trust.ca.cert_pem)

    def Certificate(self, request: cpb.JoinRequest, context: grpc.ServicerContext) -> cpb.JoinReply:
        role = request.role
        if role not in JOIN_ROLES:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"role {role!r}: one joins as {' or '.join(JOIN_ROLES)}")
        try:
            secret = self.trust.secret(role)
        except TrustError as err:
            context.abort(grpc.StatusCode.UNAVAILABLE, str(err))
        try:
            joincrypto.check_proof(secret, request.proof, role, request.csr, request.name, request.node_id,
                                   request.time, self.clock())
        except joincrypto.JoinError as err:
            log.warning("join refused", role=role, name=request.name, peer=context.peer(), reason=str(err))
            context.abort(grpc.StatusCode.UNAUTHENTICATED, str(err))
        if role == "node":
            wanted = request.node_id
            ok = (bool(wanted) and _ID.match(wanted) is not None
                  and wanted not in self.trust.revoked(fresh=True))
            node_id = wanted if ok else secrets.token_hex(12)
        else:
            node_id = request.name if _ID.match(request.name or "") else secrets.token_hex(6)
        try:
            cert = self.trust.issue(request.csr, node_id, role)
        except TrustError as err:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"the certificate request: {err}")
        sealed = b""
        if role == "controlplane":
            bundle = {"ca_key": self.trust.ca.key_pem.decode(), "secrets_key": self.kek.key.hex()}
            sealed = joincrypto.seal_for(secret, json.dumps(bundle).encode(), request.csr)
        log.info("joined", role=role, name=request.name, node_id=node_id, peer=context.peer())
        return cpb.JoinReply(cert=cert, node_id=node_id, api_addresses=self.api_addresses(), sealed=sealed)
