"""Tar layers for extraction tests: member builders, and the hostile layers
extraction must refuse (each with the host paths it would write and a
fragment of the refusal), shared by the extractor's and the pull's tests."""

from __future__ import annotations

import io
import os
import secrets
import tarfile
from collections.abc import Callable
from pathlib import Path

MTIME = 1_600_000_000  # as images_helpers.MTIME

Member = tuple[tarfile.TarInfo, bytes | None]


def layer_info(name: str, kind: bytes = tarfile.REGTYPE, **kw: object) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    info.mtime = MTIME
    for key, value in kw.items():
        setattr(info, key, value)
    return info


def layer_file(name: str, data: bytes = b"x") -> Member:
    return layer_info(name, size=len(data)), data


def make_tar(path: Path, members: list[Member]) -> Path:
    with tarfile.open(path, "w") as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def snapshot_of(root: Path) -> set[str]:
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            out.add(os.path.relpath(os.path.join(dirpath, name), root))
    return out


Case = Callable[[Path], tuple[list[Member], list[Path], str]]


def _dotdot(tmp: Path) -> tuple[list[Member], list[Path], str]:
    name = f"orch-escape-{secrets.token_hex(4)}"
    return [layer_file(f"../{name}"), layer_file(f"a/../../{name}")], [tmp / name], "'..'"


def _absolute(tmp: Path) -> tuple[list[Member], list[Path], str]:
    target = Path(f"/tmp/orch-abs-{secrets.token_hex(4)}")
    return [layer_file(str(target))], [target], "absolute"


def _symlink_escape_tmp(tmp: Path) -> tuple[list[Member], list[Path], str]:
    name = f"orch-pwned-{secrets.token_hex(4)}"
    members: list[Member] = [
        (layer_info("link", tarfile.SYMTYPE, linkname="/tmp"), None),
        layer_file(f"link/{name}", b"pwned"),
    ]
    return members, [Path("/tmp") / name], "symlink"


def _symlink_escape_relative(tmp: Path) -> tuple[list[Member], list[Path], str]:
    outside = tmp / "outside"
    outside.mkdir()
    members: list[Member] = [
        (layer_info("sub", tarfile.DIRTYPE), None),
        (layer_info("sub/up", tarfile.SYMTYPE, linkname="../../outside"), None),
        layer_file("sub/up/pwned", b"pwned"),
    ]
    return members, [outside / "pwned"], "symlink"


def _hardlink_outside(tmp: Path) -> tuple[list[Member], list[Path], str]:
    secret = tmp / "secret"
    secret.write_text("host secret")
    members: list[Member] = [(layer_info("hl", tarfile.LNKTYPE, linkname=str(secret)), None)]
    return members, [], "absolute"


def _hardlink_dotdot(tmp: Path) -> tuple[list[Member], list[Path], str]:
    (tmp / "secret").write_text("host secret")
    members: list[Member] = [(layer_info("hl", tarfile.LNKTYPE, linkname="../secret"), None)]
    return members, [], "'..'"


def _hardlink_via_symlink(tmp: Path) -> tuple[list[Member], list[Path], str]:
    (tmp / "secret").write_text("host secret")
    members: list[Member] = [
        (layer_info("up", tarfile.SYMTYPE, linkname=str(tmp)), None),
        (layer_info("hl", tarfile.LNKTYPE, linkname="up/secret"), None),
    ]
    return members, [], "hardlink target"


def _char_device(tmp: Path) -> tuple[list[Member], list[Path], str]:
    members: list[Member] = [
        (layer_info("dev", tarfile.DIRTYPE), None),
        (layer_info("dev/mem", tarfile.CHRTYPE, devmajor=1, devminor=1), None),
    ]
    return members, [], "device"


def _block_device(tmp: Path) -> tuple[list[Member], list[Path], str]:
    return [(layer_info("sda", tarfile.BLKTYPE, devmajor=8, devminor=0), None)], [], "device"


def _size_bomb(tmp: Path) -> tuple[list[Member], list[Path], str]:
    return [layer_file("a", b"\0" * 40_000), layer_file("b", b"\0" * 40_000)], [], "beyond the limit"


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
