"""Several layers stacked by overlayfs: what an upper layer deletes stays
deleted (snapshots carry overlayfs whiteout markers)."""

from __future__ import annotations

import ctypes
import io
import os
import tarfile
from pathlib import Path

import pytest

from nodeagent.images import ImageStore
from tests.registry.registry_helpers import layered_image


def _add(tf: tarfile.TarFile, name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE) -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    tf.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def _mount_overlay(lowers: list[str], target: Path) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    opts = ("lowerdir=" + ":".join(lowers)).encode()
    if libc.mount(b"overlay", str(target).encode(), b"overlay", 1, opts) != 0:  # MS_RDONLY
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def test_deletions_in_an_upper_layer_hide_lower_files(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("overlayfs needs root")
    base = tmp_path / "base"
    (base / "etc").mkdir(parents=True)
    (base / "etc" / "gone").write_text("deleted above\n")
    (base / "keep").write_text("kept\n")
    (base / "opq").mkdir()
    (base / "opq" / "old").write_text("hidden by an opaque dir\n")
    top = tmp_path / "top.tar"
    with tarfile.open(top, "w") as tf:
        _add(tf, "etc", kind=tarfile.DIRTYPE)
        _add(tf, "etc/.wh.gone")
        _add(tf, "opq", kind=tarfile.DIRTYPE)
        _add(tf, "opq/.wh..wh..opq")
        _add(tf, "opq/new", b"new\n")
    store = ImageStore(str(tmp_path / "store"))
    image = layered_image(store, "stack:1", [base, top])
    target = tmp_path / "mnt"
    target.mkdir()
    _mount_overlay(store.lower_dirs(image), target)
    try:
        assert not (target / "etc" / "gone").exists()
        assert (target / "keep").read_text() == "kept\n"
        assert sorted(os.listdir(target / "opq")) == ["new"]
    finally:
        ctypes.CDLL(None).umount2(str(target).encode(), 2)  # MNT_DETACH
