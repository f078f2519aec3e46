"""Envelope encryption of secret and config values, before they reach etcd.

Each value is sealed with a data key of its own, and only the data key is
encrypted with the cluster's key-encryption key (KEK)::

    value    --AES-256-GCM, a fresh random data key, nonce--> ciphertext
    data key --AES-256-GCM, the KEK, key_nonce-------------> wrapped_key

Both seals authenticate ``aad`` (the version's id, kind and name, see
:func:`binding`): a sealed value copied onto another secret's key in etcd
does not open there. The store holds only the ``Sealed`` fields (base64):
a raw read of etcd (``etcdctl get``, a backup, a snapshot) shows no
plaintext, and without the KEK none can be recovered.

Where the KEK lives, and why: a file of 32 random bytes (hex), mode 0600,
read by every control-plane replica at start and held in memory only. It
must not be in etcd (that would put the key beside the values it guards),
nor in argv or the environment (other users see those). By default it is
``<state dir>/secrets.key`` of the control plane, made by the first
replica that starts without one (published with a hard link, so two
replicas starting at once agree on one key); the replicas `orch up` starts
share that state dir, so they share the key. Replicas on other machines
must be given the same file (``--secrets-key-file``): a replica whose key
does not match a value's ``kek_id`` says so instead of handing out noise.

Errors::

    ValueError
     └── EnvelopeError    a key file that cannot be read or made, a value that
                          does not open (wrong key, tampered, moved)

Invariant: ``open_value(kek, seal(kek, v, aad), aad) == v``; every ``seal``
uses a new data key and new nonces; a plaintext never appears in a
``Sealed`` (nor in an exception's message).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from model.objects import Sealed

__all__ = ["KEY_FILE", "EnvelopeError", "Kek", "binding", "load_or_create", "open_value", "read_key_file",
           "seal"]

KEY_FILE = "secrets.key"  # in the control plane's state dir
KEY_BYTES = 32  # AES-256, for the KEK and every data key
NONCE_BYTES = 12  # GCM's standard nonce


class EnvelopeError(ValueError):
    """A key that cannot be had, or a sealed value that does not open; the message says which."""


@dataclass(frozen=True)
class Kek:
    """The cluster's key-encryption key. ``id`` names it in each ``Sealed``
    (a digest of the key, not the key): a value sealed under another key is
    recognised as such."""

    key: bytes
    path: str = ""  # where it was read from, for messages

    @property
    def id(self) -> str:
        return hashlib.sha256(b"orch-kek\0" + self.key).hexdigest()[:16]

    def __repr__(self) -> str:  # never the key itself
        return f"Kek(id={self.id!r}, path={self.path!r})"


def binding(ident: str, kind: str, name: str) -> bytes:
    """The associated data that ties a sealed value to its version (id, kind, name)."""
    return f"orch-secret\0{kind}\0{name}\0{ident}".encode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str, field: str) -> bytes:
    try:
        return base64.b64decode(text.encode(), validate=True)
    except (ValueError, UnicodeError):
        raise EnvelopeError(f"the sealed value's {field} is not base64") from None


def seal(kek: Kek, value: bytes, aad: bytes) -> Sealed:
    """``value`` under a fresh data key, the data key under ``kek``."""
    data_key = AESGCM.generate_key(bit_length=KEY_BYTES * 8)
    nonce, key_nonce = os.urandom(NONCE_BYTES), os.urandom(NONCE_BYTES)
    ciphertext = AESGCM(data_key).encrypt(nonce, bytes(value), aad)
    wrapped = AESGCM(kek.key).encrypt(key_nonce, data_key, aad)
    return Sealed(kek_id=kek.id, wrapped_key=_b64(wrapped), key_nonce=_b64(key_nonce), nonce=_b64(nonce),
                  ciphertext=_b64(ciphertext))


def open_value(kek: Kek, sealed: Sealed, aad: bytes) -> bytes:
    """The value ``sealed`` holds; EnvelopeError if ``kek`` is not the key it
    was sealed under, or it was changed or moved (``aad`` differs)."""
    if sealed.kek_id != kek.id:
        raise EnvelopeError(f"the value was sealed under key {sealed.kek_id}, and this control plane has "
                            f"key {kek.id} ({kek.path or 'given'}): every replica needs the same "
                            "--secrets-key-file")
    key_nonce, wrapped = _unb64(sealed.key_nonce, "key_nonce"), _unb64(sealed.wrapped_key, "wrapped_key")
    nonce, ciphertext = _unb64(sealed.nonce, "nonce"), _unb64(sealed.ciphertext, "ciphertext")
    try:
        data_key = AESGCM(kek.key).decrypt(key_nonce, wrapped, aad)
        return AESGCM(data_key).decrypt(nonce, ciphertext, aad)
    except (InvalidTag, ValueError):  # ValueError: a nonce or key of the wrong length
        raise EnvelopeError("the sealed value does not open: it was changed, or moved from another "
                            "secret's key") from None


# ---- the key file ----------------------------------------------------------------

def read_key_file(path: str) -> Kek:
    """The KEK in ``path`` (64 hex digits); refuses a file others can read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as err:
        raise EnvelopeError(f"cannot read the secrets key file {path}: {err.strerror or err}") from None
    with os.fdopen(fd) as f:
        mode = os.fstat(f.fileno()).st_mode
        if mode & 0o077:
            raise EnvelopeError(f"secrets key file {path} is readable by others (mode {mode & 0o777:o}): "
                                f"run chmod 600 {path}")
        text = f.read().strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != KEY_BYTES:
        raise EnvelopeError(f"secrets key file {path} does not hold a key: expected {KEY_BYTES * 2} hex "
                            "digits (make one with: openssl rand -hex 32)")
    return Kek(key, path)


def load_or_create(path: str) -> Kek:
    """The KEK in ``path``, made first (0600, 32 random bytes) if there is
    none. Published with a hard link of a complete file: a replica starting
    at the same moment either makes it or reads the one that won."""
    if not os.path.exists(path):
        directory = os.path.dirname(path) or "."
        os.makedirs(directory, mode=0o700, exist_ok=True)
        temp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}")
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(KEY_BYTES) + "\n")
                f.flush()
                os.fsync(f.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(temp, path)
        except OSError as err:
            raise EnvelopeError(f"cannot make the secrets key file {path}: {err.strerror or err}") from None
        finally:
            with contextlib.suppress(OSError):
                os.unlink(temp)
    return read_key_file(path)
