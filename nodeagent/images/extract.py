"""Safe layer extraction: apply one tar layer onto a directory tree.

The tar is hostile until proven otherwise (it may come from a registry). The
rules, each checked per member:

- names are relative and never climb: absolute paths and ``..`` components
  are refused (:func:`clean_member_name`);
- symlinks are never followed while extracting: every parent directory is
  opened component by component with ``O_NOFOLLOW | O_DIRECTORY`` from the
  destination's own fd, and every create/chown/utime works relative to that
  fd with no-follow flags, so ``link -> /tmp`` followed by ``link/pwned`` is
  refused rather than written through;
- a hardlink's target must be a non-directory extracted earlier from the same
  layer (it is then inside the tree by construction);
- character and block device nodes are refused;
- the total extracted size (data plus 512 bytes per header) is bounded by
  ``max_bytes``.

Whiteouts (OCI/aufs style): ``.wh.NAME`` deletes NAME from lower layers and
``.wh..wh..opq`` empties its directory of lower-layer content; neither file is
created. On an empty destination (the single-layer snapshot case) they simply
do nothing. Modes (setuid included), numeric ownership (when root), symlinks,
hardlinks and mtimes are preserved; directory attributes are applied last,
deepest first, so adding children does not disturb them.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import os
import shutil
import stat
import tarfile
import zlib
from dataclasses import dataclass, field
from typing import IO

from common.errors import AgentError, InvalidArgument
from nodeagent.images.model import DEFAULT_MAX_BYTES

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
_HEADER_COST = 512
_CHUNK = 1 << 20
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafeLayer(InvalidArgument):
    """The layer tries something extraction refuses (escape, device node, too big)."""


def clean_member_name(name: str) -> str:
    """Normalise a member name to a relative path ("" is the root); refuse escapes."""
    if name.startswith("/"):
        raise UnsafeLayer(f"layer member {name!r}: absolute path refused")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeLayer(f"layer member {name!r}: '..' path component refused")
    return "/".join(parts)


def check_member(member: tarfile.TarInfo) -> str:
    """Name- and type-level checks (no filesystem needed); returns the clean name."""
    rel = clean_member_name(member.name)
    if member.ischr() or member.isblk():
        raise UnsafeLayer(f"layer member {member.name!r}: device nodes are refused")
    if member.islnk():
        clean_member_name(member.linkname)
    return rel


def apply_layer(tar: str | IO[bytes], dest: str, max_bytes: int = DEFAULT_MAX_BYTES,
                overlay_whiteouts: bool = False) -> None:
    """Extract ``tar`` (path or readable stream, plain or compressed) onto ``dest``.

    ``overlay_whiteouts``: ``dest`` is one overlayfs lower layer of a stack
    (a snapshot), so whiteouts become overlayfs's own markers instead of
    deletions: ``.wh.NAME`` -> a 0:0 character device NAME, ``.wh..wh..opq``
    -> the ``trusted.overlay.opaque=y`` xattr on its directory. Without this,
    files a layer deletes would come back from the layers below it."""
    applier = _Applier(dest, max_bytes, overlay=overlay_whiteouts)
    try:
        if isinstance(tar, str):
            with tarfile.open(tar, mode="r|*") as tf:
                applier.run(tf)
        else:
            with tarfile.open(fileobj=tar, mode="r|*") as tf:
                applier.run(tf)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise InvalidArgument(f"layer is not a valid tar stream: {e}")
    finally:
        applier.close()


@dataclass
class _Applier:
    dest: str
    max_bytes: int
    overlay: bool = False  # whiteouts become overlayfs markers (see apply_layer)
    total: int = 0
    created: set[str] = field(default_factory=set)  # non-dir members of this layer
    touched: set[str] = field(default_factory=set)  # every path this layer made (+ ancestors)
    dirs: list[tuple[str, tarfile.TarInfo]] = field(default_factory=list)
    root_fd: int = -1
    as_root: bool = field(default_factory=lambda: os.geteuid() == 0)

    def __post_init__(self) -> None:
        self.root_fd = os.open(self.dest, _DIR_FLAGS)

    def close(self) -> None:
        if self.root_fd >= 0:
            os.close(self.root_fd)
            self.root_fd = -1

    def run(self, tf: tarfile.TarFile) -> None:
        for member in tf:
            try:
                self._member(tf, member)
            except AgentError:
                raise
            except OSError as e:
                raise AgentError(
                    f"extracting layer member {member.name!r} into {self.dest}: "
                    f"{e.strerror or e} (errno {e.errno})"
                )
        self._finish_dirs()

    # -- one member --------------------------------------------------------

    def _member(self, tf: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        rel = check_member(m)
        self._account(m)
        if rel == "":
            if m.isdir():
                self.dirs.append(("", m))
            return
        base = rel.rsplit("/", 1)[-1]
        if base.startswith(WHITEOUT_PREFIX):
            self._whiteout(rel, base)
            return
        pfd, name = self._open_parent(rel, create=True)
        try:
            self._replace_existing(pfd, name, keep_dir=m.isdir())
            if m.isdir():
                with contextlib.suppress(FileExistsError):
                    os.mkdir(name, 0o700, dir_fd=pfd)
                self.dirs.append((rel, m))
            elif m.isreg():
                self._write_file(tf, m, pfd, name)
            elif m.issym():
                os.symlink(m.linkname, name, dir_fd=pfd)
                self._chown(pfd, name, m)
                os.utime(name, ns=_mtime_ns(m), dir_fd=pfd, follow_symlinks=False)
            elif m.islnk():
                self._hardlink(m, pfd, name)
            elif m.isfifo():
                os.mkfifo(name, 0o600, dir_fd=pfd)
                self._chown(pfd, name, m)
                os.chmod(name, m.mode & 0o7777, dir_fd=pfd)
                os.utime(name, ns=_mtime_ns(m), dir_fd=pfd, follow_symlinks=False)
            else:
                raise UnsafeLayer(f"layer member {m.name!r}: unsupported type {m.type!r}")
        finally:
            os.close(pfd)
        self._mark(rel, is_dir=m.isdir())

    def _account(self, m: tarfile.TarInfo) -> None:
        self.total += max(m.size, 0) + _HEADER_COST
        if self.total > self.max_bytes:
            raise UnsafeLayer(
                f"layer member {m.name!r}: layer expands beyond the limit of {self.max_bytes} bytes"
            )

    def _mark(self, rel: str, is_dir: bool) -> None:
        if not is_dir:
            self.created.add(rel)
        parts = rel.split("/")
        for i in range(1, len(parts) + 1):
            self.touched.add("/".join(parts[:i]))

    def _open_parent(self, rel: str, create: bool) -> tuple[int, str]:
        """fd of rel's parent directory, reached without following any symlink."""
        parts = rel.split("/")
        fd = os.dup(self.root_fd)
        try:
            for i, comp in enumerate(parts[:-1]):
                try:
                    nfd = os.open(comp, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    os.mkdir(comp, 0o755, dir_fd=fd)
                    nfd = os.open(comp, _DIR_FLAGS, dir_fd=fd)
                except OSError as e:
                    if e.errno in (errno.ELOOP, errno.ENOTDIR):
                        where = "/".join(parts[: i + 1])
                        raise UnsafeLayer(
                            f"layer member {rel!r}: parent {where!r} is a symlink or not a "
                            "directory; refusing to write through it"
                        )
                    raise
                os.close(fd)
                fd = nfd
        except BaseException:
            os.close(fd)
            raise
        return fd, parts[-1]

    def _replace_existing(self, pfd: int, name: str, keep_dir: bool) -> None:
        try:
            st = os.lstat(name, dir_fd=pfd)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            if not keep_dir:
                shutil.rmtree(name, dir_fd=pfd)
        else:
            os.unlink(name, dir_fd=pfd)

    def _write_file(self, tf: tarfile.TarFile, m: tarfile.TarInfo, pfd: int, name: str) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(name, flags, 0o600, dir_fd=pfd)
        try:
            src = tf.extractfile(m)
            if src is not None:
                while chunk := src.read(_CHUNK):
                    _write_all(fd, chunk)
            if self.as_root:
                os.fchown(fd, m.uid, m.gid)
            os.fchmod(fd, m.mode & 0o7777)  # after chown: chown clears setuid
            os.utime(fd, ns=_mtime_ns(m))
        finally:
            os.close(fd)

    def _hardlink(self, m: tarfile.TarInfo, pfd: int, name: str) -> None:
        target = clean_member_name(m.linkname)
        if target not in self.created:
            raise UnsafeLayer(
                f"layer member {m.name!r}: hardlink target {m.linkname!r} is not a file "
                "extracted earlier from this layer"
            )
        tpfd, tname = self._open_parent(target, create=False)
        try:
            os.link(tname, name, src_dir_fd=tpfd, dst_dir_fd=pfd, follow_symlinks=False)
        finally:
            os.close(tpfd)

    def _chown(self, pfd: int, name: str, m: tarfile.TarInfo) -> None:
        if self.as_root:
            os.chown(name, m.uid, m.gid, dir_fd=pfd, follow_symlinks=False)

    # -- whiteouts ---------------------------------------------------------

    def _whiteout(self, rel: str, base: str) -> None:
        if self.overlay:
            self._overlay_marker(rel, base)
            return
        parent = rel.rsplit("/", 1)[0] if "/" in rel else ""
        try:
            pfd, _ = self._open_parent(rel, create=False)
        except FileNotFoundError:
            return  # nothing below to hide
        try:
            if base == OPAQUE_MARKER:
                for entry in os.listdir(pfd):
                    if _join(parent, entry) not in self.touched:
                        _remove(pfd, entry)
            else:
                victim = base[len(WHITEOUT_PREFIX) :]
                if victim and _join(parent, victim) not in self.touched:
                    _remove(pfd, victim)
        finally:
            os.close(pfd)

    def _overlay_marker(self, rel: str, base: str) -> None:
        pfd, _ = self._open_parent(rel, create=True)
        try:
            if base == OPAQUE_MARKER:
                os.setxattr(pfd, "trusted.overlay.opaque", b"y")
                return
            victim = base[len(WHITEOUT_PREFIX):]
            if not victim or "/" in victim:
                return
            self._replace_existing(pfd, victim, keep_dir=False)
            # Our own marker, never a device node taken from the layer.
            os.mknod(victim, stat.S_IFCHR | 0o600, os.makedev(0, 0), dir_fd=pfd)
        finally:
            os.close(pfd)

    # -- directories, last -------------------------------------------------

    def _finish_dirs(self) -> None:
        deepest_first = sorted(self.dirs, key=lambda d: _depth(d[0]), reverse=True)
        for rel, m in deepest_first:
            try:
                fd = self._open_dir(rel)
            except (UnsafeLayer, FileNotFoundError, NotADirectoryError):
                continue  # replaced or whited out later in this same layer
            except OSError as e:
                if e.errno == errno.ELOOP:
                    continue
                raise
            try:
                if self.as_root:
                    os.fchown(fd, m.uid, m.gid)
                os.fchmod(fd, m.mode & 0o7777)
                os.utime(fd, ns=_mtime_ns(m))
            finally:
                os.close(fd)

    def _open_dir(self, rel: str) -> int:
        if rel == "":
            return os.dup(self.root_fd)
        pfd, name = self._open_parent(rel, create=False)
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=pfd)
        finally:
            os.close(pfd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _depth(rel: str) -> int:
    return rel.count("/") + 1 if rel else 0


def _mtime_ns(m: tarfile.TarInfo) -> tuple[int, int]:
    ns = int(m.mtime * 1_000_000_000)
    return ns, ns


def _join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


def _remove(pfd: int, name: str) -> None:
    try:
        st = os.lstat(name, dir_fd=pfd)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(name, dir_fd=pfd)
    else:
        os.unlink(name, dir_fd=pfd)
