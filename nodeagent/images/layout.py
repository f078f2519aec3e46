"""The on-disk OCI image layout: ``oci-layout``, ``index.json``, ``blobs/sha256/<hex>``.

Invariants:
- A blob's file name is the sha256 of its contents. Blobs are written to a
  temp file in the same directory, hashed while written, checked against the
  expected digest when one is given, then renamed into place: a reader never
  sees a partial blob.
- ``index.json`` is rewritten the same way (temp + rename) and only while
  holding the layout's fcntl lock (:meth:`OciLayout.locked`); read-modify-write
  sequences hold it throughout.
- Nothing here knows about image references or snapshots.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from typing import IO, Any

from common.errors import AgentError

LAYOUT_VERSION = "1.0.0"
INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
LOCK_FILE = ".orch-index.lock"


class BlobWriter:
    """A write-only file that hashes what it is given; :meth:`commit` renames it in place."""

    def __init__(self, blob_dir: str) -> None:
        import hashlib
        import tempfile

        self._dir = blob_dir
        fd, self._tmp = tempfile.mkstemp(dir=blob_dir, prefix=".tmp-")
        self._file: IO[bytes] = os.fdopen(fd, "wb")
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:  # file-like, for gzip/tarfile
        self._file.write(data)
        self._hash.update(data)
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        self._file.flush()

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()

    def commit(self, expected: str | None = None) -> str:
        """Close, verify against ``expected`` (if given) and rename to blobs/sha256/<hex>."""
        self._file.close()
        digest = self.digest
        if expected is not None and expected != digest:
            self.abort()
            raise AgentError(f"blob digest mismatch: expected {expected}, wrote {digest}")
        os.chmod(self._tmp, 0o644)
        os.rename(self._tmp, os.path.join(self._dir, digest.removeprefix("sha256:")))
        return digest

    def abort(self) -> None:
        self._file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._tmp)


class OciLayout:
    def __init__(self, path: str) -> None:
        self.path = path
        self.blob_dir = os.path.join(path, "blobs", "sha256")
        self.index_path = os.path.join(path, "index.json")

    def ensure(self) -> None:
        """Create the layout skeleton if missing; idempotent."""
        os.makedirs(self.blob_dir, exist_ok=True)
        marker = os.path.join(self.path, "oci-layout")
        if not os.path.exists(marker):
            self._write_atomic(marker, json.dumps({"imageLayoutVersion": LAYOUT_VERSION}).encode())
        if not os.path.exists(self.index_path):
            with self.locked():
                if not os.path.exists(self.index_path):
                    self.write_index([])

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive fcntl lock guarding index.json read-modify-write and blob GC."""
        fd = os.open(
            os.path.join(self.path, LOCK_FILE), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600
        )
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing drops the flock

    # -- blobs -------------------------------------------------------------

    def blob_path(self, digest: str) -> str:
        algo, _, hexpart = digest.partition(":")
        if algo != "sha256" or len(hexpart) != 64:
            raise AgentError(f"unsupported digest {digest!r}")
        return os.path.join(self.blob_dir, hexpart)

    def has_blob(self, digest: str) -> bool:
        return os.path.exists(self.blob_path(digest))

    def blob_writer(self) -> BlobWriter:
        return BlobWriter(self.blob_dir)

    def put_bytes(self, data: bytes) -> str:
        """Store ``data`` as a blob (no-op if present); returns its digest."""
        import hashlib

        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if self.has_blob(digest):
            return digest
        writer = self.blob_writer()
        writer.write(data)
        return writer.commit(expected=digest)

    def put_json(self, obj: Any) -> tuple[str, int]:
        """Canonical-ish JSON (sorted keys, compact) so equal objects share a blob."""
        data = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
        return self.put_bytes(data), len(data)

    def read_json(self, digest: str) -> Any:
        with open(self.blob_path(digest), "rb") as f:
            return json.load(f)

    def delete_blob(self, digest: str) -> bool:
        try:
            os.unlink(self.blob_path(digest))
        except FileNotFoundError:
            return False
        return True

    # -- index.json --------------------------------------------------------

    def read_index(self) -> list[dict[str, Any]]:
        try:
            with open(self.index_path, "rb") as f:
                index = json.load(f)
        except FileNotFoundError:
            return []
        return list(index.get("manifests") or [])

    def write_index(self, manifests: list[dict[str, Any]]) -> None:
        """Caller holds :meth:`locked`."""
        index = {"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": manifests}
        self._write_atomic(self.index_path, json.dumps(index, indent=2).encode())

    def _write_atomic(self, path: str, data: bytes) -> None:
        import tempfile

        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chmod(tmp, 0o644)
            os.rename(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
