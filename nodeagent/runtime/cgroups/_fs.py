"""Small cgroupfs file helpers: every error names the file (and the value).

Invariants:
- Files are opened without ``O_CREAT``: a cgroupfs never lets us create a
  control file, and a missing file means the controller is not there. A fake
  cgroupfs in a temp dir therefore has to provide the files, like the kernel.
- Every file is closed before the helper returns (``with`` blocks only).
- Write failures raise :class:`SetupError` (step ``"cgroup write"``) carrying the
  path, the value and the errno; a missing file on read raises :class:`NotFound`.
"""

from __future__ import annotations

import errno
import os

from common.errors import NotFound, SetupError


def write(path: str, value: str) -> None:
    """Write ``value`` to an existing control file in one ``write(2)``."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    except OSError as e:
        raise SetupError("cgroup write", f"{path} <- {value!r}", e.strerror or str(e), e.errno or 0)
    try:
        os.write(fd, value.encode())
    except OSError as e:
        raise SetupError("cgroup write", f"{path} <- {value!r}", e.strerror or str(e), e.errno or 0)
    finally:
        os.close(fd)


def read(path: str) -> str:
    """The file's content, stripped. NotFound if it does not exist."""
    try:
        with open(path) as f:
            return f.read().strip()
    except FileNotFoundError:
        raise NotFound(f"cgroup file {path} does not exist")
    except OSError as e:
        raise SetupError("cgroup read", path, e.strerror or str(e), e.errno or 0)


def read_optional(path: str) -> str | None:
    """Like :func:`read`, but None when the file is missing (controller absent)."""
    try:
        return read(path)
    except NotFound:
        return None


def read_int(path: str, default: int = 0) -> int:
    """An integer file; ``default`` when the file is missing."""
    text = read_optional(path)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise SetupError("cgroup read", path, f"not an integer: {text!r}")


def read_max(path: str) -> int | None:
    """A ``"max"``-or-integer file (pids.max, memory.max): None means unlimited/missing."""
    text = read_optional(path)
    if text is None or text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        raise SetupError("cgroup read", path, f"not an integer or 'max': {text!r}")


def read_keyed(path: str) -> dict[str, int]:
    """A flat keyed file (``"key value"`` per line: cpu.stat, memory.events).

    Missing file -> empty dict; lines that are not ``key int`` are skipped so a
    newer kernel adding fields never breaks parsing.
    """
    text = read_optional(path)
    result: dict[str, int] = {}
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                result[parts[0]] = int(parts[1])
            except ValueError:
                continue
    return result


def read_pids(path: str) -> list[int]:
    """The pids listed in a ``cgroup.procs`` file; empty when missing."""
    text = read_optional(path)
    return [int(tok) for tok in (text or "").split()]


def mkdir(path: str) -> bool:
    """Create ``path`` and its parents; an existing directory is fine.
    True if this call created ``path``: a new group holds the kernel's
    defaults (no limits), so nothing needs writing for an unlimited one.
    A parent that another process prunes meanwhile (:func:`prune`) is made
    again."""
    for attempt in range(3):
        try:
            try:
                os.mkdir(path)
                return True
            except FileNotFoundError:
                os.makedirs(path)
                return True
            except FileExistsError:
                if not os.path.isdir(path):
                    raise
                return False
        except FileNotFoundError:
            if attempt == 2:
                raise SetupError("cgroup mkdir", path, "a parent group kept vanishing", errno.ENOENT)
        except OSError as e:
            raise SetupError("cgroup mkdir", path, e.strerror or str(e), e.errno or 0)
    raise AssertionError("unreachable")


def prune(root: str, name: str) -> None:
    """rmdir the ancestors of group ``name`` under ``root`` that are empty now,
    deepest first, stopping at the first that is not: the parents orch made
    (``orch``, ``orch/build``) go with their last child instead of staying
    behind. A racing create makes them again (:func:`mkdir`)."""
    parent = os.path.dirname(name)
    while parent and rmdir(os.path.join(root, parent)):
        parent = os.path.dirname(parent)


def rmdir(path: str) -> bool:
    """Remove one cgroup directory. True if removed or already absent.

    False on EBUSY/ENOTEMPTY (processes or child groups remain): callers decide
    whether to retry. Other errors raise.
    """
    try:
        os.rmdir(path)
    except FileNotFoundError:
        return True
    except OSError as e:
        if e.errno in (errno.EBUSY, errno.ENOTEMPTY):
            return False
        raise SetupError("cgroup rmdir", path, e.strerror or str(e), e.errno or 0)
    return True
