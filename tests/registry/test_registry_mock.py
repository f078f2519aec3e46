"""Failure paths and authentication against a registry double on httpx.MockTransport."""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from mock_registry import REALM, TOKEN, MockRegistry, basic, sha

from common.errors import InvalidArgument
from nodeagent.images import ImageStore
from nodeagent.images.model import Image
from nodeagent.images.pull import pull
from nodeagent.images.push import push
from registry import AuthError, Credentials, DigestMismatch, RegistryError
from registry.auth import forget_tokens
from registry.manifest import resolve_digest
from registry.transport import Settings

HERMETIC = Settings(certs_dirs=())  # no $ORCH_REGISTRY_CA, no certs.d of this host


@pytest.fixture
def reg() -> Iterator[MockRegistry]:
    forget_tokens()
    yield MockRegistry()
    forget_tokens()


def layer_of(name: str, data: bytes) -> tuple[bytes, str]:
    """A gzipped one-file layer and its diff_id."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tf:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    tar = raw.getvalue()
    return gzip.compress(tar, mtime=0), sha(tar)


def config_of(diff_ids: list[str]) -> bytes:
    return json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"]},
                       "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()


def publish(reg: MockRegistry, repo: str = "app", tag: str = "1", size: int = 300_000) -> tuple[str, str]:
    """One image with one layer; returns (layer digest, manifest digest)."""
    layer, diff_id = layer_of("data.bin", os.urandom(size))
    return sha(layer), reg.add_image(repo, tag, config_of([diff_id]), [layer])


def do_pull(store: ImageStore, reg: MockRegistry, ref: str, creds: Credentials | None = None,
            tag_as: str | None = None) -> Image:
    return pull(store, f"{reg.host}/{ref}", creds, tag_as=tag_as, settings=HERMETIC,
                transport=reg.transport())


def leftovers(store: ImageStore) -> list[str]:
    return sorted(os.listdir(store.layout.blob_dir))


# -- integrity -----------------------------------------------------------------


def test_corrupt_blob_is_rejected_and_nothing_is_left(reg: MockRegistry, store: ImageStore) -> None:
    layer, _ = publish(reg)
    reg.corrupt.add(layer)
    with pytest.raises(DigestMismatch, match=layer):
        do_pull(store, reg, "app:1")
    assert layer.removeprefix("sha256:") not in leftovers(store)
    assert not [n for n in leftovers(store) if n.startswith(".tmp")]
    assert store.layout.read_index() == []


def test_connection_dropped_mid_blob_leaves_no_partial_blob(reg: MockRegistry, store: ImageStore) -> None:
    layer, _ = publish(reg, size=2_000_000)
    reg.dropped.add(layer)
    with pytest.raises(RegistryError, match=f"{layer}.*connection reset"):
        do_pull(store, reg, "app:1")
    assert not [n for n in leftovers(store) if n.startswith(".tmp")]
    assert layer.removeprefix("sha256:") not in leftovers(store)
    reg.dropped.clear()  # the registry recovers: the same pull now completes
    image = do_pull(store, reg, "app:1")
    assert image.layer_digests == [layer]


def test_manifest_that_does_not_hash_to_its_digest(reg: MockRegistry, store: ImageStore) -> None:
    _, digest = publish(reg)
    wrong = "sha256:" + "0" * 64
    reg.manifests[f"app:{wrong}"] = reg.manifests[f"app:{digest}"]
    with pytest.raises(DigestMismatch, match="manifest"):
        do_pull(store, reg, f"app@{wrong}")
    assert store.layout.read_index() == []


def test_unsupported_layer_media_type_is_refused(reg: MockRegistry, store: ImageStore) -> None:
    layer, diff_id = layer_of("a", b"a")
    reg.add_image("app", "1", config_of([diff_id]), [layer],
                  layer_type="application/vnd.oci.image.layer.v1.tar+zstd")
    with pytest.raises(InvalidArgument, match="zstd"):
        do_pull(store, reg, "app:1")


def test_index_resolves_to_linux_amd64(reg: MockRegistry, store: ImageStore) -> None:
    _, digest = publish(reg, tag="amd64-only")
    raw, media_type = reg.manifests["app:amd64-only"]
    index = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                        "manifests": [
                            {"mediaType": media_type, "digest": "sha256:" + "1" * 64, "size": 1,
                             "platform": {"os": "linux", "architecture": "arm64"}},
                            {"mediaType": media_type, "digest": digest, "size": len(raw),
                             "platform": {"os": "linux", "architecture": "amd64"}}]}).encode()
    reg.manifests["app:multi"] = (index, "application/vnd.oci.image.index.v1+json")
    image = do_pull(store, reg, "app:multi")
    assert image.manifest_digest == digest
    assert image.repo_tags == [f"{reg.host}/app:multi"]
    # A deploy pins the index (as Docker does), which resolves the same way on every node.
    assert resolve_digest(f"{reg.host}/app:multi", settings=HERMETIC, transport=reg.transport()) == sha(index)


# -- authentication --------------------------------------------------------------


def test_bearer_challenge_token_then_retry(reg: MockRegistry, store: ImageStore) -> None:
    reg.bearer = ("alice", "s3cret")
    publish(reg)
    image = do_pull(store, reg, "app:1", creds=Credentials("alice", "s3cret"))
    first = reg.requests[0]
    assert first.url.path == "/v2/app/manifests/1" and "Authorization" not in first.headers
    token_requests = [r for r in reg.requests if r.url.host == "auth.test"]
    assert len(token_requests) == 1
    token_request = token_requests[0]
    assert str(token_request.url).startswith(REALM)
    assert token_request.url.params["scope"] == "repository:app:pull"
    assert token_request.url.params["service"] == "mock"
    assert token_request.headers["Authorization"] == basic("alice", "s3cret")
    # After the challenge, every request carries the token up front: one 401 in all.
    registry_requests = [r for r in reg.requests if r.url.host != "auth.test"]
    assert [r.headers.get("Authorization") for r in registry_requests[1:]] == \
        [f"Bearer {TOKEN}"] * (len(registry_requests) - 1)
    assert image.repo_tags == [f"{reg.host}/app:1"]


def test_bearer_token_is_cached_across_pulls(reg: MockRegistry, store: ImageStore) -> None:
    reg.bearer = ("alice", "s3cret")
    publish(reg)
    do_pull(store, reg, "app:1", creds=Credentials("alice", "s3cret"))
    do_pull(store, reg, "app:1", creds=Credentials("alice", "s3cret"), tag_as="x:1")
    assert len([r for r in reg.requests if r.url.host == "auth.test"]) == 1


def test_bearer_without_or_with_wrong_credentials(reg: MockRegistry, store: ImageStore) -> None:
    reg.bearer = ("alice", "s3cret")
    publish(reg)
    with pytest.raises(AuthError, match=r"token request refused.*orch login"):
        do_pull(store, reg, "app:1")
    with pytest.raises(AuthError, match="token request refused"):
        do_pull(store, reg, "app:1", creds=Credentials("alice", "wrong"))
    assert store.layout.read_index() == []


def test_basic_auth(reg: MockRegistry, store: ImageStore) -> None:
    reg.basic = ("bob", "pw")
    publish(reg)
    with pytest.raises(AuthError, match=f"requires a login \\(orch login {reg.host}\\)"):
        do_pull(store, reg, "app:1")
    do_pull(store, reg, "app:1", creds=Credentials("bob", "pw"))
    assert basic("bob", "pw") in reg.authorizations()
    assert basic("bob", "pw") == "Basic Ym9iOnB3"
    with pytest.raises(AuthError, match=r"HTTP 401.*orch login"):
        do_pull(store, reg, "app:1", creds=Credentials("bob", "wrong"), tag_as="y:1")


def test_unknown_challenge_scheme(reg: MockRegistry, store: ImageStore) -> None:
    publish(reg)
    plain = reg.transport()

    def negotiate(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/v2/app"):
            return httpx.Response(401, headers={"WWW-Authenticate": "Negotiate"})
        return plain.handle_request(request)

    with pytest.raises(AuthError, match="unsupported authentication challenge 'negotiate'"):
        pull(store, f"{reg.host}/app:1", settings=HERMETIC, transport=httpx.MockTransport(negotiate))


# -- push ------------------------------------------------------------------------


def test_push_uploads_then_skips_then_mounts(reg: MockRegistry, store: ImageStore, tmp_path: Path) -> None:
    from registry_helpers import layered_image, random_tree

    base = random_tree(tmp_path / "l1", "base.bin", 50_000)
    image = layered_image(store, "two:1", [base, random_tree(tmp_path / "l2", "top.bin", 10_000)])
    seen: list[tuple[str, str]] = []
    digest = push(store, "two:1", f"{reg.host}/team/two:1", settings=HERMETIC, transport=reg.transport(),
                  progress=lambda kind, d, done, total: seen.append((kind, d)))
    assert digest == image.manifest_digest
    assert reg.manifests["team/two:1"][0] == store.manifest_bytes(image)
    assert {d for k, d in seen if k == "done"} == {*image.layer_digests, image.id}

    seen.clear()
    push(store, "two:1", f"{reg.host}/team/two:1", settings=HERMETIC, transport=reg.transport(),
         progress=lambda kind, d, done, total: seen.append((kind, d)))
    assert {d for k, d in seen} == {*image.layer_digests, image.id}
    assert {k for k, _ in seen} == {"exists"}

    seen.clear()
    push(store, "two:1", f"{reg.host}/team/other:1", settings=HERMETIC, transport=reg.transport(),
         progress=lambda kind, d, done, total: seen.append((kind, d)))
    assert {d for k, d in seen if k == "mount"} == {*image.layer_digests, image.id}


def test_push_with_bearer_sends_each_layer_once(reg: MockRegistry, store: ImageStore,
                                                tmp_path: Path) -> None:
    from registry_helpers import layered_image, random_tree

    reg.bearer = ("alice", "s3cret")
    image = layered_image(store, "big:1", [random_tree(tmp_path / "l", "big.bin", 3_000_000)])
    push(store, "big:1", f"{reg.host}/app:1", Credentials("alice", "s3cret"),
         settings=HERMETIC, transport=reg.transport(), workers=1)
    layer_puts = [r for r in reg.requests if r.method == "PUT" and "uploads" in r.url.path
                  and r.url.params.get("digest") == image.layer_digests[0]]
    assert len(layer_puts) == 1 and layer_puts[0].headers["Authorization"] == f"Bearer {TOKEN}"


def test_push_refuses_a_registry_that_rewrites_the_manifest(reg: MockRegistry, store: ImageStore,
                                                            tmp_path: Path) -> None:
    from registry_helpers import layered_image, random_tree

    layered_image(store, "x:1", [random_tree(tmp_path / "l", "f", 100)])
    plain = reg.transport()

    def rewriting(request: httpx.Request) -> httpx.Response:
        response = plain.handle_request(request)
        if request.method == "PUT" and "/manifests/" in request.url.path:
            response.headers["Docker-Content-Digest"] = "sha256:" + "f" * 64
        return response

    with pytest.raises(DigestMismatch, match="stored the manifest as sha256:ffff"):
        push(store, "x:1", f"{reg.host}/x:1", settings=HERMETIC, transport=httpx.MockTransport(rewriting))


def test_registry_errors_name_the_request_and_the_registry_message(reg: MockRegistry,
                                                                   store: ImageStore) -> None:
    from common.errors import NotFound

    with pytest.raises(NotFound, match=r"GET https://registry.test:5000/v2/nothing/manifests/1: "
                                       r"HTTP 404: MANIFEST_UNKNOWN: 1"):
        do_pull(store, reg, "nothing:1")


def test_resolve_digest_of_a_tag(reg: MockRegistry) -> None:
    _, digest = publish(reg)
    assert resolve_digest(f"{reg.host}/app:1", settings=HERMETIC, transport=reg.transport()) == digest
    before = len(reg.requests)
    assert resolve_digest(f"{reg.host}/app@{digest}", transport=reg.transport()) == digest
    assert len(reg.requests) == before  # a digest needs no request
