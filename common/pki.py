"""The cluster's certificate authority, node certificates and join tokens.

Keys are ECDSA P-256: grpcio's TLS fails on Ed25519 certificates
(grpc/grpc#24252), and P-256 is what swarmkit issues too.

- **The CA**: self-signed, ``CN=orch-root-ca``, ``O=<cluster id>``, 20 years
  (as swarmkit's root), ``basicConstraints CA:true, pathlen 0``. It signs
  node certificates only.
- **Node certificates**: ``CN=<node id>``, ``OU=<role>`` (``controlplane``,
  ``node``, ``user`` for a person using the API, or ``etcd`` for an etcd
  member, which no orch API serves), ``O=<cluster id>``;
  90 days by default; usable as server and as client (every link is
  mutual TLS, both ends present one). The signer takes the identity from
  its own records, never from the request: a CSR carries only the public
  key.
- **Renewal** happens at a random point between 50% and 80% of a
  certificate's lifetime (``renew_at``), so a cluster's nodes, joined
  together, do not all renew at once.
- **Join tokens** pin the CA, in swarmkit's shape
  ``SWMTKN-1-<CA digest>-<secret>``: the digest is the SHA-256 of the CA
  certificate (DER) in base 36, 50 digits; the secret 128 random bits in base
  36, 25 digits. A joining node checks the CA it is shown against the digest
  (``token_pins``) before it sends anything.

Pure apart from the clock and randomness it is given or draws: no files, no
network. Times are Unix seconds.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["CA", "ROLES", "SERVER_NAMES", "CertError", "Identity", "TokenError", "ca_cluster_id",
           "ca_digest", "identity", "issue", "make_token", "matches_key", "new_ca", "new_csr", "new_key",
           "parse_token", "renew_at", "token_pins", "verify"]

ROLES = ("controlplane", "node", "user", "etcd")
# The name each role's certificates carry (a DNS subject alternative name)
# and clients check, whatever address the holder listens on: as swarmkit's
# "swarm-manager", since a control plane's address is not known when its
# certificate is made, and any holder of the role will do.
SERVER_NAMES = {"controlplane": "controlplane.orch", "node": "node.orch", "user": "user.orch",
                "etcd": "etcd.orch"}
CA_NAME = "orch-root-ca"
CA_YEARS = 20
NODE_DAYS = 90.0
TOKEN_PREFIX = "SWMTKN"
TOKEN_VERSION = "1"
_DIGEST_DIGITS = 50  # 256 bits in base 36
_SECRET_DIGITS = 25  # 128 bits in base 36
_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
# Seconds: a certificate is valid from a little before it is made (clock
# skew), at most a tenth of its life, so that renew_at (50-80% of the whole
# validity) always falls well after the moment it was made.
_BACKDATE = 300.0


class CertError(Exception):
    """A certificate, key or request that cannot be used, and why."""


class TokenError(ValueError):
    """A join token that is not one."""


@dataclass(frozen=True)
class CA:
    cert_pem: bytes
    key_pem: bytes


@dataclass(frozen=True)
class Identity:
    """Who a certificate says its holder is, and its validity."""

    node_id: str
    role: str
    cluster_id: str
    serial: int
    not_before: float
    not_after: float


def _when(seconds: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC)


def _private_key(key_pem: bytes) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as err:
        raise CertError(f"not a PEM private key: {err}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CertError("the key is not an ECDSA key")
    return key


def _cert(cert_pem: bytes) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(cert_pem)
    except ValueError as err:
        raise CertError(f"not a PEM certificate: {err}") from None


def new_key() -> bytes:
    """A fresh P-256 private key, PEM (PKCS#8, unencrypted)."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def new_ca(cluster_id: str, now: float) -> CA:
    """A new root CA for ``cluster_id``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, cluster_id)])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(_when(now - _BACKDATE))
            .not_valid_after(_when(now + CA_YEARS * 365.25 * 86400))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return CA(cert.public_bytes(serialization.Encoding.PEM), key_pem)


def new_csr(key_pem: bytes) -> bytes:
    """A certificate request for ``key_pem``'s public key. It names nobody:
    the signer decides the identity."""
    key = _private_key(key_pem)
    csr = (x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
           .sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.PEM)


def issue(ca: CA, csr_pem: bytes, node_id: str, role: str, cluster_id: str, now: float, *,
          days: float = NODE_DAYS, dns_names: list[str] | None = None,
          addresses: list[str] | None = None) -> bytes:
    """A certificate for the CSR's key: ``node_id`` in ``role`` of
    ``cluster_id``, valid ``days`` from ``now``, with the host names and IP
    addresses it serves at as subject alternative names."""
    if role not in ROLES:
        raise CertError(f"role {role!r}: expected one of {', '.join(ROLES)}")
    if not node_id or days <= 0:
        raise CertError("a certificate needs a node id and a positive lifetime")
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError as err:
        raise CertError(f"not a PEM certificate request: {err}") from None
    if not csr.is_signature_valid:
        raise CertError("the certificate request's signature does not match its key")
    public = csr.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey) or public.curve.name != "secp256r1":
        raise CertError("the certificate request's key is not ECDSA P-256")
    ca_cert, ca_key = _cert(ca.cert_pem), _private_key(ca.key_pem)
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names or []]
    for addr in addresses or []:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(addr)))
        except ValueError:
            raise CertError(f"{addr!r} is not an IP address") from None
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, node_id),
                                        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role),
                                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, cluster_id)]))
               .issuer_name(ca_cert.subject).public_key(public)
               .serial_number(x509.random_serial_number())
               .not_valid_before(_when(now - min(_BACKDATE, days * 86400 / 10)))
               .not_valid_after(_when(now + days * 86400))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False,
                                            content_commitment=False, data_encipherment=False,
                                            key_agreement=False, key_cert_sign=False, crl_sign=False,
                                            encipher_only=False, decipher_only=False), critical=True)
               .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                     ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                              critical=False))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def identity(cert_pem: bytes) -> Identity:
    """The node id, role and cluster a certificate names, and its validity."""
    cert = _cert(cert_pem)

    def one(oid: x509.ObjectIdentifier) -> str:
        values = cert.subject.get_attributes_for_oid(oid)
        return str(values[0].value) if values else ""

    return Identity(one(NameOID.COMMON_NAME), one(NameOID.ORGANIZATIONAL_UNIT_NAME),
                    one(NameOID.ORGANIZATION_NAME), cert.serial_number,
                    cert.not_valid_before_utc.timestamp(), cert.not_valid_after_utc.timestamp())


def verify(cert_pem: bytes, ca_cert_pem: bytes, now: float,
           revoked: frozenset[int] | set[int] = frozenset()) -> Identity:
    """The identity of a certificate the CA signed, valid at ``now`` and not
    revoked; CertError saying which of these it is not."""
    cert, ca_cert = _cert(cert_pem), _cert(ca_cert_pem)
    public = ca_cert.public_key()
    if cert.issuer != ca_cert.subject or not isinstance(public, ec.EllipticCurvePublicKey):
        raise CertError("the certificate was not issued by this cluster's CA")
    sig_hash = cert.signature_hash_algorithm
    if sig_hash is None:
        raise CertError("the certificate has no signature hash")
    try:
        public.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(sig_hash))
    except InvalidSignature:
        raise CertError("the certificate was not issued by this cluster's CA") from None
    who = identity(cert_pem)
    if not who.not_before <= now <= who.not_after:
        start, end = _when(who.not_before), _when(who.not_after)
        raise CertError(f"the certificate of {who.node_id} is not valid now "
                        f"(valid {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC)")
    if who.serial in revoked:
        raise CertError(f"the certificate of {who.node_id} is revoked")
    return who


def renew_at(cert_pem: bytes, draw: float) -> float:
    """When to renew: ``draw`` (uniform in [0, 1)) of the way from 50% to 80%
    of the certificate's lifetime."""
    if not 0.0 <= draw <= 1.0:
        raise ValueError(f"draw {draw}: expected a number in [0, 1]")
    who = identity(cert_pem)
    life = who.not_after - who.not_before
    return who.not_before + life * (0.5 + 0.3 * draw)


def ca_cluster_id(ca_cert_pem: bytes) -> str:
    """The cluster id a CA names (its O)."""
    values = _cert(ca_cert_pem).subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return str(values[0].value) if values else ""


def matches_key(cert_pem: bytes, key_pem: bytes) -> bool:
    """Whether ``cert_pem`` is for the public key of ``key_pem``."""
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return bool(_cert(cert_pem).public_key().public_bytes(*fmt)
                == _private_key(key_pem).public_key().public_bytes(*fmt))


def ca_digest(ca_cert_pem: bytes) -> str:
    """The CA's fingerprint as a token carries it: SHA-256 of the DER, base 36."""
    der = _cert(ca_cert_pem).public_bytes(serialization.Encoding.DER)
    return _base36(int.from_bytes(hashlib.sha256(der).digest(), "big"), _DIGEST_DIGITS)


def make_token(ca_cert_pem: bytes, secret: str | None = None) -> str:
    """A join token that pins this CA; a fresh secret unless given."""
    if secret is None:
        secret = _base36(secrets.randbits(128), _SECRET_DIGITS)
    if len(secret) != _SECRET_DIGITS or any(c not in _ALPHABET for c in secret):
        raise TokenError(f"a token secret is {_SECRET_DIGITS} base-36 digits")
    return f"{TOKEN_PREFIX}-{TOKEN_VERSION}-{ca_digest(ca_cert_pem)}-{secret}"


def parse_token(token: str) -> tuple[str, str]:
    """A token's CA digest and secret; TokenError if it is not one."""
    parts = token.strip().split("-")
    if len(parts) != 4 or parts[0] != TOKEN_PREFIX:
        raise TokenError(f"not a join token: expected {TOKEN_PREFIX}-{TOKEN_VERSION}-<CA digest>-<secret>")
    if parts[1] != TOKEN_VERSION:
        raise TokenError(f"join token version {parts[1]!r}: this orch reads version {TOKEN_VERSION}")
    digest, secret = parts[2], parts[3]
    if len(digest) != _DIGEST_DIGITS or len(secret) != _SECRET_DIGITS or \
            any(c not in _ALPHABET for c in digest + secret):
        raise TokenError("not a join token: its CA digest or secret is malformed")
    return digest, secret


def token_pins(token: str, ca_cert_pem: bytes) -> bool:
    """Whether ``token`` names this CA: a joining node asks this of the CA it
    is shown before it trusts the control plane with anything."""
    digest, _ = parse_token(token)
    return hmac.compare_digest(digest, ca_digest(ca_cert_pem))


def _base36(n: int, width: int) -> str:
    digits = []
    while n:
        n, d = divmod(n, 36)
        digits.append(_ALPHABET[d])
    return "".join(reversed(digits)).rjust(width, "0")
