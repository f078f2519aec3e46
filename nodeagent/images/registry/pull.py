"""Pull an image from a registry into the store.

Steps: manifest (OCI manifest/index, Docker schema2 manifest/list accepted;
from an index the linux/amd64 entry is taken) -> config and layer blobs
(concurrently, ``workers`` threads; blobs already in the layout are skipped)
-> manifest blob -> index entry via :meth:`ImageStore.add_manifest`.

Invariants:
- Every blob is streamed to a temp file in the layout's blob dir, hashed on
  the way and renamed into place only if its sha256 and size match the
  descriptor; a failed or interrupted download leaves no blob behind.
- A manifest pulled by digest must hash to that digest; one pulled by tag is
  checked against the registry's ``Docker-Content-Digest`` when sent.
- OCI manifests are stored byte for byte (local digest == remote digest).
  Docker schema2 manifests are converted to OCI media types (config and
  layers keep their bytes and digests, so the image id is the registry's;
  only the manifest digest differs from the registry's).

Progress events: ``progress(kind, digest, done_bytes, total_bytes)`` with kind
"exists" (skipped), "download" (repeated while streaming) or "done".
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import http.client
import json
from typing import Any

from common.errors import InvalidArgument
from nodeagent.images.layout import INDEX_MEDIA_TYPE
from nodeagent.images.model import (
    CONFIG_MEDIA_TYPE,
    LAYER_MEDIA_TYPE,
    LAYER_MEDIA_TYPES_UNCOMPRESSED,
    MANIFEST_MEDIA_TYPE,
    Image,
    build_manifest,
)
from nodeagent.images.reference import normalize
from nodeagent.images.registry.auth import Credentials
from nodeagent.images.registry.client import (
    CHUNK,
    DigestMismatch,
    ProgressFn,
    RegistryClient,
    RegistryError,
)
from nodeagent.images.registry.remote import RemoteRef, parse_remote
from nodeagent.images.registry.sources import BlobSources
from nodeagent.images.store import ImageStore

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
ACCEPT = ", ".join((MANIFEST_MEDIA_TYPE, INDEX_MEDIA_TYPE, DOCKER_MANIFEST, DOCKER_LIST))
MAX_MANIFEST_BYTES = 4 << 20
PLATFORM = ("linux", "amd64")
_TO_OCI = {
    DOCKER_CONFIG: CONFIG_MEDIA_TYPE,
    DOCKER_LAYER: LAYER_MEDIA_TYPE,
    CONFIG_MEDIA_TYPE: CONFIG_MEDIA_TYPE,
    LAYER_MEDIA_TYPE: LAYER_MEDIA_TYPE,
    **{t: t for t in LAYER_MEDIA_TYPES_UNCOMPRESSED},
}


def pull(
    store: ImageStore,
    remote: str,
    auth: Credentials | None = None,
    progress: ProgressFn | None = None,
    workers: int = 4,
    tag_as: str | None = None,
) -> Image:
    """Pull ``remote`` into ``store``; tag it ``tag_as`` or the remote reference.

    A remote given by digest only, with no ``tag_as``, is stored untagged.
    """
    source = parse_remote(remote)
    local_ref = tag_as or default_local_ref(source)
    if local_ref is not None:
        normalize(local_ref)  # fail before downloading anything
    client = RegistryClient(source, auth)
    try:
        raw, media_type = _fetch_manifest(client, source.reference, source.digest)
        if media_type in (INDEX_MEDIA_TYPE, DOCKER_LIST):
            digest = _pick_platform(json.loads(raw), str(source))
            raw, media_type = _fetch_manifest(client, digest, digest)
        manifest = _parse_manifest(raw, media_type, str(source))
        blobs = [manifest["config"], *manifest["layers"]]
        with concurrent.futures.ThreadPoolExecutor(max(1, workers)) as pool:
            futures = [pool.submit(_fetch_blob, client, store, d, progress) for d in blobs]
            for fut in futures:
                fut.result()
    finally:
        client.close()
    _check_config(store, manifest, str(source))
    if media_type == MANIFEST_MEDIA_TYPE:
        man_digest = store.layout.put_bytes(raw)
    else:  # Docker schema2: same config and layers, OCI media types
        man_digest, _ = store.layout.put_json(
            build_manifest(_oci_desc(manifest["config"]), [_oci_desc(d) for d in manifest["layers"]])
        )
    BlobSources(store.root).record(source.registry, source.repository, [d["digest"] for d in blobs])
    return store.add_manifest(local_ref, man_digest)


def resolve_digest(remote: str, auth: Credentials | None = None) -> str:
    """The manifest digest a tag points at now (what a deploy pins)."""
    source = parse_remote(remote)
    if source.digest:
        return source.digest
    client = RegistryClient(source, auth)
    try:
        raw, _media = _fetch_manifest(client, source.tag, "")
    finally:
        client.close()
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def default_local_ref(source: RemoteRef) -> str | None:
    """The local tag of a pull without ``tag_as``: the full remote name, else repository:tag.

    The local grammar (:mod:`nodeagent.images.reference`) has no registry
    port yet, so "127.0.0.1:5000/app:v1" is tagged "app:v1" locally until it has.
    """
    if not source.tag:
        return None
    full = f"{source.registry}/{source.repository}:{source.tag}"
    try:
        return normalize(full)
    except InvalidArgument:
        return f"{source.repository}:{source.tag}"


# -- manifest --------------------------------------------------------------


def _fetch_manifest(client: RegistryClient, reference: str, expected: str) -> tuple[bytes, str]:
    resp = client.request("GET", client.path(f"manifests/{reference}"), {"Accept": ACCEPT})
    raw = resp.read(MAX_MANIFEST_BYTES + 1)
    if len(raw) > MAX_MANIFEST_BYTES:
        resp.close()
        raise RegistryError(f"{client.remote}: manifest larger than {MAX_MANIFEST_BYTES} bytes")
    actual = "sha256:" + hashlib.sha256(raw).hexdigest()
    announced = resp.getheader("Docker-Content-Digest") or ""
    for want in (expected, announced):
        if want and want.startswith("sha256:") and want != actual:
            raise DigestMismatch(f"{client.remote}: manifest {reference} hashes to {actual}, expected {want}")
    content_type = (resp.getheader("Content-Type") or "").split(";")[0].strip()
    try:
        media_type = str(json.loads(raw).get("mediaType") or content_type)
    except (ValueError, AttributeError):
        raise RegistryError(f"{client.remote}: manifest {reference} is not JSON")
    return raw, media_type


def _pick_platform(index: dict[str, Any], where: str) -> str:
    for entry in index.get("manifests") or []:
        plat = entry.get("platform") or {}
        if (plat.get("os"), plat.get("architecture")) == PLATFORM:
            return str(entry["digest"])
    found = sorted(
        f"{(e.get('platform') or {}).get('os')}/{(e.get('platform') or {}).get('architecture')}"
        for e in index.get("manifests") or []
    )
    raise InvalidArgument(f"{where}: no {'/'.join(PLATFORM)} image in the index (has {found})")


def _parse_manifest(raw: bytes, media_type: str, where: str) -> dict[str, Any]:
    if media_type not in (MANIFEST_MEDIA_TYPE, DOCKER_MANIFEST):
        raise InvalidArgument(f"{where}: unsupported manifest media type {media_type!r}")
    manifest = json.loads(raw)
    if manifest.get("schemaVersion") != 2 or "config" not in manifest:
        raise InvalidArgument(f"{where}: manifest is not schemaVersion 2 with a config")
    for desc in [manifest["config"], *(manifest.get("layers") or [])]:
        if desc.get("mediaType") not in _TO_OCI:
            raise InvalidArgument(
                f"{where}: blob {desc.get('digest')} has unsupported media type {desc.get('mediaType')!r}"
            )
    manifest.setdefault("layers", [])
    return dict(manifest)


def _oci_desc(desc: dict[str, Any]) -> dict[str, Any]:
    return {**desc, "mediaType": _TO_OCI[desc["mediaType"]]}


def _check_config(store: ImageStore, manifest: dict[str, Any], where: str) -> None:
    cfg = store.layout.read_json(manifest["config"]["digest"])
    diff_ids = (cfg.get("rootfs") or {}).get("diff_ids") or []
    if len(diff_ids) != len(manifest["layers"]):
        raise InvalidArgument(
            f"{where}: config lists {len(diff_ids)} diff_ids for {len(manifest['layers'])} layers"
        )


# -- blobs -----------------------------------------------------------------


def _fetch_blob(
    client: RegistryClient, store: ImageStore, desc: dict[str, Any], progress: ProgressFn | None
) -> None:
    digest, size = str(desc["digest"]), int(desc["size"])
    try:
        store.layout.blob_path(digest)  # rejects non-sha256 digests before any I/O
        if store.layout.has_blob(digest):
            _report(progress, "exists", digest, size, size)
            return
        resp = client.get_following(client.path(f"blobs/{digest}"), {})
        writer = store.layout.blob_writer()
        try:
            done = 0
            while done <= size:
                chunk = resp.read(min(CHUNK, size + 1 - done))
                if not chunk:
                    break
                writer.write(chunk)
                done += len(chunk)
                _report(progress, "download", digest, done, size)
            if done != size:
                raise DigestMismatch(
                    f"{client.remote}: blob {digest} ended after {done} of {size} bytes"
                    if done < size
                    else f"{client.remote}: blob {digest} is longer than its {size} bytes"
                )
            try:
                writer.commit(expected=digest)
            except Exception as e:
                raise DigestMismatch(f"{client.remote}: blob {digest}: {e}") from e
        except BaseException:
            writer.abort()
            resp.close()
            raise
        _report(progress, "done", digest, size, size)
    except (OSError, http.client.HTTPException) as e:  # socket errors, IncompleteRead
        raise RegistryError(f"{client.remote}: downloading blob {digest}: {e}") from e
    finally:
        client.close()


def _report(progress: ProgressFn | None, kind: str, digest: str, done: int, total: int) -> None:
    if progress is not None:
        progress(kind, digest, done, total)
