"""Mutual TLS on a real grpcio server on loopback (common.tls): clients
need a certificate of the cluster's CA, the guard refuses other clusters,
wrong roles and revoked certificates, and a rotated server certificate is
served to new connections while open ones go on (no restart)."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from cryptography import x509

from common import pki, tls

NOW = __import__("time").time()


def _pair(ca: pki.CA, node_id: str, role: str, cluster: str = "c1", days: float = 1.0) -> tuple[bytes, bytes]:
    key = pki.new_key()
    return pki.issue(ca, pki.new_csr(key), node_id, role, cluster, NOW, days=days,
                     addresses=["127.0.0.1"]), key


@pytest.fixture(scope="module")
def ca() -> pki.CA:
    return pki.new_ca("c1", NOW)


@pytest.fixture
def served(ca: pki.CA) -> Iterator[tuple[tls.ServerTLS, int, set[int]]]:
    cert, key = _pair(ca, "cp-1", "controlplane")
    server_tls = tls.ServerTLS(ca.cert_pem, cert, key)
    revoked: set[int] = set()
    server = grpc.server(futures.ThreadPoolExecutor(4),
                         interceptors=[tls.PeerGuard("c1", ["node"], revoked=lambda: revoked)])
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
        "t.Echo", {"Say": grpc.unary_unary_rpc_method_handler(lambda req, ctx: req)})])
    port = server.add_secure_port("127.0.0.1:0", server_tls.credentials())
    server.start()
    try:
        yield server_tls, port, revoked
    finally:
        server.stop(None)


def _call(port: int, creds: grpc.ChannelCredentials, channel: grpc.Channel | None = None) -> bytes:
    ch = channel or grpc.secure_channel(f"127.0.0.1:{port}", creds)
    try:
        return bytes(ch.unary_unary("/t.Echo/Say")(b"hi", timeout=5))
    finally:
        if channel is None:
            ch.close()


def _served_serial(port: int, ca: pki.CA, cert: bytes, key: bytes, tmp: Path) -> int:
    """The serial of the certificate a fresh TLS connection is shown."""
    (tmp / "c.pem").write_bytes(cert)
    (tmp / "k.pem").write_bytes(key)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cadata=ca.cert_pem.decode())
    ctx.load_cert_chain(tmp / "c.pem", tmp / "k.pem")
    ctx.set_alpn_protocols(["h2"])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as conn:
        der = conn.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def test_a_node_of_the_cluster_is_served(ca: pki.CA, served: tuple[tls.ServerTLS, int, set[int]]) -> None:
    _, port, _ = served
    cert, key = _pair(ca, "node-1", "node")
    assert _call(port, tls.client_credentials(ca.cert_pem, cert, key)) == b"hi"


def test_refusals_say_why(ca: pki.CA, served: tuple[tls.ServerTLS, int, set[int]]) -> None:
    _, port, revoked = served
    # Another role: the handshake passes, the guard refuses.
    cert, key = _pair(ca, "cp-2", "controlplane")
    with pytest.raises(grpc.RpcError) as err:
        _call(port, tls.client_credentials(ca.cert_pem, cert, key))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "cp-2 is a controlplane" in str(err.value.details())
    # Another cluster's name under this CA.
    cert, key = _pair(ca, "node-9", "node", cluster="c2")
    with pytest.raises(grpc.RpcError) as err:
        _call(port, tls.client_credentials(ca.cert_pem, cert, key))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "for cluster c2" in str(err.value.details())
    # Revoked: refused at once, on its next call.
    cert, key = _pair(ca, "node-2", "node")
    creds = tls.client_credentials(ca.cert_pem, cert, key)
    assert _call(port, creds) == b"hi"
    revoked.add(pki.identity(cert).serial)
    with pytest.raises(grpc.RpcError) as err:
        _call(port, creds)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "node-2 is revoked" in str(err.value.details())


def test_no_certificate_or_another_ca_fails_the_handshake(
        ca: pki.CA, served: tuple[tls.ServerTLS, int, set[int]]) -> None:
    _, port, _ = served
    with pytest.raises(grpc.RpcError) as err:
        _call(port, grpc.ssl_channel_credentials(root_certificates=ca.cert_pem))
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    other = pki.new_ca("c1", NOW)
    cert, key = _pair(other, "node-1", "node")
    with pytest.raises(grpc.RpcError) as err:
        _call(port, tls.client_credentials(ca.cert_pem, cert, key))
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def test_rotation_serves_the_new_certificate_without_a_restart(
        ca: pki.CA, served: tuple[tls.ServerTLS, int, set[int]], tmp_path: Path) -> None:
    server_tls, port, _ = served
    cert, key = _pair(ca, "node-1", "node")
    creds = tls.client_credentials(ca.cert_pem, cert, key)
    open_channel = grpc.secure_channel(f"127.0.0.1:{port}", creds)
    try:
        assert _call(port, creds, open_channel) == b"hi"
        old = pki.identity(server_tls.cert_pem).serial
        assert _served_serial(port, ca, cert, key, tmp_path) == old
        new_cert, new_key = _pair(ca, "cp-1", "controlplane", days=2.0)
        server_tls.rotate(new_cert, new_key)
        assert _served_serial(port, ca, cert, key, tmp_path) == pki.identity(new_cert).serial != old
        assert _call(port, creds, open_channel) == b"hi"  # the open connection goes on
        assert _call(port, creds) == b"hi"  # and new ones are served
    finally:
        open_channel.close()
