"""Build one gzip layer blob from a directory or a tarball, streamed to disk.

Invariants:
- The layer is never held in memory: tar -> (sha256 of the uncompressed
  stream = diff_id) -> gzip -> (sha256 of the compressed stream = digest) ->
  temp blob file, renamed into the layout when complete.
- Output is deterministic for a given input: directory entries are sorted,
  mtimes and numeric owners are kept, user/group names are empty, the gzip
  header carries no name and mtime 0. Tarball input keeps its member order
  (hardlinks must follow their target) and is re-written member by member with
  the same normalisation.
- Members extraction would refuse (absolute/``..`` names, device nodes) are
  refused here too, so a bad rootfs fails at import rather than at run.
  Directory input skips device nodes and sockets (they cannot be extracted).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from common.errors import InvalidArgument
from nodeagent.images.extract import check_member, clean_member_name
from nodeagent.images.layout import OciLayout

GZIP_LEVEL = 6


@dataclass(frozen=True)
class LayerBlob:
    digest: str  # sha256 of the compressed blob
    diff_id: str  # sha256 of the uncompressed tar
    size: int  # compressed bytes
    uncompressed_size: int


class HashingWriter:
    """Pass-through writer hashing the uncompressed tar stream."""

    def __init__(self, out: IO[bytes]) -> None:
        self._out = out
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self._out.write(data)
        self._hash.update(data)
        self.size += len(data)
        return len(data)

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()


def build_layer(source: str, layout: OciLayout, gzip_level: int = GZIP_LEVEL) -> LayerBlob:
    """Write ``source`` (directory, .tar, .tar.gz/.tgz) as a layer blob into ``layout``."""
    if not os.path.exists(source):
        raise InvalidArgument(f"import source {source!r} does not exist")
    if not (os.path.isdir(source) or os.path.isfile(source)):
        raise InvalidArgument(f"import source {source!r} is neither a directory nor a tarball")
    writer = layout.blob_writer()
    try:
        gz = gzip.GzipFile(
            filename="",
            mode="wb",
            fileobj=writer,  # type: ignore[arg-type]
            compresslevel=gzip_level,
            mtime=0,
        )
        hashed = HashingWriter(gz)  # type: ignore[arg-type]
        with tarfile.open(fileobj=hashed, mode="w|", format=tarfile.PAX_FORMAT) as out:  # type: ignore[call-overload]
            if os.path.isdir(source):
                _add_directory(out, source)
            else:
                _add_tarball(out, source)
        gz.close()
        digest = writer.commit()
    except BaseException:
        writer.abort()
        raise
    return LayerBlob(digest, hashed.digest, writer.size, hashed.size)


# -- directory input -------------------------------------------------------


def _add_directory(out: tarfile.TarFile, root: str) -> None:
    seen_inodes: dict[tuple[int, int], str] = {}
    for rel, st in _walk_sorted(root, ""):
        info = _tarinfo_from_stat(root, rel, st, seen_inodes)
        if info is None:
            continue
        if info.isreg():
            fd = os.open(os.path.join(root, rel), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            with os.fdopen(fd, "rb") as f:
                out.addfile(info, f)
        else:
            out.addfile(info)


def _walk_sorted(root: str, rel: str) -> Iterator[tuple[str, os.stat_result]]:
    """Depth-first, entries sorted by name, never following symlinks."""
    with os.scandir(os.path.join(root, rel) if rel else root) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        child = f"{rel}/{entry.name}" if rel else entry.name
        st = entry.stat(follow_symlinks=False)
        yield child, st
        if stat.S_ISDIR(st.st_mode):
            yield from _walk_sorted(root, child)


def _tarinfo_from_stat(
    root: str, rel: str, st: os.stat_result, seen_inodes: dict[tuple[int, int], str]
) -> tarfile.TarInfo | None:
    info = tarfile.TarInfo(rel)
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid = st.st_uid, st.st_gid
    info.uname = info.gname = ""
    info.mtime = int(st.st_mtime)
    mode = st.st_mode
    if stat.S_ISDIR(mode):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(mode):
        info.type = tarfile.SYMTYPE
        info.linkname = os.readlink(os.path.join(root, rel))
    elif stat.S_ISREG(mode):
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in seen_inodes:
            info.type = tarfile.LNKTYPE
            info.linkname = seen_inodes[key]
        else:
            seen_inodes[key] = rel
            info.type = tarfile.REGTYPE
            info.size = st.st_size
    elif stat.S_ISFIFO(mode):
        info.type = tarfile.FIFOTYPE
    else:
        return None  # device nodes and sockets: not part of an image rootfs
    return info


# -- tarball input ---------------------------------------------------------


def _add_tarball(out: tarfile.TarFile, path: str) -> None:
    try:
        src_tar = tarfile.open(path, mode="r|*")  # noqa: SIM115 (closed below)
    except tarfile.TarError as e:
        raise InvalidArgument(f"import source {path!r} is not a readable tarball: {e}")
    with src_tar:
        for member in src_tar:
            rel = check_member(member)
            if rel == "" and not member.isdir():
                continue
            info = _normalised_copy(member, rel)
            if member.isreg():
                out.addfile(info, src_tar.extractfile(member))
            else:
                out.addfile(info)


def _normalised_copy(member: tarfile.TarInfo, rel: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(rel if rel else ".")
    info.type = tarfile.REGTYPE if member.type == tarfile.CONTTYPE else member.type
    info.mode = member.mode & 0o7777
    info.uid, info.gid = member.uid, member.gid
    info.uname = info.gname = ""
    info.mtime = int(member.mtime)
    info.linkname = clean_member_name(member.linkname) if member.islnk() else member.linkname
    info.size = member.size if member.isreg() else 0
    return info
