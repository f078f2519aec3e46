"""Envelope encryption of secret values (controlplane.envelope): a value opens
with its key and its binding only, every seal has its own data key, the
sealed form holds no plaintext, and the key file is made once, 0600."""

from __future__ import annotations

import base64
import dataclasses
import os
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controlplane.envelope import (
    EnvelopeError,
    Kek,
    binding,
    load_or_create,
    open_value,
    read_key_file,
    seal,
)
from model.objects import Sealed

KEK = Kek(bytes(range(32)), "test")
OTHER = Kek(bytes(range(1, 33)), "other")
VALUES = st.binary(max_size=2048)
AAD = binding("v1", "secret", "db_password")


def _raw(sealed: Sealed) -> bytes:
    """Everything the store would hold of it, decoded from base64 where it is."""
    fields = dataclasses.asdict(sealed)
    return b"".join(base64.b64decode(v) if k != "kek_id" else v.encode() for k, v in fields.items())


@given(VALUES)
def test_a_value_opens_with_its_key_and_binding(value: bytes) -> None:
    assert open_value(KEK, seal(KEK, value, AAD), AAD) == value


@settings(max_examples=50)
@given(st.binary(min_size=8, max_size=512))
def test_the_sealed_form_holds_no_plaintext(value: bytes) -> None:
    sealed = seal(KEK, value, AAD)
    stored = repr(dataclasses.asdict(sealed)).encode() + _raw(sealed)
    assert value not in stored
    assert value.hex().encode() not in stored and base64.b64encode(value) not in stored


@given(VALUES)
def test_every_seal_has_its_own_data_key_and_nonces(value: bytes) -> None:
    a, b = seal(KEK, value, AAD), seal(KEK, value, AAD)
    assert a.wrapped_key != b.wrapped_key and a.nonce != b.nonce and a.key_nonce != b.key_nonce
    assert a.ciphertext != b.ciphertext


@pytest.mark.parametrize("aad", [binding("v2", "secret", "db_password"),
                                 binding("v1", "config", "db_password"), binding("v1", "secret", "other")])
def test_a_value_moved_to_another_secret_does_not_open(aad: bytes) -> None:
    with pytest.raises(EnvelopeError, match="does not open"):
        open_value(KEK, seal(KEK, b"value", AAD), aad)


def test_another_key_is_named_not_tried() -> None:
    with pytest.raises(EnvelopeError, match=f"sealed under key {KEK.id}.*key {OTHER.id}"):
        open_value(OTHER, seal(KEK, b"value", AAD), AAD)


@given(st.sampled_from(["wrapped_key", "key_nonce", "nonce", "ciphertext"]), st.integers(0, 200), VALUES)
def test_any_change_to_the_sealed_form_is_refused(field: str, at: int, value: bytes) -> None:
    sealed = seal(KEK, value, AAD)
    raw = bytearray(base64.b64decode(getattr(sealed, field)))
    if not raw:
        return
    raw[at % len(raw)] ^= 0x01
    changed = dataclasses.replace(sealed, **{field: base64.b64encode(bytes(raw)).decode()})
    with pytest.raises(EnvelopeError):
        open_value(KEK, changed, AAD)


def test_broken_base64_is_named() -> None:
    sealed = dataclasses.replace(seal(KEK, b"v", AAD), nonce="not base64!")
    with pytest.raises(EnvelopeError, match="nonce is not base64"):
        open_value(KEK, sealed, AAD)


def test_the_key_never_shows_in_its_repr() -> None:
    assert KEK.key.hex() not in repr(KEK) and KEK.id in repr(KEK)


def test_the_key_file_is_made_once_0600_and_read_back(tmp_path: Path) -> None:
    path = str(tmp_path / "state" / "secrets.key")
    kek = load_or_create(path)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert load_or_create(path) == kek == read_key_file(path)
    assert sorted(os.listdir(tmp_path / "state")) == ["secrets.key"]  # no temporary file left


def test_replicas_starting_at_once_agree_on_one_key(tmp_path: Path) -> None:
    path = str(tmp_path / "secrets.key")
    keys: list[Kek] = []
    threads = [threading.Thread(target=lambda: keys.append(load_or_create(path))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({k.key for k in keys}) == 1 and len(keys) == 8


@pytest.mark.parametrize(("content", "mode", "error"), [
    ("ab" * 32 + "\n", 0o644, "readable by others"),
    ("abc", 0o600, "does not hold a key"),
    ("zz" * 32, 0o600, "does not hold a key"),
])
def test_a_bad_key_file_is_refused(tmp_path: Path, content: str, mode: int, error: str) -> None:
    path = tmp_path / "k"
    path.write_text(content)
    path.chmod(mode)
    with pytest.raises(EnvelopeError, match=error):
        read_key_file(str(path))


def test_a_missing_key_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(EnvelopeError, match="cannot read the secrets key file"):
        read_key_file(str(tmp_path / "nope"))
