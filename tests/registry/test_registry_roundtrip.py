"""Push and pull against the real docker-registry, and interop with skopeo."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from registry_helpers import Registry, layered_image, random_tree

from common.errors import NotFound
from nodeagent.images import ImageStore
from nodeagent.images.pull import pull
from nodeagent.images.push import push


class Events:
    """A progress callback that records (kind, digest) and the bytes uploaded."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, int, int]] = []

    def __call__(self, kind: str, digest: str, done: int, total: int) -> None:
        self.seen.append((kind, digest, done, total))

    def kinds(self, kind: str) -> set[str]:
        return {d for k, d, _, _ in self.seen if k == kind}


def _blob_names(store: ImageStore) -> set[str]:
    return set(os.listdir(store.layout.blob_dir))


def test_busybox_push_then_pull_into_empty_store(
    registry: Registry, store: ImageStore, store2: ImageStore, busybox_rootfs: Path
) -> None:
    image = store.import_rootfs(str(busybox_rootfs), "busybox")
    events = Events()
    digest = push(store, "busybox", f"{registry.addr}/busybox:v1", progress=events)
    assert digest == image.manifest_digest
    assert events.kinds("done") == {*image.layer_digests, image.id}
    assert events.seen[-1][0] == "done"

    pulled = pull(store2, f"{registry.addr}/busybox:v1")
    assert pulled.manifest_digest == image.manifest_digest
    assert pulled.id == image.id
    assert pulled.diff_ids == image.diff_ids
    assert pulled.repo_tags == [f"{registry.addr}/busybox:v1"]  # its full reference
    top = store2.lower_dirs(pulled)[0]
    assert os.access(os.path.join(top, "bin/busybox"), os.X_OK)
    assert not [n for n in _blob_names(store2) if n.startswith(".tmp")]

    again = Events()
    assert push(store, "busybox", f"{registry.addr}/busybox:v1", progress=again) == digest
    assert not again.kinds("upload") and not again.kinds("done")
    assert again.kinds("exists") == {*image.layer_digests, image.id}


def test_second_pull_downloads_nothing(registry: Registry, store: ImageStore, store2: ImageStore,
                                       busybox_rootfs: Path) -> None:
    store.import_rootfs(str(busybox_rootfs), "busybox")
    push(store, "busybox", f"{registry.addr}/busybox:v1")
    pull(store2, f"{registry.addr}/busybox:v1")
    events = Events()
    pull(store2, f"{registry.addr}/busybox:v1", progress=events, tag_as="bb:again")
    assert not events.kinds("download")
    assert store2.get("bb:again").manifest_digest == store2.get(f"{registry.addr}/busybox:v1").manifest_digest


def test_two_layer_image_and_cross_repo_mount(
    registry: Registry, store: ImageStore, store2: ImageStore, tmp_path: Path
) -> None:
    base = random_tree(tmp_path / "l1", "base.bin", 200_000)
    top = random_tree(tmp_path / "l2", "top.bin", 100_000)
    image = layered_image(store, "two:1", [base, top])
    assert len(image.layer_digests) == 2
    push(store, "two:1", f"{registry.addr}/team/two:1")

    # A second image sharing the base layer, pushed to another repository:
    # the base layer is mounted from team/two, not uploaded again.
    other = layered_image(store, "other:1", [base, random_tree(tmp_path / "l3", "x.bin", 1000)])
    events = Events()
    push(store, "other:1", f"{registry.addr}/team/other:1", progress=events)
    assert events.kinds("mount") == {other.layer_digests[0]}
    assert other.layer_digests[0] not in events.kinds("upload")

    pulled = pull(store2, f"{registry.addr}/team/two:1", tag_as="two:pulled")
    assert pulled.manifest_digest == image.manifest_digest
    dirs = store2.lower_dirs(pulled)
    assert os.path.exists(os.path.join(dirs[0], "top.bin"))
    assert os.path.exists(os.path.join(dirs[1], "base.bin"))
    assert Path(dirs[1], "base.bin").read_bytes() == (base / "base.bin").read_bytes()


def test_pull_by_digest_is_named_by_its_digest(
    registry: Registry, store: ImageStore, store2: ImageStore, busybox_rootfs: Path
) -> None:
    image = store.import_rootfs(str(busybox_rootfs), "busybox")
    digest = push(store, "busybox", f"{registry.addr}/busybox:v1")
    by_digest = f"{registry.addr}/busybox@{digest}"
    pulled = pull(store2, by_digest)
    # Docker's rule: no tag, but listed (and kept by prune) under NAME@DIGEST.
    assert pulled.repo_tags == [] and pulled.repo_digests == [by_digest] and pulled.id == image.id
    assert store2.list() == [pulled]
    assert store2.get(by_digest) == store2.get(image.id)
    assert store2.prune() == []
    tagged = pull(store2, by_digest, tag_as="mine:1")
    assert tagged.repo_tags == ["mine:1"]
    assert tagged.repo_digests == sorted([by_digest, f"mine@{digest}"])


def test_pull_unknown_tag_is_not_found(registry: Registry, store: ImageStore) -> None:
    with pytest.raises(NotFound, match=r"MANIFEST_UNKNOWN|NAME_UNKNOWN"):
        pull(store, f"{registry.addr}/nothing:here")


def test_skopeo_reads_what_orch_pushed(registry: Registry, store: ImageStore,
                                       busybox_rootfs: Path) -> None:
    image = store.import_rootfs(str(busybox_rootfs), "busybox")
    push(store, "busybox", f"{registry.addr}/busybox:v1")
    out = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", f"docker://{registry.addr}/busybox:v1"],
        check=True, capture_output=True, text=True,
    ).stdout
    info = json.loads(out)
    assert info["Digest"] == image.manifest_digest
    assert info["Layers"] == image.layer_digests
    assert info["Architecture"] == "amd64" and info["Os"] == "linux"


def test_orch_pulls_what_skopeo_pushed(registry: Registry, store: ImageStore, store2: ImageStore,
                                       busybox_rootfs: Path) -> None:
    image = store.import_rootfs(str(busybox_rootfs), "busybox")
    subprocess.run(
        ["skopeo", "copy", "--dest-tls-verify=false", f"oci:{store.layout.path}:busybox:latest",
         f"docker://{registry.addr}/from-skopeo:1"],
        check=True, capture_output=True,
    )
    pulled = pull(store2, f"{registry.addr}/from-skopeo:1")
    assert pulled.id == image.id
    assert pulled.diff_ids == image.diff_ids
    assert os.path.exists(os.path.join(store2.lower_dirs(pulled)[0], "bin/busybox"))
