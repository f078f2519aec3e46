"""A pull whose layer extraction refuses fails at pull time, and records no image.

Every hostile layer of tests/images/test_extract.py is served by a registry
double; one is pushed to the real docker-registry and pulled by an image job
(the agent's path).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from mock_registry import MockRegistry, sha
from registry_helpers import Registry

from common.errors import InvalidArgument
from nodeagent.images import ImageStore, UnsafeLayer
from nodeagent.images.job import run_job
from nodeagent.images.pull import pull
from registry.client import FileBody, RegistryClient
from registry.transport import Settings
from tests.images.hostile_layers import HOSTILE, Case, make_tar, snapshot_of

TAR = "application/vnd.oci.image.layer.v1.tar"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def config_of(diff_ids: list[str]) -> bytes:
    return json.dumps({"architecture": "amd64", "os": "linux",
                       "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()


def nothing_recorded(store: ImageStore, layer_digest: str) -> None:
    assert store.layout.read_index() == []
    assert store.list() == []
    assert [n for n in os.listdir(store.snapshots.root) if not n.startswith(".")] == []
    blobs = os.listdir(store.layout.blob_dir)
    assert layer_digest.removeprefix("sha256:") not in blobs
    assert not [n for n in blobs if n.startswith(".tmp")]


@pytest.mark.parametrize("case", HOSTILE, ids=lambda c: c.__name__.lstrip("_"))
def test_hostile_layer_fails_the_pull(case: Case, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    members, would_be_targets, fragment = case(work)
    tar = make_tar(tmp_path / "hostile.tar", members).read_bytes()
    reg = MockRegistry()
    reg.add_image("evil", "1", config_of([sha(tar)]), [tar], layer_type=TAR)
    store = ImageStore(str(tmp_path / "state"), max_layer_bytes=64 * 1024)
    before = snapshot_of(work)
    try:
        with pytest.raises(UnsafeLayer) as err:
            pull(store, f"{reg.host}/evil:1", settings=Settings(certs_dirs=()), transport=reg.transport())
        assert fragment in err.value.message
        assert f"layer {sha(tar)} refused, no image was recorded" in err.value.message
        nothing_recorded(store, sha(tar))
        for target in would_be_targets:
            assert not os.path.lexists(target), target
        assert snapshot_of(work) == before
    finally:
        for target in would_be_targets:
            if os.path.lexists(target) and str(target).startswith("/tmp/orch-"):
                os.unlink(target)


def test_a_layer_that_is_not_its_diff_id_fails_the_pull(tmp_path: Path) -> None:
    tar = make_tar(tmp_path / "ok.tar", []).read_bytes()
    reg = MockRegistry()
    reg.add_image("liar", "1", config_of(["sha256:" + "0" * 64]), [tar], layer_type=TAR)
    store = ImageStore(str(tmp_path / "state"))
    with pytest.raises(Exception, match="does not match its diff_id"):
        pull(store, f"{reg.host}/liar:1", settings=Settings(certs_dirs=()), transport=reg.transport())
    nothing_recorded(store, sha(tar))


def test_hostile_image_in_a_real_registry_fails_the_pull_job(registry: Registry, tmp_path: Path) -> None:
    members, targets, _ = HOSTILE[2](tmp_path)  # a symlink to /tmp, then a file through it
    tar = make_tar(tmp_path / "hostile.tar", members).read_bytes()
    config = config_of([sha(tar)])
    with RegistryClient(registry.addr, "evil/app", settings=Settings(certs_dirs=())) as client:
        for blob in (tar, config):
            path = tmp_path / sha(blob).removeprefix("sha256:")
            path.write_bytes(blob)
            client.upload(client.start_upload(), sha(blob), FileBody(str(path), len(blob), sha(blob)))
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                               "digest": sha(config), "size": len(config)},
                    "layers": [{"mediaType": TAR, "digest": sha(tar), "size": len(tar)}]}
        client.put_manifest("1", json.dumps(manifest).encode(), OCI_MANIFEST)
    state = tmp_path / "state"
    with pytest.raises(InvalidArgument, match="symlink") as err:
        run_job(str(state), "pull", f"{registry.addr}/evil/app:1")
    assert "refused, no image was recorded" in err.value.message
    nothing_recorded(ImageStore(str(state)), sha(tar))
    assert not any(os.path.lexists(t) for t in targets)
