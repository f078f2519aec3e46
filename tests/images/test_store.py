"""ImageStore against the real filesystem: layout, digests, sharing, GC, lookup, interop."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import threading
from pathlib import Path
from typing import Any

import pytest
from images_helpers import tar_of

from common.errors import AgentError, InvalidArgument, NotFound
from nodeagent.images import ImageConfig, ImageStore, UnsafeLayer
from nodeagent.images.model import (
    CONFIG_MEDIA_TYPE,
    LAYER_MEDIA_TYPE,
    MANIFEST_MEDIA_TYPE,
    REF_NAME_ANNOTATION,
)


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _blob(store: ImageStore, digest: str) -> bytes:
    return Path(store.layout.blob_path(digest)).read_bytes()


def _blob_json(store: ImageStore, digest: str) -> Any:
    return json.loads(_blob(store, digest))


def _snapshot_dirs(store: ImageStore) -> list[str]:
    return sorted(n for n in os.listdir(store.snapshots.root) if not n.startswith("."))


def _blob_files(store: ImageStore) -> set[str]:
    return {n for n in os.listdir(store.layout.blob_dir) if not n.startswith(".")}


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    return ImageStore(str(tmp_path / "state"))


CONFIG = ImageConfig(
    cmd=["/bin/app"],
    entrypoint=["/bin/sh", "-c"],
    env=["PATH=/bin", "A=b"],
    working_dir="/etc",
    user="1000:1000",
    stop_signal="SIGTERM",
    exposed_ports=["80/tcp"],
    labels={"org.example": "yes"},
)


def test_import_dir_writes_valid_oci_layout(store: ImageStore, rootfs: Path) -> None:
    image = store.import_rootfs(str(rootfs), "app", CONFIG)
    layout = Path(store.layout.path)
    assert json.loads((layout / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((layout / "index.json").read_text())
    assert index["schemaVersion"] == 2
    [row] = index["manifests"]
    assert row["mediaType"] == MANIFEST_MEDIA_TYPE
    assert row["annotations"][REF_NAME_ANNOTATION] == "app:latest"
    assert row["digest"] == image.manifest_digest

    manifest = _blob_json(store, row["digest"])
    assert manifest["schemaVersion"] == 2 and manifest["mediaType"] == MANIFEST_MEDIA_TYPE
    assert manifest["config"]["mediaType"] == CONFIG_MEDIA_TYPE
    [layer] = manifest["layers"]
    assert layer["mediaType"] == LAYER_MEDIA_TYPE

    config = _blob_json(store, manifest["config"]["digest"])
    assert config["architecture"] == "amd64" and config["os"] == "linux"
    assert config["rootfs"]["type"] == "layers"
    assert config["created"] and config["history"][0]["created_by"]
    assert config["config"] == {
        "Cmd": ["/bin/app"],
        "Entrypoint": ["/bin/sh", "-c"],
        "Env": ["PATH=/bin", "A=b"],
        "WorkingDir": "/etc",
        "User": "1000:1000",
        "StopSignal": "SIGTERM",
        "ExposedPorts": {"80/tcp": {}},
        "Labels": {"org.example": "yes"},
    }

    # Every descriptor's digest and size match the blob's bytes.
    for desc in [row, manifest["config"], layer]:
        data = _blob(store, desc["digest"])
        assert _sha(data) == desc["digest"] and len(data) == desc["size"]
    for name in _blob_files(store):
        assert _sha(_blob(store, "sha256:" + name)) == "sha256:" + name
    # Layer digest is of the gzip; diff_id of the tar inside it.
    gz = _blob(store, layer["digest"])
    assert config["rootfs"]["diff_ids"] == [_sha(gzip.decompress(gz))]
    assert image.id == manifest["config"]["digest"]
    assert image.size == layer["size"]
    assert image.unpacked_size == len(gzip.decompress(gz))
    assert image.config == CONFIG


def test_layer_tar_is_deterministic_and_normalised(store: ImageStore, rootfs: Path) -> None:
    a = store.import_rootfs(str(rootfs), "a")
    b = store.import_rootfs(str(rootfs), "b")
    assert a.layer_digests == b.layer_digests
    with tarfile.open(store.layout.blob_path(a.layer_digests[0])) as tf:
        members = tf.getmembers()
    names = [m.name for m in members]
    assert names == [
        "bin",
        "bin/app",
        "bin/app-hardlink",
        "bin/sh",
        "empty",
        "etc",
        "etc/conf",
        "etc/fifo",
    ]
    assert all(m.uname == "" and m.gname == "" for m in members)
    conf = next(m for m in members if m.name == "etc/conf")
    assert (conf.uid, conf.gid, conf.mtime) == (1000, 1000, 1_600_000_000)
    assert next(m for m in members if m.name == "bin/app-hardlink").islnk()


@pytest.mark.parametrize("suffix,mode", [(".tar", "w"), (".tar.gz", "w:gz")])
def test_import_tarball(
    store: ImageStore, rootfs: Path, tmp_path: Path, suffix: str, mode: str
) -> None:
    tarball = tar_of(rootfs, tmp_path / f"rootfs{suffix}", mode)
    image = store.import_rootfs(str(tarball), "fromtar:v1")
    [lower] = store.lower_dirs(image)
    assert (Path(lower) / "bin/app").read_bytes() == (rootfs / "bin/app").read_bytes()
    assert os.readlink(Path(lower) / "bin/sh") == "app"
    assert os.stat(Path(lower) / "etc/conf").st_uid == 1000


def test_import_bad_sources(store: ImageStore, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="does not exist"):
        store.import_rootfs(str(tmp_path / "missing"), "x")
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar at all" * 100)
    with pytest.raises(InvalidArgument, match="not a readable tarball"):
        store.import_rootfs(str(junk), "x")
    with pytest.raises(InvalidArgument, match="invalid image reference"):
        store.import_rootfs(str(tmp_path), "Bad:Name:x")
    assert store.list() == []
    assert _blob_files(store) == set()  # nothing half-written left behind


def test_same_dir_twice_shares_layer_and_snapshot(store: ImageStore, rootfs: Path) -> None:
    a = store.import_rootfs(str(rootfs), "one")
    b = store.import_rootfs(str(rootfs), "two:v2")
    assert a.diff_ids == b.diff_ids
    assert store.lower_dirs(a) == store.lower_dirs(b)
    assert len(_snapshot_dirs(store)) == 1
    assert store.snapshots.unpacks == 1
    assert [im.repo_tags for im in store.list()] == [["one:latest"], ["two:v2"]]


def test_lower_dirs_unpacks_once(store: ImageStore, rootfs: Path) -> None:
    image = store.import_rootfs(str(rootfs), "app")
    [first] = store.lower_dirs(image)
    inode = os.stat(first).st_ino
    marker_mtime = os.stat(Path(first) / "bin/app").st_mtime_ns
    [second] = store.lower_dirs(image)
    assert second == first and os.stat(second).st_ino == inode
    assert os.stat(Path(first) / "bin/app").st_mtime_ns == marker_mtime
    assert store.snapshots.unpacks == 1


def test_concurrent_lower_dirs_unpack_once(tmp_path: Path, rootfs: Path) -> None:
    root = str(tmp_path / "state")
    image = ImageStore(root).import_rootfs(str(rootfs), "app")
    stores = [ImageStore(root) for _ in range(4)]  # separate instances: separate lock fds
    results: list[list[str]] = []
    threads = [
        threading.Thread(target=lambda s=s: results.append(s.lower_dirs(image))) for s in stores
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and all(r == results[0] for r in results)
    assert sum(s.snapshots.unpacks for s in stores) == 1
    assert len(_snapshot_dirs(stores[0])) == 1


def test_stale_temp_dir_from_a_crash_is_replaced(store: ImageStore, rootfs: Path) -> None:
    image = store.import_rootfs(str(rootfs), "app")
    hexid = image.diff_ids[0].removeprefix("sha256:")
    stale = Path(store.snapshots.root) / f".tmp-{hexid}-crashed"
    (stale / "half").mkdir(parents=True)
    store.lower_dirs(image)
    assert not stale.exists()
    assert _snapshot_dirs(store) == [hexid]


def test_remove_keeps_shared_layers_until_last_user(store: ImageStore, rootfs: Path) -> None:
    a = store.import_rootfs(str(rootfs), "one")
    store.import_rootfs(str(rootfs), "two")
    store.lower_dirs(a)
    layer_hex = a.layer_digests[0].removeprefix("sha256:")

    assert store.remove("one") == ["untagged: one:latest", f"deleted: {a.id}"]
    assert layer_hex in _blob_files(store)
    assert len(_snapshot_dirs(store)) == 1
    with pytest.raises(NotFound):
        store.get("one")

    out = store.remove("two:latest")
    assert f"deleted layer: {a.layer_digests[0]}" in out
    assert _blob_files(store) == set()
    assert _snapshot_dirs(store) == []
    assert store.list() == []


def test_remove_one_of_two_tags_only_untags(store: ImageStore, rootfs: Path) -> None:
    image = store.import_rootfs(str(rootfs), "app:v1")
    # Same image under a second tag: point a second index row at the same manifest.
    with store.layout.locked():
        store._tag_locked("app:v2", image.manifest_digest, 0)
    assert store.get("app:v1").repo_tags == ["app:v1", "app:v2"]
    assert store.remove("app:v1") == ["untagged: app:v1"]
    assert store.get("app:v2").id == image.id
    assert store.remove(image.id) == [
        "untagged: app:v2",
        f"deleted: {image.id}",
        f"deleted layer: {image.layer_digests[0]}",
    ]
    assert _blob_files(store) == set()


def test_retag_leaves_the_replaced_image_dangling_until_prune(store: ImageStore, rootfs: Path,
                                                              tmp_path: Path) -> None:
    old = store.import_rootfs(str(rootfs), "app")
    [old_lower] = store.lower_dirs(old)
    other = tmp_path / "other"
    other.mkdir()
    (other / "f").write_text("new")
    new = store.import_rootfs(str(other), "app")
    assert store.get("app").id == new.id
    # Containers started from the old image still have their layers (as in
    # Docker, the old image is now <none>:<none>), until a prune.
    assert store.get(old.id).repo_tags == []
    assert store.lower_dirs(store.get(old.id)) == [old_lower]
    assert [i.id for i in store.list()] == [new.id]
    assert store.prune(in_use={old.id}) == []
    assert Path(old_lower, "etc", "conf").exists()
    lines = store.prune()
    assert f"deleted: {old.manifest_digest}" in lines
    assert old.layer_digests[0].removeprefix("sha256:") not in _blob_files(store)
    assert not Path(store.layout.blob_path(old.manifest_digest)).exists()
    assert not Path(old_lower).exists()
    assert store.get("app").id == new.id


def test_get_by_name_tag_id_and_prefix(store: ImageStore, rootfs: Path) -> None:
    image = store.import_rootfs(str(rootfs), "app:v1")
    hexid = image.id.removeprefix("sha256:")
    for ref in ["app:v1", image.id, hexid, hexid[:4], "sha256:" + hexid[:6]]:
        assert store.get(ref).id == image.id, ref
    with pytest.raises(NotFound) as err:
        store.get("app")
    assert err.value.message == 'image "app:latest" not found (orch image import DIR app:latest)'
    with pytest.raises(NotFound):
        store.get("sha256:" + "0" * 64 if not hexid.startswith("0") else "sha256:" + "1" * 64)
    with pytest.raises(InvalidArgument, match="invalid image reference"):
        store.get("Not/Valid")
    with pytest.raises(InvalidArgument, match="invalid image id"):
        store.get("sha256:xyz")


def test_ambiguous_prefix(store: ImageStore, rootfs: Path) -> None:
    base = store.import_rootfs(str(rootfs), "base")
    manifest = _blob_json(store, base.manifest_digest)
    config = _blob_json(store, base.id)
    # Find two label values whose configs' digests share 4 hex digits (birthday: ~300 tries).
    by_prefix: dict[str, dict[str, Any]] = {}
    for i in range(100_000):
        config["config"]["Labels"] = {"n": str(i)}
        digest = _sha(json.dumps(config, sort_keys=True, separators=(",", ":")).encode())
        prefix = digest.removeprefix("sha256:")[:4]
        if prefix in by_prefix:
            break
        by_prefix[prefix] = json.loads(json.dumps(config))
    pair = [by_prefix[prefix], config]
    with store.layout.locked():
        for n, cfg in enumerate(pair):
            cfg_digest, cfg_size = store.layout.put_json(cfg)
            man = dict(manifest, config=dict(manifest["config"], digest=cfg_digest, size=cfg_size))
            man_digest, man_size = store.layout.put_json(man)
            store._tag_locked(f"twin{n}:latest", man_digest, man_size)
    with pytest.raises(InvalidArgument, match="ambiguous"):
        store.get(prefix)
    assert store.get("twin0").id.removeprefix("sha256:").startswith(prefix)


def test_store_refuses_hostile_tarballs_at_import(store: ImageStore, tmp_path: Path) -> None:
    for name, kind in [
        ("../escape", tarfile.REGTYPE),
        ("/tmp/orch-x", tarfile.REGTYPE),
        ("dev/null", tarfile.CHRTYPE),
    ]:
        path = tmp_path / "bad.tar"
        with tarfile.open(path, "w") as tf:
            info = tarfile.TarInfo(name)
            info.type = kind
            tf.addfile(info, io.BytesIO(b""))
        with pytest.raises(InvalidArgument):
            store.import_rootfs(str(path), "bad")
    assert store.list() == [] and _blob_files(store) == set()
    assert not os.path.exists("/tmp/orch-x") and not (tmp_path.parent / "escape").exists()


def _symlink_escape_tar(path: Path, victim_dir: Path) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        link = tarfile.TarInfo("link")
        link.type = tarfile.SYMTYPE
        link.linkname = str(victim_dir)
        tf.addfile(link)
        data = b"pwned"
        f = tarfile.TarInfo("link/pwned")
        f.size = len(data)
        tf.addfile(f, io.BytesIO(data))
    return path


def test_unpack_of_hostile_layer_leaves_no_snapshot(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    store = ImageStore(str(tmp_path / "state"))
    image = store.import_rootfs(str(_symlink_escape_tar(tmp_path / "e.tar.gz", victim)), "evil")
    with pytest.raises(UnsafeLayer, match="symlink"):
        store.lower_dirs(image)
    assert not (victim / "pwned").exists()
    assert os.listdir(store.snapshots.root) == [".locks"]  # no snapshot, no temp dir


def test_size_bound_applies_to_unpack(tmp_path: Path) -> None:
    src = tmp_path / "big"
    src.mkdir()
    (src / "zeros").write_bytes(b"\0" * (2 << 20))  # compresses to almost nothing
    store = ImageStore(str(tmp_path / "state"), max_layer_bytes=1 << 20)
    image = store.import_rootfs(str(src), "bomb")
    assert image.size < 64 << 10
    with pytest.raises(UnsafeLayer, match="beyond the limit"):
        store.lower_dirs(image)
    assert os.listdir(store.snapshots.root) == [".locks"]


def test_corrupt_layer_blob_is_detected(store: ImageStore, rootfs: Path) -> None:
    image = store.import_rootfs(str(rootfs), "app")
    blob = Path(store.layout.blob_path(image.layer_digests[0]))
    data = gzip.decompress(blob.read_bytes())
    blob.write_bytes(gzip.compress(data[:-1024] + b"\1" + data[-1023:]))  # change padding
    with pytest.raises(AgentError, match="does not match its diff_id"):
        store.lower_dirs(image)
    assert _snapshot_dirs(store) == []


def test_truncated_layer_blob_is_refused(store: ImageStore, rootfs: Path) -> None:
    image = store.import_rootfs(str(rootfs), "app")
    blob = Path(store.layout.blob_path(image.layer_digests[0]))
    blob.write_bytes(blob.read_bytes()[:200])
    with pytest.raises(InvalidArgument, match="not a valid tar stream"):
        store.lower_dirs(image)
    assert _snapshot_dirs(store) == []


@pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo not installed")
def test_skopeo_reads_the_layout(store: ImageStore, rootfs: Path, tmp_path: Path) -> None:
    image = store.import_rootfs(str(rootfs), "team/app:v1", CONFIG)
    ref = f"oci:{store.layout.path}:team/app:v1"
    out = subprocess.run(["skopeo", "inspect", ref], check=True, capture_output=True, text=True)
    info = json.loads(out.stdout)
    assert info["Digest"] == image.manifest_digest
    assert info["Layers"] == image.layer_digests
    assert info["Architecture"] == "amd64" and info["Os"] == "linux"
    # copy verifies every blob digest on the way.
    subprocess.run(
        ["skopeo", "copy", "-q", ref, f"dir:{tmp_path / 'copy'}"], check=True, capture_output=True
    )
    assert (tmp_path / "copy" / image.id.removeprefix("sha256:")).exists()


# -- names by Docker's rules -------------------------------------------------------


def test_registry_names_and_their_spellings(store: ImageStore, rootfs: Path) -> None:
    image = store.import_rootfs(str(rootfs), "127.0.0.1:5055/team/app:1")
    local = store.import_rootfs(str(rootfs), "localhost:5000/app")
    hub = store.import_rootfs(str(rootfs), "docker.io/library/busybox:1.36")
    assert store.get("127.0.0.1:5055/team/app:1").repo_tags == ["127.0.0.1:5055/team/app:1"]
    assert store.get("localhost:5000/app:latest") == local
    # Docker Hub's names have one familiar form, whichever way they are written.
    for spelling in ("busybox:1.36", "library/busybox:1.36", "index.docker.io/busybox:1.36"):
        assert store.get(spelling) == hub, spelling
    assert hub.repo_tags == ["busybox:1.36"]
    with pytest.raises(NotFound, match=r"orch pull 127.0.0.1:5055/team/app:2\)"):
        store.get("127.0.0.1:5055/team/app:2")
    assert {t for i in store.list() for t in i.repo_tags} == {
        "127.0.0.1:5055/team/app:1", "localhost:5000/app:latest", "busybox:1.36"}
    assert image.repo_digests == [f"127.0.0.1:5055/team/app@{image.manifest_digest}"]


def test_digest_references(store: ImageStore, rootfs: Path, tmp_path: Path) -> None:
    image = store.import_rootfs(str(rootfs), "127.0.0.1:5055/team/app:1")
    digest = image.manifest_digest
    # NAME@DIGEST finds the image known by NAME whose manifest has that digest.
    assert store.get(f"127.0.0.1:5055/team/app@{digest}") == image
    assert store.get(f"127.0.0.1:5055/team/app:1@{digest}") == image  # the tag beside it is noise
    with pytest.raises(NotFound):
        store.get(f"127.0.0.1:5055/other@{digest}")
    with pytest.raises(NotFound):
        store.get("127.0.0.1:5055/team/app@sha256:" + "0" * 64)
    # An image indexed by digest only (a pull by digest) is listed and kept by prune.
    other = tmp_path / "other"
    other.mkdir()
    (other / "f").write_text("x")
    pulled = store.import_rootfs(str(other), "tmp:1")
    by_digest = f"reg.example.com/x@{pulled.manifest_digest}"
    assert store.add_manifest(by_digest, pulled.manifest_digest).repo_digests == sorted(
        [by_digest, f"tmp@{pulled.manifest_digest}"])
    assert store.remove("tmp:1") == ["untagged: tmp:1"]
    assert store.prune() == []
    assert store.get(by_digest).repo_tags == []
    assert {i.id for i in store.list()} == {image.id, pulled.id}
    assert store.remove(by_digest) == [f"untagged: {by_digest}", f"deleted: {pulled.id}",
                                       f"deleted layer: {pulled.layer_digests[0]}"]


def test_remove_by_digest_untags_every_name_of_that_repository(store: ImageStore, rootfs: Path) -> None:
    image = store.import_rootfs(str(rootfs), "localhost:5000/app:1")
    with store.layout.locked():
        store._tag_locked("localhost:5000/app:2", image.manifest_digest, 0)
        store._tag_locked("keep:1", image.manifest_digest, 0)
    assert store.remove(f"localhost:5000/app@{image.manifest_digest}") == [
        "untagged: localhost:5000/app:1", "untagged: localhost:5000/app:2"]
    assert store.get("keep:1").id == image.id


def test_an_image_is_tagged_not_digested(store: ImageStore, rootfs: Path) -> None:
    with pytest.raises(InvalidArgument, match="tagged NAME\\[:TAG\\]"):
        store.import_rootfs(str(rootfs), "app@sha256:" + "0" * 64)
    assert store.layout.read_index() == []
