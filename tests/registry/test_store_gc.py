"""ImageStore.add_image, manifest, prune and disk_usage (shared layers counted once)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from registry_helpers import layered_image, random_tree

from common.errors import InvalidArgument, NotFound
from nodeagent.images import ImageStore
from nodeagent.images.layerbuild import build_layer
from nodeagent.images.model import LAYER_MEDIA_TYPE, MANIFEST_MEDIA_TYPE, descriptor


def _blobs(store: ImageStore) -> set[str]:
    return {"sha256:" + n for n in os.listdir(store.layout.blob_dir) if not n.startswith(".")}


def test_add_image_writes_manifest_and_tags(store: ImageStore, tmp_path: Path) -> None:
    image = layered_image(store, "two:1", [random_tree(tmp_path / "a", "a", 1000),
                                           random_tree(tmp_path / "b", "b", 1000)])
    manifest = store.manifest(image)
    assert manifest["mediaType"] == MANIFEST_MEDIA_TYPE
    assert [ly["digest"] for ly in manifest["layers"]] == image.layer_digests
    assert manifest["config"]["digest"] == image.id
    assert store.get("two:1") == image
    assert [os.path.basename(d) for d in store.lower_dirs(image)] == [
        d.removeprefix("sha256:") for d in reversed(image.diff_ids)]


def test_add_image_refuses_missing_blobs_and_mismatched_diff_ids(store: ImageStore) -> None:
    missing = descriptor(LAYER_MEDIA_TYPE, "sha256:" + "1" * 64, 10)
    config = {"rootfs": {"type": "layers", "diff_ids": ["sha256:" + "2" * 64]}}
    with pytest.raises(NotFound, match="1111"):
        store.add_image("x:1", config, [missing])
    with pytest.raises(InvalidArgument, match="1 diff_ids for 0 layers"):
        store.add_image("x:1", config, [])


def test_prune_drops_untagged_images_and_orphans(store: ImageStore, tmp_path: Path) -> None:
    base = random_tree(tmp_path / "base", "base", 5000)
    kept = layered_image(store, "kept:1", [base])
    dangling = layered_image(store, None, [base, random_tree(tmp_path / "t", "t", 5000)])
    store.lower_dirs(dangling)
    assert dangling.repo_tags == [] and store.list() == [kept]
    orphan = build_layer(str(random_tree(tmp_path / "o", "o", 100)), store.layout)

    # A fresh orphan (a pull in progress, say) survives the default grace period.
    lines = store.prune()
    assert f"deleted: {dangling.manifest_digest}" in lines
    assert orphan.digest in _blobs(store)
    assert dangling.layer_digests[1] not in _blobs(store)
    assert kept.layer_digests[0] in _blobs(store)  # shared with the kept image
    assert not os.path.exists(store.snapshots.path(dangling.diff_ids[1]))
    assert os.path.exists(store.snapshots.path(dangling.diff_ids[0]))

    assert f"deleted blob: {orphan.digest}" in store.prune(grace_seconds=0)
    assert _blobs(store) == {kept.manifest_digest, kept.id, *kept.layer_digests}
    assert store.prune(grace_seconds=0) == []
    assert store.get("kept:1") == kept


def test_disk_usage_counts_shared_layers_once(store: ImageStore, tmp_path: Path) -> None:
    base = random_tree(tmp_path / "base", "base", 200_000)
    one = layered_image(store, "one:1", [base, random_tree(tmp_path / "x", "x", 10_000)])
    two = layered_image(store, "two:1", [base, random_tree(tmp_path / "y", "y", 20_000)])
    for image in (one, two):
        store.lower_dirs(image)
    rows = {r["ref"]: r for r in store.disk_usage()}
    assert set(rows) == {"one:1", "two:1", "total"}
    base_blob = os.path.getsize(store.layout.blob_path(one.layer_digests[0]))
    base_bytes = base_blob + 200_000  # compressed blob + unpacked snapshot
    for ref in ("one:1", "two:1"):
        assert rows[ref]["shared"] == base_bytes
        assert rows[ref]["unique"] == rows[ref]["logical_size"] - base_bytes
    total = rows["total"]
    assert total["logical_size"] == rows["one:1"]["logical_size"] + rows["two:1"]["logical_size"]
    assert total["shared"] == base_bytes
    assert total["disk"] == total["unique"] + total["shared"]
    assert total["disk"] == total["logical_size"] - base_bytes
