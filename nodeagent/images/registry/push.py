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
import urllib.parse
from typing import Any

from nodeagent.images.registry.auth import Credentials
from nodeagent.images.registry.client import (
    DigestMismatch,
    ProgressFn,
    ProgressReader,
    RegistryClient,
    RegistryError,
)
from nodeagent.images.registry.remote import parse_remote
from nodeagent.images.registry.sources import BlobSources
from nodeagent.images.store import ImageStore


def push(
    store: ImageStore,
    local_ref: str,
    remote: str,
    auth: Credentials | None = None,
    progress: ProgressFn | None = None,
    workers: int = 4,
) -> str:
    """Push ``local_ref`` to ``remote`` ("host[:port]/name[:tag]"); returns the manifest digest."""
    target = parse_remote(remote)
    image = store.get(local_ref)
    manifest = store.manifest(image)
    raw = store.manifest_bytes(image)
    client = RegistryClient(target, auth)
    sources = BlobSources(store.root)
    blobs = [*(manifest.get("layers") or []), manifest["config"]]
    try:
        with concurrent.futures.ThreadPoolExecutor(max(1, workers)) as pool:
            futures = [pool.submit(_push_blob, client, store, sources, d, progress) for d in blobs[:-1]]
            for fut in futures:
                fut.result()
        _push_blob(client, store, sources, blobs[-1], progress)
        digest = _put_manifest(client, raw, manifest.get("mediaType", ""), target.reference)
    finally:
        client.close()
    sources.record(target.registry, target.repository, [d["digest"] for d in blobs])
    return digest


def _push_blob(
    client: RegistryClient,
    store: ImageStore,
    sources: BlobSources,
    desc: dict[str, Any],
    progress: ProgressFn | None,
) -> None:
    digest, size = desc["digest"], int(desc["size"])
    try:
        if client.has_blob(digest):
            _report(progress, "exists", digest, size, size)
            return
        location = None
        for repo in sources.repositories(client.remote.registry, digest, client.remote.repository):
            location = _try_mount(client, digest, repo)
            if location is None:
                _report(progress, "mount", digest, size, size)
                return
            break
        if location is None:
            resp = client.request("POST", client.path("blobs/uploads/"), ok=(202,))
            resp.read()
            location = _location(resp.getheader("Location"), client)
        _upload(client, store, location, digest, size, progress)
    finally:
        client.close()  # worker threads end with the pool; do not leak their sockets


def _try_mount(client: RegistryClient, digest: str, repo: str) -> str | None:
    """Cross-repository mount: None when mounted (201), else the upload location (202)."""
    query = urllib.parse.urlencode({"mount": digest, "from": repo})
    resp = client.request("POST", client.path(f"blobs/uploads/?{query}"), ok=(201, 202))
    resp.read()
    if resp.status == 201:
        return None
    return _location(resp.getheader("Location"), client)


def _upload(
    client: RegistryClient,
    store: ImageStore,
    location: str,
    digest: str,
    size: int,
    progress: ProgressFn | None,
) -> None:
    sep = "&" if "?" in location else "?"
    url = f"{location}{sep}{urllib.parse.urlencode({'digest': digest})}"
    path = store.layout.blob_path(digest)
    if os.path.getsize(path) != size:
        raise DigestMismatch(f"local blob {path} is {os.path.getsize(path)} bytes, manifest says {size}")
    with open(path, "rb") as f:
        body = ProgressReader(f, digest, size, progress)
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        client.request("PUT", url, headers, body, ok=(201, 204)).read()
    _report(progress, "done", digest, size, size)


def _put_manifest(client: RegistryClient, raw: bytes, media_type: str, reference: str) -> str:
    headers = {"Content-Type": media_type, "Content-Length": str(len(raw))}
    resp = client.request("PUT", client.path(f"manifests/{reference}"), headers, raw, ok=(201, 202))
    resp.read()
    local = "sha256:" + hashlib.sha256(raw).hexdigest()
    remote = resp.getheader("Docker-Content-Digest")
    if remote and remote != local:
        raise DigestMismatch(f"{client.remote}: registry stored the manifest as {remote}, we sent {local}")
    return local


def _location(header: str | None, client: RegistryClient) -> str:
    if not header:
        raise RegistryError(f"{client.remote}: upload response has no Location header")
    return urllib.parse.urljoin(client.base + "/", header)


def _report(progress: ProgressFn | None, kind: str, digest: str, done: int, total: int) -> None:
    if progress is not None:
        progress(kind, digest, done, total)
