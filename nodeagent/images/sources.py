"""Which registry repositories are known to hold which blobs (for cross-repo mounts).

A small JSON file in the store's state dir, ``registry-sources.json``:
``{"<registry>": {"<digest>": ["repo", ...]}}``. It is only a hint: a wrong
entry costs one refused mount (the registry answers 202 and we upload).
Writes hold an fcntl lock and replace the file atomically.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from typing import Any

MAX_REPOS_PER_BLOB = 8


class BlobSources:
    def __init__(self, state_dir: str) -> None:
        self.path = os.path.join(state_dir, "registry-sources.json")

    def repositories(self, registry: str, digest: str, exclude: str) -> list[str]:
        repos = self._read().get(registry, {}).get(digest, [])
        return [r for r in repos if r != exclude]

    def record(self, registry: str, repository: str, digests: list[str]) -> None:
        with self._locked():
            data = self._read()
            blobs = data.setdefault(registry, {})
            for digest in digests:
                repos = [r for r in blobs.get(digest, []) if r != repository]
                blobs[digest] = [repository, *repos][:MAX_REPOS_PER_BLOB]
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(self.path), prefix=".tmp-sources-")
            with os.fdopen(fd, "w") as f:
                json.dump(data, f)
            os.rename(tmp, self.path)

    def _read(self) -> dict[str, Any]:
        try:
            with open(self.path) as f:
                data = json.load(f)
        except (FileNotFoundError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)
