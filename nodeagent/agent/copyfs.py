"""A container's files, read and written from the host: `orch cp`.

The container's root is a directory fd, never a path: a running container's
is ``/proc/<pid>/root`` (its mount namespace's view, so its volumes and tmpfs
mounts are seen); a stopped one's is an overlay of its writable layer and
its image's layers, mounted for the call and detached at once (the fd keeps
it alive, and nothing stays mounted on the host when it is closed).

Invariants:

- Every path a user names is resolved *inside* that root (``openat2`` with
  ``RESOLVE_IN_ROOT``): ``..`` stops at the container's ``/``, and a
  symlink ``/etc/x -> /etc/shadow`` leads to the container's shadow file,
  never the host's. Magic links (``/proc/self/root``) are refused.
- Below a resolved path every step is one name relative to a directory fd,
  with ``O_NOFOLLOW``: a walk never follows a symlink, and an extraction
  never writes through one (``dir -> /`` followed by ``dir/x`` is refused).
- A tar stream (both ways) has one top entry: the copied file or directory
  under its base name, or ``.`` for "the contents of" (``SRC/.``). Where it
  lands follows Docker's `docker cp` rules, in :func:`place`, shared with
  the CLI, which applies them on the host side.

Errors are ``common.errors`` kinds with one-line messages naming the
container path; :func:`place` raises ``ValueError`` (the CLI turns it into
its own error).
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import stat
import tarfile
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class Reader(Protocol):
    """What :func:`extract` reads a tar stream from."""

    def read(self, n: int = -1, /) -> bytes: ...

__all__ = ["container_root", "extract", "lookup", "place", "renamed", "split_top", "tar_of", "tar_stream",
           "top_entry"]

CHUNK = 256 << 10
_SYS_OPENAT2 = 437  # the same number on every architecture (asm-generic)
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_IN_ROOT = 0x10
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# Kernel filesystems a walk does not descend into (a copy of / in a running
# container would otherwise read /proc and /sys): proc, sysfs, cgroup,
# cgroup2, devpts, mqueue, debugfs, securityfs, tracefs.
_PSEUDO_FS = frozenset({0x9FA0, 0x62656572, 0x27E0EB, 0x63677270, 0x1CD1, 0x19800202, 0x64626720,
                        0x73636673, 0x74726163})


# -- the destination rule ------------------------------------------------------------------


def place(src_is_dir: bool, contents: bool, dest: str, dest_kind: str) -> tuple[str, str | None]:
    """Where a copy lands, by Docker's rules: the directory to unpack into,
    and what the tar's top entry becomes there (None: its own name; "": it
    is that directory itself, i.e. only its contents are copied).

    ``dest_kind`` is "dir", "file" or "missing" (symlinks followed);
    ``contents``: the source was ``DIR/.``. ``ValueError`` says why not."""
    trailing = dest.endswith("/") or dest.endswith("/.")
    if dest_kind == "dir":
        return dest, ("" if contents else None)
    if dest_kind == "file":
        if src_is_dir:
            raise ValueError(f"cannot copy a directory onto the file {dest}")
        if trailing:
            raise ValueError(f"{dest}: not a directory")
    elif trailing and not src_is_dir:
        raise ValueError(f"destination directory {dest} does not exist")
    parent, name = posixpath.split(dest.rstrip("/") or "/")
    return parent or ".", name


def split_top(name: str) -> list[str]:
    """A tar member's name as path components (``.`` and empty ones
    dropped); ``ValueError`` for an absolute name or a ``..``."""
    if name.startswith("/"):
        raise ValueError(f"archive member {name!r}: absolute paths are refused")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ValueError(f"archive member {name!r}: '..' is refused")
    return parts


def top_entry(first: tarfile.TarInfo) -> tuple[list[str], bool, bool]:
    """From an archive's first member: its top entry's components (none for
    ``.``), whether it is ``.`` (the contents of a directory), and whether
    it is a directory."""
    contents = first.name in (".", "./") or first.name.startswith("./")
    parts = split_top(first.name)
    return ([] if contents else parts[:1]), contents, contents or first.isdir() or len(parts) > 1


def renamed(parts: list[str], top: list[str], new_top: str | None, shown: str) -> list[str]:
    """A member's components once its top entry is renamed as :func:`place`
    says ([] for the top entry that only stands for the directory unpacked
    into); ``ValueError`` for one outside the top entry."""
    if parts[:len(top)] != top:
        raise ValueError(f"archive member {shown!r} is outside its top entry {'/'.join(top)!r}: "
                         "an archive to copy holds one file or directory")
    if new_top is None:
        return parts
    return ([new_top] if new_top else []) + parts[len(top):]


# -- the container's root ----------------------------------------------------------------


@contextlib.contextmanager
def container_root(rec: dict[str, Any], state_dir: str, write: bool) -> Iterator[int]:
    """An ``O_PATH`` fd of the container's ``/`` (see the module's doc);
    ``write``: one the caller may write through (a stopped container's
    writable layer is then the overlay's upper dir)."""
    from common.errors import FailedPrecondition

    name = rec.get("name") or rec["id"][:12]
    if rec.get("state") in ("running", "paused") and rec.get("pid"):
        fd = _running_root(int(rec["pid"]), int(rec.get("pid_start_time") or 0))
        if fd is None:
            raise FailedPrecondition(f"container {name} stopped during the copy: try again")
    else:
        fd = _stopped_root(rec, state_dir, write, name)
    try:
        yield fd
    finally:
        os.close(fd)


def _running_root(pid: int, start_time: int) -> int | None:
    """``/proc/<pid>/root`` of the container's PID 1, None once it has gone.
    Read below a pinned ``/proc/<pid>`` whose start time is the one the
    record holds, so a pid used again by another process is never entered."""
    try:
        proc = os.open(f"/proc/{pid}", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if start_time:
            with open(os.open("stat", os.O_RDONLY | os.O_CLOEXEC, dir_fd=proc), "rb") as f:
                fields = f.read().rsplit(b")", 1)[-1].split()
            if len(fields) < 20 or int(fields[19]) != start_time:  # field 22, after pid and comm
                return None
        return os.open("root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=proc)
    except OSError:  # ESRCH: it exited meanwhile
        return None
    finally:
        os.close(proc)


def _stopped_root(rec: dict[str, Any], state_dir: str, write: bool, name: str) -> int:
    from common.errors import FailedPrecondition
    from nodeagent.runtime import _libc, bundle
    from nodeagent.runtime.spec import ContainerSpec

    spec = ContainerSpec.from_dict(rec["spec"])
    lowers = list(spec.rootfs.lower_dirs)
    upper, work = bundle.writable_dirs(spec)
    if spec.rootfs.readonly:
        if write:
            raise FailedPrecondition(f"container {name} has a read-only root filesystem")
        upper = ""
    elif not os.path.isdir(upper):
        if spec.rootfs.size_bytes:  # its own filesystem is mounted only while it runs
            raise FailedPrecondition(f"the writable layer of container {name} is not mounted while "
                                     "it is stopped: start it to copy files")
        if not write:
            upper = ""  # never started: the image's files only
        else:
            os.makedirs(upper, mode=0o755, exist_ok=True)
            os.makedirs(work, mode=0o700, exist_ok=True)
    if write:
        # A volatile layer leaves work/work/incompat/volatile behind, which no
        # later mount accepts; the container's own start clears it the same way.
        bundle.remove_tree(os.path.join(work, "work"))
        options = f"lowerdir={':'.join(lowers)},upperdir={upper},workdir={work}"
        flags = 0
    else:
        # Read-only, with the upper dir as one more lower layer: its whiteouts
        # and opaque dirs work as they do in the container, and nothing is written.
        stack = [upper, *lowers] if upper else lowers
        if len(stack) == 1:
            return os.open(stack[0], os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        options, flags = f"lowerdir={':'.join(stack)}", _libc.MS_RDONLY
    import tempfile

    tmp_root = os.path.join(state_dir, "tmp")
    os.makedirs(tmp_root, mode=0o700, exist_ok=True)
    mnt = tempfile.mkdtemp(prefix="cp-", dir=tmp_root)
    try:
        try:
            _libc.mount("overlay", mnt, "overlay", flags, options)
        except OSError as err:
            raise FailedPrecondition(f"cannot mount the filesystem of container {name}: "
                                     f"{os.strerror(err.errno or 0)}") from None
        try:
            return os.open(mnt, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        finally:
            _libc.umount2(mnt, _libc.MNT_DETACH)  # lives on through the fd only
    finally:
        os.rmdir(mnt)


# -- resolution inside the root ---------------------------------------------------------


class _OpenHow:
    """``struct open_how`` (made on first use: ctypes is not loaded before)."""

    cls: Any = None

    @classmethod
    def make(cls, flags: int, resolve: int) -> Any:
        import ctypes

        if cls.cls is None:
            class OpenHow(ctypes.Structure):
                _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                            ("resolve", ctypes.c_uint64)]
            cls.cls = OpenHow
        return cls.cls(flags, 0, resolve)


def openat2_in_root(root: int, path: str, flags: int) -> int:
    """``openat2(root, path, flags, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)``;
    an ``OSError`` naming ``path`` where it fails."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    how = _OpenHow.make(flags | os.O_CLOEXEC, _RESOLVE_IN_ROOT | _RESOLVE_NO_MAGICLINKS)
    rel = path.lstrip("/") or "."
    for _ in range(32):  # EAGAIN: a rename raced the lookup; the kernel asks to retry
        fd = libc.syscall(ctypes.c_long(_SYS_OPENAT2), ctypes.c_int(root), ctypes.c_char_p(os.fsencode(rel)),
                          ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how)))
        if fd >= 0:
            return int(fd)
        err = ctypes.get_errno()
        if err != errno.EAGAIN:
            raise OSError(err, os.strerror(err), "/" + path.lstrip("/"))
    raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN), path)


def lookup(root: int, path: str, follow: bool) -> tuple[int, os.stat_result] | None:
    """An ``O_PATH`` fd of ``path`` in the container and its stat; None if
    there is nothing there. ``follow``: a final symlink is followed (inside
    the root); otherwise the fd is the symlink itself."""
    flags = os.O_PATH | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = openat2_in_root(root, path, flags)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        return None
    return fd, os.fstat(fd)


def _reopen(fd: int, flags: int) -> int:
    """A readable fd of the file an ``O_PATH`` fd holds (no new lookup)."""
    return os.open(f"/proc/self/fd/{fd}", flags | os.O_CLOEXEC)


def _kind(st: os.stat_result | None) -> str:
    if st is None:
        return "missing"
    return "dir" if stat.S_ISDIR(st.st_mode) else "file"


# -- reading: a tar stream ----------------------------------------------------------------


def tar_stream(root: int, path: str) -> Iterator[bytes]:
    """The tar of ``path`` in the container, in chunks of about ``CHUNK``:
    its top entry named after the path's base name (``.`` for ``/``). A
    final symlink is copied as a symlink unless the path ends in ``/``."""
    from common.errors import InvalidArgument, NotFound

    follow = path.endswith("/") or path.endswith("/.")
    try:
        found = lookup(root, path, follow)
    except OSError as err:
        raise InvalidArgument(f"{path}: {err.strerror}") from None
    if found is None:
        if follow and (bare := lookup(root, _bare(path), True)) is not None:
            os.close(bare[0])
            raise InvalidArgument(f"{path}: not a directory")
        raise NotFound(f"no such file or directory in the container: {path}")
    fd, st = found
    try:
        if follow and not stat.S_ISDIR(st.st_mode):
            raise InvalidArgument(f"{path}: not a directory")
        top = posixpath.basename(posixpath.normpath("/" + path.lstrip("/"))) or "."
        yield from tar_of(fd, top)
    finally:
        os.close(fd)


def _bare(path: str) -> str:
    """``path`` without its trailing ``/`` and ``/.`` (never empty)."""
    while path.endswith("/") or path.endswith("/."):
        path = path[:-1] if path.endswith("/") else path[:-2]
    return path or "/"


def tar_of(fd: int, top: str, owner: tuple[int, int] | None = None) -> Iterator[bytes]:
    """The tar of what the ``O_PATH`` fd ``fd`` holds (a directory with
    everything below it), its top entry named ``top``, in chunks of about
    ``CHUNK``. ``owner``: the uid and gid every entry gets (None: its own)."""
    writer = _TarWriter(owner)
    yield from _chunks(writer.entries(fd, os.fstat(fd), top))


def _chunks(pieces: Iterable[bytes]) -> Iterator[bytes]:
    buf: list[bytes] = []
    size = 0
    for piece in pieces:
        buf.append(piece)
        size += len(piece)
        if size >= CHUNK:
            yield b"".join(buf)
            buf, size = [], 0
    buf.append(b"\0" * (2 * tarfile.BLOCKSIZE))  # the end-of-archive blocks
    yield b"".join(buf)


class _TarWriter:
    """Tar headers and data of a tree, walked one name at a time below
    directory fds, never following a symlink; entries sorted by name."""

    def __init__(self, owner: tuple[int, int] | None) -> None:
        self.owner = owner
        self.links: dict[tuple[int, int], str] = {}  # (dev, inode) -> first name, for hard links

    def entries(self, fd: int, st: os.stat_result, top: str) -> Iterator[bytes]:
        """The entry the ``O_PATH`` fd ``fd`` holds and, for a directory,
        everything below it."""
        if stat.S_ISLNK(st.st_mode):
            yield self._header(top, st, os.readlink("", dir_fd=fd))
        elif stat.S_ISDIR(st.st_mode):
            yield self._header(top, st, "")
            dfd = _reopen(fd, os.O_RDONLY | os.O_DIRECTORY)
            try:
                yield from self._walk(dfd, top, st.st_dev)
            finally:
                os.close(dfd)
        elif stat.S_ISREG(st.st_mode):
            data = _reopen(fd, os.O_RDONLY | os.O_NONBLOCK)
            try:
                yield from self._file(top, data)
            finally:
                os.close(data)
        else:
            yield self._header(top, st, "")

    def _walk(self, dfd: int, rel: str, dev: int) -> Iterator[bytes]:
        for name in sorted(os.listdir(dfd)):
            child = f"{rel}/{name}"
            try:
                st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
                if stat.S_ISLNK(st.st_mode):
                    yield self._header(child, st, os.readlink(name, dir_fd=dfd))
                elif stat.S_ISDIR(st.st_mode):
                    sub = os.open(name, _DIR, dir_fd=dfd)
                    try:
                        yield self._header(child, st, "")
                        if st.st_dev == dev or not _pseudo_fs(sub):
                            yield from self._walk(sub, child, st.st_dev)
                    finally:
                        os.close(sub)
                elif stat.S_ISREG(st.st_mode):
                    data = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                                   dir_fd=dfd)
                    try:
                        yield from self._file(child, data)
                    finally:
                        os.close(data)
                else:
                    yield self._header(child, st, "")
            except FileNotFoundError:
                continue  # removed while the walk ran

    def _file(self, name: str, fd: int) -> Iterator[bytes]:
        """A regular file's header and exactly the size it declares (a file
        that shrank meanwhile is padded with zeros, one that grew is cut)."""
        st = os.fstat(fd)
        hardlink = st.st_nlink > 1 and (st.st_dev, st.st_ino) in self.links
        yield self._header(name, st, "")
        if hardlink:
            return
        left = st.st_size
        while left > 0:
            data = os.read(fd, min(CHUNK, left))
            if not data:
                break
            left -= len(data)
            yield data
        yield b"\0" * left
        tail = st.st_size % tarfile.BLOCKSIZE
        if tail:
            yield b"\0" * (tarfile.BLOCKSIZE - tail)

    def _header(self, name: str, st: os.stat_result, linkname: str) -> bytes:
        """The tar header of one entry (b"" for a socket, which tar cannot hold)."""
        info = tarfile.TarInfo(name)
        info.mode = stat.S_IMODE(st.st_mode)
        info.uid, info.gid = self.owner or (st.st_uid, st.st_gid)
        info.mtime = int(st.st_mtime)
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            info.type = tarfile.DIRTYPE
        elif stat.S_ISLNK(mode):
            info.type, info.linkname = tarfile.SYMTYPE, linkname
        elif stat.S_ISREG(mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in self.links:
                info.type, info.linkname = tarfile.LNKTYPE, self.links[key]
            else:
                if st.st_nlink > 1:
                    self.links[key] = name
                info.type, info.size = tarfile.REGTYPE, st.st_size
        elif stat.S_ISFIFO(mode):
            info.type = tarfile.FIFOTYPE
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        else:
            return b""
        return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _pseudo_fs(fd: int) -> bool:
    """Whether the directory ``fd`` is the root of a kernel filesystem
    (``_PSEUDO_FS``), by ``fstatfs``'s f_type."""
    import ctypes

    buf = ctypes.create_string_buffer(256)  # struct statfs is 120 bytes on 64-bit
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.fstatfs(ctypes.c_int(fd), buf) < 0:
        return False
    return int.from_bytes(buf.raw[:8], "little") in _PSEUDO_FS


# -- writing: extracting a tar stream -------------------------------------------------


def extract(root: int, dest: str, stream: Reader) -> None:
    """Unpack the tar ``stream`` at ``dest`` in the container, placed by
    :func:`place`; owners, modes and mtimes as the tar has them."""
    from common.errors import InvalidArgument, NotFound

    try:
        tar = tarfile.open(fileobj=stream, mode="r|")  # type: ignore[call-overload]  # noqa: SIM115
    except tarfile.TarError as err:
        raise InvalidArgument(f"the data to copy is not a tar archive: {err}") from None
    with tar:
        try:
            first = tar.next()
        except tarfile.TarError as err:
            raise InvalidArgument(f"the data to copy is not a tar archive: {err}") from None
        if first is None:
            return  # an empty archive: nothing to copy
        top, contents, src_is_dir = _checked(top_entry, first)
        try:
            found = lookup(root, dest, follow=True)
        except OSError as err:
            raise InvalidArgument(f"{dest}: {err.strerror}") from None
        if found is not None:
            os.close(found[0])
        try:
            unpack_dir, new_top = place(src_is_dir, contents, dest, _kind(found and found[1]))
        except ValueError as err:
            raise InvalidArgument(str(err)) from None
        try:
            dir_fd = openat2_in_root(root, unpack_dir, os.O_RDONLY | os.O_DIRECTORY)
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(f"no such directory in the container: {unpack_dir}") from None
        except OSError as err:
            raise InvalidArgument(f"{unpack_dir}: {err.strerror}") from None
        with _Extractor(dir_fd) as out:
            member: tarfile.TarInfo | None = first
            while member is not None:
                name = _checked(renamed, _checked(split_top, member.name), top, new_top, member.name)
                if name:
                    link = (_checked(renamed, _checked(split_top, member.linkname), top, new_top,
                                     member.linkname) if member.islnk() else [])
                    try:
                        out.add(tar, member, name, link)
                    except OSError as err:
                        where = posixpath.join(unpack_dir, *name)
                        raise InvalidArgument(f"cannot write {where} in the container: "
                                              f"{err.strerror or err}") from None
                    except tarfile.TarError as err:
                        raise InvalidArgument(f"the data to copy is a broken tar archive: {err}") from None
                try:
                    member = tar.next()
                except tarfile.TarError as err:
                    raise InvalidArgument(f"the data to copy is a broken tar archive: {err}") from None


def _checked(check: Callable[..., T], *args: Any) -> T:
    """``check(*args)``, its ValueError an InvalidArgument."""
    from common.errors import InvalidArgument

    try:
        return check(*args)
    except ValueError as err:
        raise InvalidArgument(str(err)) from None


class _Extractor:
    """Members created under one directory fd, one name at a time; directory
    fds cached by path; directory modes and mtimes set last, deepest first."""

    def __init__(self, base: int) -> None:
        self.base = base
        self.dirs: dict[tuple[str, ...], int] = {(): base}
        self.dir_attrs: list[tuple[tuple[str, ...], tarfile.TarInfo]] = []

    def __enter__(self) -> _Extractor:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if exc[0] is None:
                for path, info in sorted(self.dir_attrs, key=lambda item: -len(item[0])):
                    parent, name = self._dir(path[:-1]), path[-1]
                    os.chmod(name, info.mode & 0o7777, dir_fd=parent, follow_symlinks=True)
                    os.utime(name, (info.mtime, info.mtime), dir_fd=parent, follow_symlinks=False)
        finally:
            for fd in self.dirs.values():
                os.close(fd)

    def _dir(self, path: tuple[str, ...]) -> int:
        """The fd of the directory ``path`` below the base, which must be a
        real directory (not a symlink) all the way."""
        from common.errors import InvalidArgument

        fd = self.dirs.get(path)
        if fd is not None:
            return fd
        parent = self._dir(path[:-1])
        try:
            fd = os.open(path[-1], _DIR, dir_fd=parent)
        except FileNotFoundError:
            os.mkdir(path[-1], 0o755, dir_fd=parent)
            fd = os.open(path[-1], _DIR, dir_fd=parent)
        except (NotADirectoryError, OSError) as err:
            if err.errno in (errno.ENOTDIR, errno.ELOOP):
                raise InvalidArgument(f"cannot copy into {'/'.join(path)}: it is not a directory "
                                      "(symlinks are not followed while copying)") from None
            raise
        self.dirs[path] = fd
        return fd

    def add(self, tar: tarfile.TarFile, info: tarfile.TarInfo, path: list[str], link: list[str]) -> None:
        from common.errors import InvalidArgument

        parent, name = self._dir(tuple(path[:-1])), path[-1]
        shown = "/".join(path)
        try:
            existing = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            existing = None
        if info.isdir():
            if existing is not None and not stat.S_ISDIR(existing.st_mode):
                raise InvalidArgument(f"cannot overwrite the non-directory {shown} with a directory")
            if existing is None:
                os.mkdir(name, 0o700, dir_fd=parent)
            os.chown(name, info.uid, info.gid, dir_fd=parent, follow_symlinks=False)
            self.dir_attrs.append((tuple(path), info))
            return
        if existing is not None:
            if stat.S_ISDIR(existing.st_mode):
                raise InvalidArgument(f"cannot overwrite the directory {shown} with a non-directory")
            os.unlink(name, dir_fd=parent)
        if info.isreg():
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                         dir_fd=parent)
            with os.fdopen(fd, "wb") as f:
                src = tar.extractfile(info)
                assert src is not None
                while block := src.read(CHUNK):
                    f.write(block)
                os.fchown(fd, info.uid, info.gid)
                os.fchmod(fd, info.mode & 0o7777)
        elif info.issym():
            os.symlink(info.linkname, name, dir_fd=parent)
        elif info.islnk():
            if not link:
                raise InvalidArgument(f"archive member {info.name!r}: a hard link to the top directory")
            os.link(link[-1], name, src_dir_fd=self._dir(tuple(link[:-1])), dst_dir_fd=parent,
                    follow_symlinks=False)
            return
        elif info.isfifo():
            os.mkfifo(name, info.mode & 0o7777, dir_fd=parent)
        else:
            raise InvalidArgument(f"archive member {info.name!r}: device nodes are not copied")
        os.chown(name, info.uid, info.gid, dir_fd=parent, follow_symlinks=False)
        if info.isfifo():
            os.chmod(name, info.mode & 0o7777, dir_fd=parent, follow_symlinks=True)
        os.utime(name, (info.mtime, info.mtime), dir_fd=parent, follow_symlinks=False)
