"""Append-only JSON-lines files: the two writes they are made of.

Used where a small file changes often (container records, IP leases):
appending a line, rather than replacing the file with a temp file and a
rename, frees no inode or block per change (on a disk mounted with online
discard every freed block is a synchronous TRIM). Readers take the lines
before a torn last one; writers compact with :func:`replace` now and then.
"""

from __future__ import annotations

import errno
import os

_APPEND = os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC


def append(path: str, line: bytes, create: bool = False) -> int:
    """Append ``line`` (one whole line, newline included) in one write and
    return the file's new size. A short write (e.g. a full disk) is cut off
    again and raised, so no torn line is left behind. ``create`` makes the
    file, and its directory, if they are missing."""
    flags = _APPEND | (os.O_CREAT if create else 0)
    try:
        fd = os.open(path, flags, 0o644)
    except FileNotFoundError:
        if not create:
            raise
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, flags, 0o644)
    try:
        written = os.write(fd, line)
        end = os.lseek(fd, 0, os.SEEK_CUR)
        if written != len(line):
            os.ftruncate(fd, end - written)
            raise OSError(errno.ENOSPC, f"{path}: short write ({written} of {len(line)} bytes)")
    finally:
        os.close(fd)
    return end


def replace(path: str, data: bytes) -> None:
    """Replace the file with ``data`` whole (temp file + rename): compaction.
    No fsync: the rename keeps the file whole; the callers' files describe
    processes and addresses that a power loss ends anyway."""
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
