"""apply_layer: preservation, whiteouts, and refusal of hostile layers (host untouched)."""

from __future__ import annotations

import io
import os
import secrets
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from images_helpers import MTIME, tar_of

from nodeagent.images import UnsafeLayer, apply_layer

Member = tuple[tarfile.TarInfo, bytes | None]


def _info(name: str, kind: bytes = tarfile.REGTYPE, **kw: object) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    info.mtime = MTIME
    for key, value in kw.items():
        setattr(info, key, value)
    return info


def _file(name: str, data: bytes = b"x") -> Member:
    return _info(name, size=len(data)), data


def _make_tar(path: Path, members: list[Member]) -> Path:
    with tarfile.open(path, "w") as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _snapshot_of(root: Path) -> set[str]:
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            out.add(os.path.relpath(os.path.join(dirpath, name), root))
    return out


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
    lower = _make_tar(
        tmp_path / "lower.tar",
        [
            _file("keep"),
            _file("gone"),
            (_info("dir", tarfile.DIRTYPE), None),
            _file("dir/sub"),
            (_info("opaque", tarfile.DIRTYPE), None),
            _file("opaque/old1"),
            (_info("opaque/olddir", tarfile.DIRTYPE), None),
            _file("opaque/olddir/x"),
        ],
    )
    upper = _make_tar(
        tmp_path / "upper.tar",
        [
            _file(".wh.gone", b""),
            _file(".wh.dir", b""),
            (_info("opaque", tarfile.DIRTYPE), None),
            _file("opaque/new-before", b"n"),
            _file("opaque/.wh..wh..opq", b""),
            _file("opaque/new-after", b"n"),
            _file(".wh.never-existed", b""),
        ],
    )
    dest.mkdir()
    apply_layer(str(lower), str(dest))
    apply_layer(str(upper), str(dest))
    assert _snapshot_of(dest) == {"keep", "opaque", "opaque/new-before", "opaque/new-after"}


def test_whiteouts_in_a_single_layer_are_not_created(tmp_path: Path) -> None:
    layer = _make_tar(
        tmp_path / "l.tar", [_file("a"), _file(".wh.b", b""), _file(".wh..wh..opq", b"")]
    )
    dest = tmp_path / "dest"
    dest.mkdir()
    apply_layer(str(layer), str(dest))
    assert _snapshot_of(dest) == {"a"}


def test_dir_replaced_later_in_the_same_layer(tmp_path: Path) -> None:
    members: list[Member] = [
        (_info("d", tarfile.DIRTYPE, mode=0o700), None),
        (_info("d/e", tarfile.DIRTYPE), None),
        _file("d/e/f"),
        (_info("d", tarfile.SYMTYPE, linkname="elsewhere"), None),
    ]
    layer = _make_tar(tmp_path / "l.tar", members)
    dest = tmp_path / "dest"
    dest.mkdir()
    apply_layer(str(layer), str(dest))
    assert os.readlink(dest / "d") == "elsewhere"
    assert _snapshot_of(dest) == {"d"}


# -- hostile layers ------------------------------------------------------------

Case = Callable[[Path], tuple[list[Member], list[Path], str]]


def _dotdot(tmp: Path) -> tuple[list[Member], list[Path], str]:
    name = f"orch-escape-{secrets.token_hex(4)}"
    return [_file(f"../{name}"), _file(f"a/../../{name}")], [tmp / name], "'..'"


def _absolute(tmp: Path) -> tuple[list[Member], list[Path], str]:
    target = Path(f"/tmp/orch-abs-{secrets.token_hex(4)}")
    return [_file(str(target))], [target], "absolute"


def _symlink_escape_tmp(tmp: Path) -> tuple[list[Member], list[Path], str]:
    name = f"orch-pwned-{secrets.token_hex(4)}"
    members: list[Member] = [
        (_info("link", tarfile.SYMTYPE, linkname="/tmp"), None),
        _file(f"link/{name}", b"pwned"),
    ]
    return members, [Path("/tmp") / name], "symlink"


def _symlink_escape_relative(tmp: Path) -> tuple[list[Member], list[Path], str]:
    outside = tmp / "outside"
    outside.mkdir()
    members: list[Member] = [
        (_info("sub", tarfile.DIRTYPE), None),
        (_info("sub/up", tarfile.SYMTYPE, linkname="../../outside"), None),
        _file("sub/up/pwned", b"pwned"),
    ]
    return members, [outside / "pwned"], "symlink"


def _hardlink_outside(tmp: Path) -> tuple[list[Member], list[Path], str]:
    secret = tmp / "secret"
    secret.write_text("host secret")
    members: list[Member] = [(_info("hl", tarfile.LNKTYPE, linkname=str(secret)), None)]
    return members, [], "absolute"


def _hardlink_dotdot(tmp: Path) -> tuple[list[Member], list[Path], str]:
    (tmp / "secret").write_text("host secret")
    members: list[Member] = [(_info("hl", tarfile.LNKTYPE, linkname="../secret"), None)]
    return members, [], "'..'"


def _hardlink_via_symlink(tmp: Path) -> tuple[list[Member], list[Path], str]:
    (tmp / "secret").write_text("host secret")
    members: list[Member] = [
        (_info("up", tarfile.SYMTYPE, linkname=str(tmp)), None),
        (_info("hl", tarfile.LNKTYPE, linkname="up/secret"), None),
    ]
    return members, [], "hardlink target"


def _char_device(tmp: Path) -> tuple[list[Member], list[Path], str]:
    members: list[Member] = [
        (_info("dev", tarfile.DIRTYPE), None),
        (_info("dev/mem", tarfile.CHRTYPE, devmajor=1, devminor=1), None),
    ]
    return members, [], "device"


def _block_device(tmp: Path) -> tuple[list[Member], list[Path], str]:
    return [(_info("sda", tarfile.BLKTYPE, devmajor=8, devminor=0), None)], [], "device"


def _size_bomb(tmp: Path) -> tuple[list[Member], list[Path], str]:
    return [_file("a", b"\0" * 40_000), _file("b", b"\0" * 40_000)], [], "beyond the limit"


HOSTILE: list[Case] = [
    _dotdot,
    _absolute,
    _symlink_escape_tmp,
    _symlink_escape_relative,
    _hardlink_outside,
    _hardlink_dotdot,
    _hardlink_via_symlink,
    _char_device,
    _block_device,
    _size_bomb,
]


@pytest.mark.parametrize("case", HOSTILE, ids=lambda c: c.__name__.lstrip("_"))
def test_hostile_layer_refused_and_host_untouched(case: Case, tmp_path: Path) -> None:
    members, would_be_targets, fragment = case(tmp_path)
    layer = _make_tar(tmp_path / "hostile.tar", members)
    dest = tmp_path / "dest"
    dest.mkdir()
    before_tmp = _snapshot_of(tmp_path)
    try:
        with pytest.raises(UnsafeLayer) as err:
            apply_layer(str(layer), str(dest), max_bytes=64 * 1024)
        assert fragment in err.value.message
        for target in would_be_targets:
            assert not os.path.lexists(target), target
        # Only the destination's own tree may have changed.
        changed = {p for p in _snapshot_of(tmp_path) - before_tmp if not p.startswith("dest/")}
        assert changed == set()
        if (tmp_path / "secret").exists():
            assert (tmp_path / "secret").read_text() == "host secret"
            assert os.stat(tmp_path / "secret").st_nlink == 1
    finally:
        for target in would_be_targets:
            if os.path.lexists(target) and str(target).startswith("/tmp/orch-"):
                os.unlink(target)
