"""Interop with the real tools: what orch builds and pushes, skopeo copies and
umoci unpacks to the same files; what umoci makes and skopeo pushes, orch
pulls and runs."""

from __future__ import annotations

import ctypes
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from registry_helpers import Registry

from nodeagent.images import ImageStore
from nodeagent.images.pull import pull
from nodeagent.images.push import push

ROOT = Path(__file__).resolve().parents[2]


def _run(*cmd: str) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)}: {proc.stderr}"
    return proc.stdout


def _tree(root: Path) -> dict[str, str]:
    """path -> kind:content-ish, for comparing two root filesystems."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                out[rel] = "link:" + os.readlink(path)
            elif path.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = f"file:{path.stat().st_size}"
    return out


def test_orch_built_image_unpacks_the_same_with_umoci(registry: Registry, store: ImageStore,
                                                      busybox_rootfs: Path, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("building runs containers: root")
    store.import_rootfs(str(busybox_rootfs), "busybox")
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "hello.txt").write_text("hello from the context\n")
    (context / "Containerfile").write_text(
        "FROM busybox\nCOPY hello.txt /hello.txt\n"
        "RUN echo built > /built.txt && rm /bin/vi\n")
    _run(sys.executable, "-m", "nodeagent.images.build", "--state-dir", store.root, "-t", "built:1",
         str(context))
    push(store, "built:1", f"{registry.addr}/built:1")
    _run("skopeo", "copy", "--src-tls-verify=false", f"docker://{registry.addr}/built:1",
         f"oci:{tmp_path / 'oci'}:built")
    _run("umoci", "unpack", "--image", f"{tmp_path / 'oci'}:built", str(tmp_path / "bundle"))
    theirs = tmp_path / "bundle" / "rootfs"
    assert (theirs / "hello.txt").read_text() == "hello from the context\n"
    assert (theirs / "built.txt").read_text() == "built\n"
    assert not (theirs / "bin" / "vi").exists()
    # orch's own view of the same image: its snapshots stacked by overlayfs.
    image = store.get("built:1")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    libc = ctypes.CDLL(None, use_errno=True)
    opts = ("lowerdir=" + ":".join(store.lower_dirs(image))).encode()
    assert libc.mount(b"overlay", str(mnt).encode(), b"overlay", 1, opts) == 0, ctypes.get_errno()
    try:
        assert _tree(mnt) == _tree(theirs)
    finally:
        libc.umount2(str(mnt).encode(), 2)


def test_umoci_made_image_pushed_by_skopeo_is_pulled_and_run_by_orch(
        registry: Registry, store2: ImageStore, busybox_rootfs: Path, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("running a container needs root")
    layout, bundle = tmp_path / "u", tmp_path / "ub"
    _run("umoci", "init", "--layout", str(layout))
    _run("umoci", "new", "--image", f"{layout}:base")
    _run("umoci", "unpack", "--image", f"{layout}:base", str(bundle))
    shutil.copytree(busybox_rootfs, bundle / "rootfs", symlinks=True, dirs_exist_ok=True)
    (bundle / "rootfs" / "msg.txt").write_text("made by umoci\n")
    _run("umoci", "repack", "--image", f"{layout}:base", str(bundle))
    _run("umoci", "config", "--image", f"{layout}:base", "--config.cmd", "/bin/cat",
         "--config.cmd", "/msg.txt")
    _run("skopeo", "copy", "--dest-tls-verify=false", f"oci:{layout}:base",
         f"docker://{registry.addr}/from-umoci:1")
    image = pull(store2, f"{registry.addr}/from-umoci:1")
    assert image.config.cmd == ["/bin/cat", "/msg.txt"]

    from nodeagent.runtime import LinuxRuntime, Stdio
    from nodeagent.runtime.spec import ContainerSpec, ProcessSpec, RootfsSpec

    cid = secrets.token_hex(32)
    spec = ContainerSpec(id=cid, name=cid[:12], hostname="umoci", bundle_dir=str(tmp_path / "ctr"),
                         rootfs=RootfsSpec(store2.lower_dirs(image)),
                         process=ProcessSpec(args=image.config.cmd), cgroup_name=f"orch/{cid}")
    rt = LinuxRuntime()
    r, w = os.pipe()
    try:
        container = rt.create(spec, Stdio(stdout=w))
        os.close(w)
        rt.start(container)
        status = rt.wait(container, timeout=30)
        output = os.read(r, 4096).decode()
        rt.remove(container)
    finally:
        os.close(r)
        rt.cleanup()
    assert status is not None and status.exit_code == 0
    assert output == "made by umoci\n"
