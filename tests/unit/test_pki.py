"""The cluster CA, node certificates and join tokens (common.pki)."""

from __future__ import annotations

import pytest
from cryptography import x509
from hypothesis import given, settings
from hypothesis import strategies as st

from common import pki

NOW = 1_800_000_000.0


@pytest.fixture(scope="module")
def ca() -> pki.CA:
    return pki.new_ca("cluster-1", NOW)


def _node(ca: pki.CA, node_id: str = "node-a", role: str = "node", **kw: object) -> bytes:
    return pki.issue(ca, pki.new_csr(pki.new_key()), node_id, role, "cluster-1", NOW, **kw)  # type: ignore[arg-type]


def test_a_node_certificate_names_node_role_and_cluster(ca: pki.CA) -> None:
    cert = _node(ca, "node-a", "controlplane", dns_names=["n1"], addresses=["10.0.0.11"])
    who = pki.verify(cert, ca.cert_pem, NOW + 60)
    assert (who.node_id, who.role, who.cluster_id) == ("node-a", "controlplane", "cluster-1")
    assert who.not_after - who.not_before == pytest.approx(90 * 86400 + 300)
    parsed = x509.load_pem_x509_certificate(cert)
    sans = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["n1"]
    assert [str(a) for a in sans.get_values_for_type(x509.IPAddress)] == ["10.0.0.11"]
    assert parsed.signature_algorithm_oid.dotted_string == "1.2.840.10045.4.3.2"  # ecdsa-with-SHA256


def test_the_ca_is_p256_and_a_ca(ca: pki.CA) -> None:
    cert = x509.load_pem_x509_certificate(ca.cert_pem)
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]


def test_verify_refuses_another_ca_expiry_and_revocation(ca: pki.CA) -> None:
    cert = _node(ca)
    other = pki.new_ca("cluster-2", NOW)
    with pytest.raises(pki.CertError, match="not issued by this cluster's CA"):
        pki.verify(cert, other.cert_pem, NOW)
    with pytest.raises(pki.CertError, match="not valid now"):
        pki.verify(cert, ca.cert_pem, NOW + 91 * 86400)
    serial = pki.identity(cert).serial
    with pytest.raises(pki.CertError, match="node-a is revoked"):
        pki.verify(cert, ca.cert_pem, NOW, revoked={serial})
    # Same names, other key: a forged CA of the same cluster is refused by signature.
    forged = pki.new_ca("cluster-1", NOW)
    with pytest.raises(pki.CertError, match="not issued"):
        pki.verify(_node(forged), ca.cert_pem, NOW)


def test_bad_requests_are_refused(ca: pki.CA) -> None:
    csr = pki.new_csr(pki.new_key())
    with pytest.raises(pki.CertError, match="role 'admin'"):
        pki.issue(ca, csr, "n", "admin", "cluster-1", NOW)
    with pytest.raises(pki.CertError, match="not a PEM certificate request"):
        pki.issue(ca, b"junk", "n", "node", "cluster-1", NOW)
    with pytest.raises(pki.CertError, match="not an IP address"):
        pki.issue(ca, csr, "n", "node", "cluster-1", NOW, addresses=["n1"])


@given(st.floats(0, 1), st.floats(0.01, 3650))
@settings(max_examples=25, deadline=None)
def test_renewal_falls_between_half_and_four_fifths_of_the_lifetime(draw: float, days: float) -> None:
    ca = _CA
    cert = pki.issue(ca, _CSR, "n", "node", "c", NOW, days=days)
    who = pki.identity(cert)
    at = pki.renew_at(cert, draw)
    life = who.not_after - who.not_before
    assert who.not_before + 0.5 * life - 1e-6 <= at <= who.not_before + 0.8 * life + 1e-6


_CA = pki.new_ca("c", NOW)
_CSR = pki.new_csr(pki.new_key())


def test_tokens_pin_the_ca(ca: pki.CA) -> None:
    token = pki.make_token(ca.cert_pem)
    assert token.startswith("SWMTKN-1-") and len(token) == len("SWMTKN-1-") + 50 + 1 + 25
    assert pki.token_pins(token, ca.cert_pem)
    assert not pki.token_pins(token, pki.new_ca("cluster-1", NOW).cert_pem)
    digest, secret = pki.parse_token(token)
    assert digest == pki.ca_digest(ca.cert_pem)
    assert pki.make_token(ca.cert_pem, secret) == token
    assert pki.make_token(ca.cert_pem) != token  # a fresh secret each time


@pytest.mark.parametrize(("token", "why"), [
    ("", "not a join token"),
    ("SWMTKN-2-" + "0" * 50 + "-" + "0" * 25, "version '2'"),
    ("SWMTKN-1-" + "0" * 49 + "-" + "0" * 25, "malformed"),
    ("SWMTKN-1-" + "Z" * 50 + "-" + "0" * 25, "malformed"),
    ("abc", "not a join token"),
])
def test_malformed_tokens(token: str, why: str) -> None:
    with pytest.raises(pki.TokenError, match=why):
        pki.parse_token(token)


@pytest.mark.parametrize("days", [0.0003, 0.01, 1.0, 90.0])
def test_renewal_always_falls_after_the_certificate_was_made(days: float) -> None:
    """The clock-skew backdate is at most a tenth of the life: even a
    26-second certificate is renewed between about 40% and 80% of its time."""
    now = 1_000_000.0
    ca = pki.new_ca("c1", now)
    cert = pki.issue(ca, pki.new_csr(pki.new_key()), "n1", "node", "c1", now, days=days)
    life = days * 86400
    assert now + 0.4 * life <= pki.renew_at(cert, 0.0) <= pki.renew_at(cert, 1.0) <= now + 0.8 * life
