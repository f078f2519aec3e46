"""apply_layer: preservation, whiteouts, and refusal of hostile layers (host untouched)."""

from __future__ import annotations

import os
import stat
import tarfile
from pathlib import Path

import pytest
from hostile_layers import HOSTILE, Case, Member, layer_file, layer_info, make_tar, snapshot_of
from images_helpers import MTIME, tar_of

from nodeagent.images import UnsafeLayer, apply_layer

# -- preservation ------------------------------------------------------------


def test_roundtrip_preserves_modes_owners_links_mtimes(rootfs: Path, tmp_path: Path) -> None:
    layer = tar_of(rootfs, tmp_path / "layer.tar.gz")
    dest = tmp_path / "dest"
    dest.mkdir()
    apply_layer(str(layer), str(dest))

    app = os.lstat(dest / "bin/app")
    assert stat.S_IMODE(app.st_mode) == 0o4755  # setuid survives chown
    assert app.st_mtime == MTIME
    conf = os.lstat(dest / "etc/conf")
    assert (conf.st_uid, conf.st_gid, stat.S_IMODE(conf.st_mode)) == (1000, 1000, 0o640)
    assert os.readlink(dest / "bin/sh") == "app"
    assert os.lstat(dest / "bin/sh").st_mtime == MTIME
    assert os.lstat(dest / "bin/app-hardlink").st_ino == app.st_ino
    assert stat.S_ISFIFO(os.lstat(dest / "etc/fifo").st_mode)
    empty = os.lstat(dest / "empty")
    assert stat.S_IMODE(empty.st_mode) == 0o750
    assert empty.st_mtime == MTIME  # directory attributes applied after children
    assert os.lstat(dest / "bin").st_mtime == MTIME
    assert (dest / "bin/app").read_bytes() == (rootfs / "bin/app").read_bytes()


# -- whiteouts -----------------------------------------------------------------


def test_whiteouts_delete_files_and_opaque_dirs(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    lower = make_tar(
        tmp_path / "lower.tar",
        [
            layer_file("keep"),
            layer_file("gone"),
            (layer_info("dir", tarfile.DIRTYPE), None),
            layer_file("dir/sub"),
            (layer_info("opaque", tarfile.DIRTYPE), None),
            layer_file("opaque/old1"),
            (layer_info("opaque/olddir", tarfile.DIRTYPE), None),
            layer_file("opaque/olddir/x"),
        ],
    )
    upper = make_tar(
        tmp_path / "upper.tar",
        [
            layer_file(".wh.gone", b""),
            layer_file(".wh.dir", b""),
            (layer_info("opaque", tarfile.DIRTYPE), None),
            layer_file("opaque/new-before", b"n"),
            layer_file("opaque/.wh..wh..opq", b""),
            layer_file("opaque/new-after", b"n"),
            layer_file(".wh.never-existed", b""),
        ],
    )
    dest.mkdir()
    apply_layer(str(lower), str(dest))
    apply_layer(str(upper), str(dest))
    assert snapshot_of(dest) == {"keep", "opaque", "opaque/new-before", "opaque/new-after"}


def test_whiteouts_in_a_single_layer_are_not_created(tmp_path: Path) -> None:
    layer = make_tar(
        tmp_path / "l.tar", [layer_file("a"), layer_file(".wh.b", b""), layer_file(".wh..wh..opq", b"")]
    )
    dest = tmp_path / "dest"
    dest.mkdir()
    apply_layer(str(layer), str(dest))
    assert snapshot_of(dest) == {"a"}


def test_dir_replaced_later_in_the_same_layer(tmp_path: Path) -> None:
    members: list[Member] = [
        (layer_info("d", tarfile.DIRTYPE, mode=0o700), None),
        (layer_info("d/e", tarfile.DIRTYPE), None),
        layer_file("d/e/f"),
        (layer_info("d", tarfile.SYMTYPE, linkname="elsewhere"), None),
    ]
    layer = make_tar(tmp_path / "l.tar", members)
    dest = tmp_path / "dest"
    dest.mkdir()
    apply_layer(str(layer), str(dest))
    assert os.readlink(dest / "d") == "elsewhere"
    assert snapshot_of(dest) == {"d"}


@pytest.mark.parametrize("case", HOSTILE, ids=lambda c: c.__name__.lstrip("_"))
def test_hostile_layer_refused_and_host_untouched(case: Case, tmp_path: Path) -> None:
    members, would_be_targets, fragment = case(tmp_path)
    layer = make_tar(tmp_path / "hostile.tar", members)
    dest = tmp_path / "dest"
    dest.mkdir()
    before_tmp = snapshot_of(tmp_path)
    try:
        with pytest.raises(UnsafeLayer) as err:
            apply_layer(str(layer), str(dest), max_bytes=64 * 1024)
        assert fragment in err.value.message
        for target in would_be_targets:
            assert not os.path.lexists(target), target
        # Only the destination's own tree may have changed.
        changed = {p for p in snapshot_of(tmp_path) - before_tmp if not p.startswith("dest/")}
        assert changed == set()
        if (tmp_path / "secret").exists():
            assert (tmp_path / "secret").read_text() == "host secret"
            assert os.stat(tmp_path / "secret").st_nlink == 1
    finally:
        for target in would_be_targets:
            if os.path.lexists(target) and str(target).startswith("/tmp/orch-"):
                os.unlink(target)
