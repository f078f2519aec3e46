"""Failure paths and auth, against a small in-process registry (fake_registry)."""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile

import pytest
from fake_registry import FakeState, fake_registry, sha

from common.errors import InvalidArgument
from nodeagent.images import ImageStore
from nodeagent.images.registry import AuthError, Credentials, DigestMismatch, RegistryError, pull
from nodeagent.images.registry.remote import parse_remote, scheme_for


def _layer(name: str, data: bytes) -> tuple[bytes, str]:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tf:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    tar = raw.getvalue()
    return gzip.compress(tar, mtime=0), sha(tar)


def _publish(state: FakeState, size: int = 300_000) -> tuple[str, str]:
    """One image app:1 with one layer; returns (layer digest, manifest digest)."""
    layer, diff_id = _layer("data.bin", os.urandom(size))
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
    return sha(layer), state.add_image("app", "1", config, [layer])


def _leftovers(store: ImageStore) -> list[str]:
    return sorted(os.listdir(store.layout.blob_dir))


def test_corrupt_blob_is_rejected_and_nothing_is_left(store: ImageStore) -> None:
    with fake_registry() as state:
        layer, _ = _publish(state)
        state.corrupt.add(layer)
        with pytest.raises(DigestMismatch, match=layer):
            pull(store, f"{state.addr}/app:1")
    assert layer.removeprefix("sha256:") not in _leftovers(store)
    assert not [n for n in _leftovers(store) if n.startswith(".tmp")]
    assert store.layout.read_index() == []


def test_connection_dropped_mid_blob_leaves_no_partial_blob(store: ImageStore) -> None:
    with fake_registry() as state:
        layer, _ = _publish(state, size=2_000_000)
        state.truncate.add(layer)
        with pytest.raises(RegistryError, match=layer):
            pull(store, f"{state.addr}/app:1")
        assert not [n for n in _leftovers(store) if n.startswith(".tmp")]
        assert layer.removeprefix("sha256:") not in _leftovers(store)
        # The registry recovers: the same pull now completes.
        state.truncate.clear()
        image = pull(store, f"{state.addr}/app:1")
    assert image.layer_digests == [layer]


def test_manifest_digest_mismatch_by_digest(store: ImageStore) -> None:
    with fake_registry() as state:
        _, digest = _publish(state)
        wrong = "sha256:" + "0" * 64
        state.manifests[f"app:{wrong}"] = state.manifests[f"app:{digest}"]
        with pytest.raises(DigestMismatch, match="manifest"):
            pull(store, f"{state.addr}/app@{wrong}")


def test_bearer_token_fetched_with_basic_creds_and_cached(store: ImageStore) -> None:
    with fake_registry() as state:
        state.bearer = ("alice", "s3cret")
        _publish(state)
        with pytest.raises(AuthError):
            pull(store, f"{state.addr}/app:1")
        image = pull(store, f"{state.addr}/app:1", auth=Credentials("alice", "s3cret"))
        assert image.repo_tags == ["app:1"]
        token_gets = [r for r in state.requests if r[1].startswith("/token")]
        authed = [r for r in state.requests if r[2] == "Bearer tok-123"]
        # Second pull: the cached token is used, no new token request.
        pull(store, f"{state.addr}/app:1", auth=Credentials("alice", "s3cret"), tag_as="x:1")
        assert [r for r in state.requests if r[1].startswith("/token")] == token_gets
    assert len(authed) >= 3  # manifest + config + layer
    assert "scope=repository%3Aapp%3Apull" in token_gets[-1][1]


def test_basic_auth_header(store: ImageStore) -> None:
    with fake_registry() as state:
        state.basic = ("bob", "pw")
        _publish(state)
        pull(store, f"{state.addr}/app:1", auth=Credentials("bob", "pw"))
        assert any(r[2] == "Basic Ym9iOnB3" for r in state.requests)
        with pytest.raises(AuthError, match="orch login"):
            pull(store, f"{state.addr}/app:1", auth=Credentials("bob", "wrong"), tag_as="y:1")


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        ("localhost:5000/app:v1", "localhost:5000", "app", "v1", ""),
        ("localhost/app", "localhost", "app", "latest", ""),
        ("127.0.0.1:5000/a/b", "127.0.0.1:5000", "a/b", "latest", ""),
        ("127.0.0.1:5000/a/b@sha256:" + "a" * 64, "127.0.0.1:5000", "a/b", "", "sha256:" + "a" * 64),
        ("reg.example.com/x/y:1@sha256:" + "b" * 64, "reg.example.com", "x/y", "1", "sha256:" + "b" * 64),
        ("[::1]:5000/app:2", "[::1]:5000", "app", "2", ""),
    ],
)
def test_parse_remote(text: str, registry: str, repository: str, tag: str, digest: str) -> None:
    ref = parse_remote(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, repository, tag, digest)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("busybox:latest", "names no registry host"),
        ("library/busybox", "names no registry host"),
        ("localhost:5000/App:1", "repository"),
        ("localhost:5000/app@sha256:abc", "digest"),
        ("localhost:5000/app:-bad", "bad tag"),
    ],
)
def test_parse_remote_rejects(text: str, error: str) -> None:
    with pytest.raises(InvalidArgument, match=error):
        parse_remote(text)


@pytest.mark.parametrize(
    ("registry", "scheme"),
    [("127.0.0.1:5000", "http"), ("127.9.9.9", "http"), ("localhost:1", "http"),
     ("[::1]:5000", "http"), ("reg.example.com", "https"), ("10.0.0.1:5000", "https")],
)
def test_plain_http_only_for_loopback(registry: str, scheme: str) -> None:
    assert scheme_for(registry) == scheme


def test_unsupported_layer_media_type_is_refused(store: ImageStore) -> None:
    with fake_registry() as state:
        _publish(state)
        raw, mt = state.manifests["app:1"]
        doc = json.loads(raw)
        doc["layers"][0]["mediaType"] = "application/vnd.oci.image.layer.v1.tar+zstd"
        state.manifests["app:1"] = (json.dumps(doc).encode(), mt)
        with pytest.raises(InvalidArgument, match="zstd"):
            pull(store, f"{state.addr}/app:1")
