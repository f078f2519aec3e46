"""The filesystem of the layers built so far, for RUN containers and COPY lookups.

The store's snapshots are each layer unpacked on its own, which drops the
layer's whiteouts (there is nothing below to delete while unpacking). For an
overlay stack that is wrong: a file deleted by layer N would reappear from
layer N-1. So each layer that has whiteouts also gets a *whiteout dir*
(``<cache>/whiteouts/<hex>``) holding only overlay whiteouts (0:0 character
devices) and opaque directories, stacked directly *below* the layer's own
snapshot: it hides the lower layers' entries while the layer's own content
(above it) stays visible, exactly the OCI semantics.

Invariants: whiteout dirs exist only complete (temp + rename) and are never
modified; :meth:`RootView.merged` mounts read-only and always unmounts.
Files the builder reads itself (the Containerfile, ``.dockerignore``, an
image's ``/etc/passwd``) are read by :func:`read_regular_file`: a regular
file only (never a FIFO, a device or a final symlink, which could block,
never end or lead out), and only up to a size.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import posixpath
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Iterator
from typing import IO

from common.errors import NotFound
from nodeagent.images.extract import OPAQUE_MARKER, WHITEOUT_PREFIX, clean_member_name
from nodeagent.images.layerbuild import LayerBlob  # noqa: F401 (documented type of layers)
from nodeagent.images.store import ImageStore
from nodeagent.runtime import _libc

OPAQUE_XATTR = "trusted.overlay.opaque"
MAX_SYMLINKS = 40


class RootView:
    """Layers (bottom first, as (diff_id, blob digest)) seen as one tree."""

    def __init__(self, store: ImageStore, cache_root: str, layers: list[tuple[str, str]]) -> None:
        self.store = store
        self.cache_root = cache_root
        self.layers = layers

    def lower_dirs(self) -> list[str]:
        """Overlay lowerdir list, topmost first; never empty (scratch = an empty dir)."""
        dirs: list[str] = []
        for index, (diff_id, digest) in enumerate(self.layers):
            blob = self.store.layout.blob_path(digest)
            if not self.store.snapshots.exists(diff_id) and not os.path.exists(blob):
                raise NotFound(f"layer {digest} is missing from the image store (image removed?)")
            if index > 0:
                wh = whiteout_dir(os.path.join(self.cache_root, "whiteouts"), diff_id, blob)
                if wh is not None:
                    dirs.append(wh)
            dirs.append(self.store.snapshots.ensure(diff_id, blob))
        if not dirs:
            empty = os.path.join(self.cache_root, "empty")
            os.makedirs(empty, exist_ok=True)
            return [empty]
        return list(reversed(dirs))

    def merged(self) -> contextlib.AbstractContextManager[str]:
        """A read-only merged view of the layers (an overlay mount when more than one)."""
        return merged_lowers(self.lower_dirs(), self.cache_root)


@contextlib.contextmanager
def merged_lowers(lowers: list[str], tmp_dir: str) -> Iterator[str]:
    """Overlay lower dirs (topmost first) as one read-only tree: the dir
    itself when there is one, else an overlay mounted on a new dir under
    ``tmp_dir``, unmounted and removed on the way out."""
    if len(lowers) == 1:
        yield lowers[0]
        return
    os.makedirs(tmp_dir, mode=0o700, exist_ok=True)
    mnt = tempfile.mkdtemp(prefix="mnt-", dir=tmp_dir)
    try:
        _libc.mount("overlay", mnt, "overlay", _libc.MS_RDONLY, f"lowerdir={':'.join(lowers)}")
        try:
            yield mnt
        finally:
            _libc.umount2(mnt, _libc.MNT_DETACH)
    finally:
        os.rmdir(mnt)


def whiteout_dir(root: str, diff_id: str, blob_path: str) -> str | None:
    """The overlay-whiteout tree of one layer, made once; None if it has no whiteouts."""
    final = os.path.join(root, diff_id.removeprefix("sha256:"))
    none_marker = final + ".none"
    if os.path.isdir(final):
        return final
    if os.path.exists(none_marker):
        return None
    os.makedirs(root, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-", dir=root)
    try:
        found = _write_whiteouts(blob_path, tmp)
        if not found:
            shutil.rmtree(tmp)
            with open(none_marker, "w"):
                pass
            return None
        os.chmod(tmp, 0o755)
        try:
            os.rename(tmp, final)
        except OSError:  # made concurrently by another build: theirs is as good
            shutil.rmtree(tmp)
        return final
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _write_whiteouts(blob_path: str, dest: str) -> bool:
    found = False
    with open(blob_path, "rb") as raw:
        compressed = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        stream: IO[bytes] = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw  # type: ignore[assignment]
        with tarfile.open(fileobj=stream, mode="r|") as tf:
            for member in tf:
                rel = clean_member_name(member.name)
                parent, base = posixpath.split(rel)
                if not base.startswith(WHITEOUT_PREFIX):
                    continue
                found = True
                pdir = os.path.join(dest, parent)
                os.makedirs(pdir, mode=0o755, exist_ok=True)
                if base == OPAQUE_MARKER:
                    os.setxattr(pdir, OPAQUE_XATTR, b"y")
                else:
                    victim = os.path.join(pdir, base[len(WHITEOUT_PREFIX):])
                    if not os.path.lexists(victim):
                        os.mknod(victim, stat.S_IFCHR | 0o000, os.makedev(0, 0))
    return found


def resolve_in_root(root: str, path: str, confine: bool) -> str | None:
    """Host path of ``path`` inside ``root``, following symlinks as if ``root`` were "/".

    ``confine`` (a build context): a symlink or ``..`` leading outside ``root``
    returns None. Otherwise (an image rootfs) ".." stops at the root, as in a
    chroot. The final component is followed too; missing components are kept.
    """
    parts = [p for p in path.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    hops = 0
    while parts:
        comp = parts.pop(0)
        if comp == "..":
            if not resolved:
                if confine:
                    return None
                continue
            resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, comp)
        try:
            st = os.lstat(candidate)
        except (FileNotFoundError, NotADirectoryError):
            resolved.append(comp)
            continue
        if stat.S_ISLNK(st.st_mode):
            hops += 1
            if hops > MAX_SYMLINKS:
                return None
            target = os.readlink(candidate)
            if target.startswith("/"):
                if confine:
                    return None
                resolved = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        resolved.append(comp)
    return os.path.join(root, *resolved)


def lstat_in_root(root: str, path: str) -> os.stat_result | None:
    """lstat of ``path`` in an image rootfs, parents resolved in-root; None if missing."""
    parent, base = posixpath.split(path.strip("/"))
    host_parent = resolve_in_root(root, parent, confine=False) if parent else root
    if host_parent is None:
        return None
    try:
        return os.lstat(os.path.join(host_parent, base)) if base else os.lstat(host_parent)
    except (FileNotFoundError, NotADirectoryError):
        return None


def read_regular_file(path: str, limit: int) -> bytes:
    """The bytes of the regular file at ``path`` (already resolved: a final symlink is
    refused), at most ``limit`` of them.

    Raises ``FileNotFoundError`` when there is none, ``ValueError`` saying what
    is there instead (a symlink, a FIFO, a device, a directory, too much).
    The type is checked before opening (opening some devices acts) and again
    on the open fd, which cannot block (``O_NONBLOCK``) or follow a link."""
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"not a regular file ({_kind(st.st_mode)})")
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"not a regular file ({_kind(st.st_mode)})")
        chunks: list[bytes] = []
        total = 0
        while chunk := os.read(fd, 1 << 16):
            total += len(chunk)
            if total > limit:
                raise ValueError(f"larger than {limit >> 10} KiB")
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _kind(mode: int) -> str:
    kinds = ((stat.S_ISLNK, "a symlink"), (stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
             (stat.S_ISSOCK, "a socket"))
    return next((name for test, name in kinds if test(mode)), "a special file")
