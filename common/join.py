"""The join handshake's cryptography: proving a token without sending it,
and sealing what a joining control plane is given.

A joining node has no certificate, so it talks to the control plane's join
port in plaintext. It first fetches the CA and checks it against the digest
in its token (``pki.token_pins``); from then on the token's secret is a key
both sides share and nobody on the wire has:

- ``proof``: the request carries an HMAC-SHA256 of its fields under the
  secret, never the secret. A listener learns nothing that would let it
  join; a replayed request gets a certificate for a key it does not hold,
  and is refused anyway once older than ``PROOF_WINDOW``.
- ``seal_for``/``open_from``: a joining control plane is handed the CA's
  key and the secrets key, AES-256-GCM sealed under a key derived (HKDF) from
  the control-plane token's secret and bound to the request's CSR.
- The certificate in the reply needs no seal: the node checks it against
  the pinned CA and its own key (``pki.verify``, ``pki.matches_key``).

Pure: no files, no network.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["PROOF_WINDOW", "JoinError", "check_proof", "open_from", "proof", "seal_for"]

PROOF_WINDOW = 300.0  # seconds either side of the control plane's clock
_NONCE = 12


class JoinError(ValueError):
    """A join request or reply that does not check out; the message says why."""


def _fields(role: str, csr: bytes, name: str, node_id: str, when: float) -> bytes:
    return b"\0".join([b"orch-join-v1", role.encode(), csr, name.encode(), node_id.encode(),
                       repr(float(when)).encode()])


def proof(secret: str, role: str, csr: bytes, name: str, node_id: str, when: float) -> bytes:
    """The request's HMAC under the token's ``secret``."""
    return hmac.new(secret.encode(), _fields(role, csr, name, node_id, when), hashlib.sha256).digest()


def check_proof(secret: str, given: bytes, role: str, csr: bytes, name: str, node_id: str,
                when: float, now: float) -> None:
    """JoinError unless ``given`` is the request's proof under ``secret`` and fresh."""
    if abs(now - when) > PROOF_WINDOW:
        raise JoinError(f"the join request's time is {abs(now - when):.0f} s from the control "
                        f"plane's clock (at most {PROOF_WINDOW:.0f} s): check the clocks")
    if not hmac.compare_digest(given, proof(secret, role, csr, name, node_id, when)):
        raise JoinError(f"wrong join token for role {role}: this control plane does not accept it "
                        "(rotated, or another cluster's)")


def _key(secret: str, context: bytes) -> bytes:
    info = b"orch-join-seal-v1\0" + hashlib.sha256(context).digest()
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret.encode())


def seal_for(secret: str, data: bytes, context: bytes) -> bytes:
    """``data`` sealed for the holder of ``secret``, bound to ``context``."""
    nonce = os.urandom(_NONCE)
    return nonce + AESGCM(_key(secret, context)).encrypt(nonce, data, None)


def open_from(secret: str, sealed: bytes, context: bytes) -> bytes:
    """What ``seal_for`` sealed; JoinError if it was not sealed for this secret and context."""
    try:
        return AESGCM(_key(secret, context)).decrypt(sealed[:_NONCE], sealed[_NONCE:], None)
    except (InvalidTag, ValueError):
        raise JoinError("the control plane's sealed reply does not open with this token") from None
