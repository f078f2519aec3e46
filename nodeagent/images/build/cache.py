"""The build cache: step key -> what the step produced.

Stored as ``<state-dir>/build-cache/steps/<key hex>.json`` (written to a temp
file and renamed). A key chains the previous step's key with this step's
instruction (after substitution) and its inputs digest, so a change at step N
misses the cache for N and everything after it, and nothing before.

An entry is only trusted if its layer blob is still in the store (an image
removal may have collected it); otherwise it is a miss.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from typing import Any


def step_key(parent: str, instruction: str, inputs: str = "") -> str:
    h = hashlib.sha256()
    for part in (parent, instruction, inputs):
        h.update(part.encode())
        h.update(b"\0")
    return "sha256:" + h.hexdigest()


@dataclass
class CacheEntry:
    config: dict[str, Any]  # the image "config" object after the step
    history: dict[str, Any]  # the step's history entry (its "created" makes ids reproducible)
    layer: dict[str, Any] | None  # OCI layer descriptor, None for metadata-only steps
    diff_id: str | None

    def to_json(self) -> dict[str, Any]:
        return {"config": self.config, "history": self.history, "layer": self.layer,
                "diff_id": self.diff_id}


class BuildCache:
    def __init__(self, root: str) -> None:
        self.dir = os.path.join(root, "steps")
        os.makedirs(self.dir, exist_ok=True)

    def _path(self, key: str) -> str:
        return os.path.join(self.dir, key.removeprefix("sha256:") + ".json")

    def get(self, key: str, blob_exists: Any) -> CacheEntry | None:
        try:
            with open(self._path(key), encoding="utf-8") as f:
                data = json.load(f)
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        layer = data.get("layer")
        if layer is not None and not blob_exists(layer["digest"]):
            return None
        return CacheEntry(data["config"], data["history"], layer, data.get("diff_id"))

    def put(self, key: str, entry: CacheEntry) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".tmp-")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(entry.to_json(), f, sort_keys=True)
        os.rename(tmp, self._path(key))
