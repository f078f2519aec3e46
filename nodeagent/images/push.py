"""Push a stored image to a registry.

Steps: every layer blob (concurrently, ``workers`` threads) -> config blob ->
manifest. A blob the repository already has (HEAD 200) is skipped; one the
registry holds in another repository we know of (:mod:`.sources`) is mounted;
anything else is uploaded monolithically (POST uploads/, then PUT with
``?digest=`` and the file streamed in chunks). The manifest goes last, so the
tag never names a manifest whose blobs are missing; it is sent byte for byte
as stored, so the remote digest equals the local one (checked against the
``Docker-Content-Digest`` the registry answers).

Progress events: ``progress(kind, digest, done_bytes, total_bytes)`` with kind
"exists" (skipped), "mount", "upload" (repeated while streaming) or "done".
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import os
from typing import TYPE_CHECKING, Any

from nodeagent.images.sources import BlobSources
from nodeagent.images.store import ImageStore
from registry.client import FileBody, ProgressFn, RegistryClient
from registry.credentials import Credentials
from registry.errors import DigestMismatch
from registry.reference import parse_remote
from registry.transport import Settings

if TYPE_CHECKING:
    import httpx


def push(
    store: ImageStore,
    local_ref: str,
    remote: str,
    creds: Credentials | None = None,
    progress: ProgressFn | None = None,
    workers: int = 4,
    settings: Settings | None = None,
    transport: httpx.BaseTransport | None = None,
) -> str:
    """Push ``local_ref`` to ``remote`` ("host[:port]/name[:tag]"); returns the manifest digest."""
    target = parse_remote(remote)
    image = store.get(local_ref)
    manifest = store.manifest(image)
    raw = store.manifest_bytes(image)
    sources = BlobSources(store.root)
    layers, config = list(manifest.get("layers") or []), manifest["config"]
    workers = max(1, workers)
    with RegistryClient(target.registry, target.repository, creds, settings, transport,
                        connections=workers + 1) as client:
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            for fut in [pool.submit(_push_blob, client, store, sources, d, progress) for d in layers]:
                fut.result()
        _push_blob(client, store, sources, config, progress)
        local = "sha256:" + hashlib.sha256(raw).hexdigest()
        remote_digest = client.put_manifest(target.locator, raw, manifest.get("mediaType", ""))
    if remote_digest and remote_digest != local:
        raise DigestMismatch(f"{client}: the registry stored the manifest as {remote_digest}, "
                             f"we sent {local}")
    sources.record(target.registry, target.repository, [d["digest"] for d in [*layers, config]])
    return local


def _push_blob(client: RegistryClient, store: ImageStore, sources: BlobSources,
               desc: dict[str, Any], progress: ProgressFn | None) -> None:
    digest, size = str(desc["digest"]), int(desc["size"])
    if client.has_blob(digest):
        _report(progress, "exists", digest, size, size)
        return
    location = None
    for repo in sources.repositories(client.registry, digest, client.repository)[:1]:
        location = client.mount(digest, repo)
        if location is None:
            _report(progress, "mount", digest, size, size)
            return
    path = store.layout.blob_path(digest)
    if os.path.getsize(path) != size:
        raise DigestMismatch(f"local blob {path} is {os.path.getsize(path)} bytes, the manifest says {size}")
    client.upload(location or client.start_upload(), digest, FileBody(path, size, digest, progress))
    _report(progress, "done", digest, size, size)


def _report(progress: ProgressFn | None, kind: str, digest: str, done: int, total: int) -> None:
    if progress is not None:
        progress(kind, digest, done, total)
