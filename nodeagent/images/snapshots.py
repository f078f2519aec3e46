"""Unpacked layers ("snapshots"), one directory per diff_id, shared read-only.

Invariants:
- ``<root>/<hex of diff_id>`` exists only complete: a layer is unpacked into a
  ``.tmp-<hex>-*`` directory next to it, its uncompressed stream checked
  against the diff_id, then renamed. A crash leaves only a temp directory,
  which the next unpack of that layer removes.
- Each layer is unpacked at most once: the unpack runs under a per-layer fcntl
  lock and re-checks for the finished snapshot after taking it.
- Removal renames the snapshot away first, so a reader never sees half of one.
- Snapshots are never written after creation (they are overlayfs lower dirs).

Looking a snapshot up needs only ``os``: the unpacking code (tar, gzip,
hashing) is imported when a layer is unpacked or removed, so a node agent that
only starts containers never carries it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from collections.abc import Iterator
from typing import IO

from common.errors import AgentError
from nodeagent.images.model import DEFAULT_MAX_BYTES

_GZIP_MAGIC = b"\x1f\x8b"


class _HashingReader:
    """Read-through stream hashing what was read (the uncompressed layer)."""

    def __init__(self, src: IO[bytes]) -> None:
        import hashlib

        self._src = src
        self._hash = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self._src.read(n)
        self._hash.update(data)
        return data

    def drain(self) -> str:
        while self.read(1 << 20):
            pass
        return "sha256:" + self._hash.hexdigest()


class Snapshotter:
    def __init__(self, root: str, max_layer_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.root = root
        self.max_layer_bytes = max_layer_bytes
        self.lock_dir = os.path.join(root, ".locks")
        self.unpacks = 0  # layers actually unpacked by this instance (for tests/metrics)

    def path(self, diff_id: str) -> str:
        return os.path.join(self.root, _hex(diff_id))

    def exists(self, diff_id: str) -> bool:
        return os.path.isdir(self.path(diff_id))

    def ensure(self, diff_id: str, blob_path: str) -> str:
        """Return the snapshot dir of ``diff_id``, unpacking ``blob_path`` if needed."""
        final = self.path(diff_id)
        if os.path.isdir(final):
            return final
        import shutil
        import tempfile

        with self._locked(diff_id):
            if os.path.isdir(final):
                return final
            self._remove_stale_temps(diff_id)
            tmp = tempfile.mkdtemp(prefix=f".tmp-{_hex(diff_id)}-", dir=self.root)
            try:
                os.chmod(tmp, 0o755)
                self._unpack(diff_id, blob_path, tmp)
                os.rename(tmp, final)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            self.unpacks += 1
        return final

    def remove(self, diff_id: str) -> bool:
        import shutil
        import tempfile

        final = self.path(diff_id)
        with self._locked(diff_id):
            if not os.path.isdir(final):
                return False
            doomed = tempfile.mkdtemp(prefix=f".tmp-{_hex(diff_id)}-rm-", dir=self.root)
            os.rename(final, os.path.join(doomed, "snapshot"))
            shutil.rmtree(doomed)
        # The lock file stays: unlinking it would let a waiter and a newcomer
        # lock two different files for the same layer.
        return True

    # -- steps -------------------------------------------------------------

    def _unpack(self, diff_id: str, blob_path: str, dest: str) -> None:
        import gzip

        from nodeagent.images.extract import apply_layer

        with open(blob_path, "rb") as raw:
            compressed = raw.read(2) == _GZIP_MAGIC
            raw.seek(0)
            stream: IO[bytes] = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw  # type: ignore[assignment]
            with stream:
                hashed = _HashingReader(stream)
                apply_layer(hashed, dest, max_bytes=self.max_layer_bytes,  # type: ignore[arg-type]
                            overlay_whiteouts=True)
                actual = hashed.drain()
        if actual != diff_id:
            raise AgentError(
                f"layer {blob_path} does not match its diff_id: expected {diff_id}, got {actual}"
            )

    def _remove_stale_temps(self, diff_id: str) -> None:
        import shutil

        prefix = f".tmp-{_hex(diff_id)}-"
        for name in os.listdir(self.root):
            if name.startswith(prefix):
                shutil.rmtree(os.path.join(self.root, name), ignore_errors=True)

    def _lock_path(self, diff_id: str) -> str:
        return os.path.join(self.lock_dir, _hex(diff_id) + ".lock")

    @contextlib.contextmanager
    def _locked(self, diff_id: str) -> Iterator[None]:
        os.makedirs(self.lock_dir, exist_ok=True)
        fd = os.open(self._lock_path(diff_id), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def _hex(diff_id: str) -> str:
    algo, _, hexpart = diff_id.partition(":")
    if algo != "sha256" or not _SHA256_HEX.fullmatch(hexpart):
        raise AgentError(f"unsupported diff_id {diff_id!r}")
    return hexpart
