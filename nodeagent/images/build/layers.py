"""Layer tars the build writes: a RUN's overlay upper dir, or a COPY's entries.

Tars are written in sorted order with numeric owners and empty user names;
mtimes are kept. Overlay whiteouts in an upper dir (a 0:0 character device)
become ``.wh.NAME`` members and an opaque directory (``trusted.overlay.opaque``
= "y") gets a ``.wh..wh..opq`` member right after its own entry, so
:func:`nodeagent.images.apply_layer` and other OCI tools read them back.
"""

from __future__ import annotations

import gzip
import os
import stat
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO

from nodeagent.images.extract import OPAQUE_MARKER, WHITEOUT_PREFIX
from nodeagent.images.layerbuild import GZIP_LEVEL, HashingWriter, LayerBlob
from nodeagent.images.layout import OciLayout

OPAQUE_XATTR = "trusted.overlay.opaque"
# What the runtime creates in a container's rootfs as mount targets: never
# part of a layer when they are empty and the lower layers do not have them.
GENERATED_FILES = ("etc/hosts", "etc/hostname", "etc/resolv.conf")
GENERATED_DIRS = ("proc", "sys", "dev", "etc")


@dataclass
class LayerTar:
    """An open layer being written; :meth:`add` members in order, then :meth:`commit`."""

    layout: OciLayout
    count: int = 0
    _names: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._writer = self.layout.blob_writer()
        self._gz = gzip.GzipFile(filename="", mode="wb", fileobj=self._writer,  # type: ignore[arg-type]
                                 compresslevel=GZIP_LEVEL, mtime=0)
        self._hashed = HashingWriter(self._gz)  # type: ignore[arg-type]
        self._tar = tarfile.open(  # noqa: SIM115 (closed by commit/abort)
            fileobj=self._hashed, mode="w|", format=tarfile.PAX_FORMAT)  # type: ignore[call-overload]

    def has(self, name: str) -> bool:
        return name in self._names

    def add(self, info: tarfile.TarInfo, data: IO[bytes] | None = None) -> None:
        info.uname = info.gname = ""
        self._tar.addfile(info, data)
        self._names.add(info.name)
        self.count += 1

    def add_file(self, info: tarfile.TarInfo, path: str) -> None:
        """A regular file, exactly the size its header declares (a running
        container's file may change while it is read: ``orch commit``)."""
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as f:
            self.add(info, _Exact(f, info.size or 0))  # type: ignore[arg-type]

    def commit(self) -> LayerBlob:
        self._tar.close()
        self._gz.close()
        digest = self._writer.commit()
        return LayerBlob(digest, self._hashed.digest, self._writer.size,
                         self._hashed.size)

    def abort(self) -> None:
        try:
            self._tar.close()
            self._gz.close()
        except Exception:
            pass
        self._writer.abort()


class _Exact:
    """A file read as ``size`` bytes: cut where it grew, padded with zeros
    where it shrank since its header was written."""

    def __init__(self, f: IO[bytes], size: int) -> None:
        self.f = f
        self.left = size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        data = self.f.read(n)
        data += b"\0" * (n - len(data))
        self.left -= n
        return data


def info_from_stat(name: str, st: os.stat_result, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid = st.st_uid, st.st_gid
    info.mtime = int(st.st_mtime)
    if stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(st.st_mode):
        info.type, info.linkname = tarfile.SYMTYPE, linkname
    elif stat.S_ISFIFO(st.st_mode):
        info.type = tarfile.FIFOTYPE
    else:
        info.type, info.size = tarfile.REGTYPE, st.st_size
    return info


# -- RUN: overlay upper dir -> layer -------------------------------------------------


LowerStat = Callable[[str], "os.stat_result | None"]


def upper_to_layer(upper: str, layout: OciLayout, lower_stat: LowerStat,
                   excluded: frozenset[str] | set[str] = frozenset()) -> LayerBlob | None:
    """The changes in ``upper`` as a layer blob; None when nothing changed.

    ``lower_stat(rel)`` is the path's stat in the layers below, or None (used
    to drop the runtime's generated mountpoints and bare copy-up directories,
    which are not changes). ``excluded``: relative paths left out with
    everything below them (a container's mount targets: ``orch commit``).
    A file or dir that goes away during the walk (a running container's) is
    left out.
    """
    entries = list(_walk(upper, "", lower_stat, excluded))
    if not entries:
        return None
    layer = LayerTar(layout)
    try:
        seen: dict[tuple[int, int], str] = {}
        for rel, st, kind in entries:
            path = os.path.join(upper, rel)
            if kind == "whiteout":
                parent, base = os.path.split(rel)
                info = tarfile.TarInfo(os.path.join(parent, WHITEOUT_PREFIX + base))
                info.mode = 0o600
                layer.add(info)
                continue
            key = (st.st_dev, st.st_ino)
            if stat.S_ISREG(st.st_mode) and st.st_nlink > 1 and key in seen:
                info = info_from_stat(rel, st)
                info.type, info.linkname, info.size = tarfile.LNKTYPE, seen[key], 0
                layer.add(info)
                continue
            info = info_from_stat(rel, st, os.readlink(path) if stat.S_ISLNK(st.st_mode) else "")
            if info.isreg():
                seen[key] = rel
                layer.add_file(info, path)
            else:
                layer.add(info)
            if kind == "opaque":
                marker = tarfile.TarInfo(os.path.join(rel, OPAQUE_MARKER))
                marker.mode = 0o600
                layer.add(marker)
        return layer.commit()
    except BaseException:
        layer.abort()
        raise


def _walk(upper: str, rel: str, lower_stat: LowerStat,
          excluded: frozenset[str] | set[str]) -> Iterator[tuple[str, os.stat_result, str]]:
    """(rel, stat, kind) depth-first sorted; kind is "plain", "opaque" or "whiteout"."""
    try:
        with os.scandir(os.path.join(upper, rel) if rel else upper) as it:
            names = sorted(e.name for e in it)
    except FileNotFoundError:
        return
    for name in names:
        child = f"{rel}/{name}" if rel else name
        if child in excluded:
            continue
        path = os.path.join(upper, child)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        mode = st.st_mode
        if stat.S_ISCHR(mode) and st.st_rdev == 0:
            yield child, st, "whiteout"
        elif stat.S_ISDIR(mode):
            opaque = _is_opaque(path)
            below = list(_walk(upper, child, lower_stat, excluded))
            if not below and not opaque and _unchanged_dir(child, st, lower_stat(child)):
                continue
            yield child, st, "opaque" if opaque else "plain"
            yield from below
        elif stat.S_ISREG(mode) or stat.S_ISLNK(mode) or stat.S_ISFIFO(mode):
            if (child in GENERATED_FILES and stat.S_ISREG(mode) and st.st_size == 0
                    and lower_stat(child) is None):
                continue
            yield child, st, "plain"
        # other device nodes and sockets cannot be shipped in a layer: skipped


def _unchanged_dir(rel: str, st: os.stat_result, lower: os.stat_result | None) -> bool:
    """An empty upper dir that is only a runtime mountpoint or a copy-up of an
    unchanged lower dir (its mtime moved because a placeholder was created)."""
    if lower is None:
        return rel in GENERATED_DIRS
    return (stat.S_ISDIR(lower.st_mode) and stat.S_IMODE(lower.st_mode) == stat.S_IMODE(st.st_mode)
            and (lower.st_uid, lower.st_gid) == (st.st_uid, st.st_gid))


def _is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False
