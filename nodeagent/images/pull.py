"""Pull an image from a registry into the store, ready to run.

Steps: manifest (:func:`registry.manifest.fetch`: verified, one platform) ->
config blob -> each layer blob, unpacked into its snapshot as soon as it has
arrived (``workers`` layers at once; blobs and snapshots already present are
skipped) -> manifest blob -> index entry via :meth:`ImageStore.add_manifest`.

Invariants:
- Every blob is streamed to a temp file in the layout's blob dir, hashed on
  the way and renamed into place only if its sha256 and size match the
  descriptor; a failed or interrupted download leaves no blob behind.
- Every layer is unpacked (:mod:`nodeagent.images.extract`, which refuses
  path escapes, device nodes and oversized layers) *before* the image is
  indexed: a hostile layer fails the pull, no image is recorded, and its blob
  is deleted. A pulled image never fails later for its layers.
- The image is tagged with its full reference (``127.0.0.1:5000/team/app:1``),
  or ``NAME@DIGEST`` when pulled by digest.
- OCI manifests are stored byte for byte (local digest == remote digest).
  Docker schema 2 manifests are converted to OCI media types (config and
  layers keep their bytes and digests, so the image id is the registry's;
  only the manifest digest differs from the registry's).

Progress events: ``progress(kind, digest, done_bytes, total_bytes)`` with kind
"exists" (skipped), "download" (repeated while streaming) or "done".
"""

from __future__ import annotations

import concurrent.futures
from typing import TYPE_CHECKING, Any

from common.errors import AgentError, InvalidArgument
from nodeagent.images.model import Image, build_manifest
from nodeagent.images.sources import BlobSources
from nodeagent.images.store import ImageStore
from registry import manifest as manifests
from registry.client import ProgressFn, RegistryClient
from registry.credentials import Credentials
from registry.errors import DigestMismatch
from registry.mediatypes import OCI_MANIFEST, TO_OCI
from registry.reference import Reference, normalize, parse_remote
from registry.transport import Settings

if TYPE_CHECKING:
    import httpx

PROGRESS_STEP = 1 << 20  # a "download" event per MiB (a job sends each as a line)


def pull(
    store: ImageStore,
    remote: str,
    creds: Credentials | None = None,
    progress: ProgressFn | None = None,
    workers: int = 4,
    tag_as: str | None = None,
    settings: Settings | None = None,
    transport: httpx.BaseTransport | None = None,
) -> Image:
    """Pull ``remote`` into ``store``; tag it ``tag_as``, else its own full reference."""
    source = parse_remote(remote)
    local_ref = normalize(tag_as or local_name(source))  # fails before anything is downloaded
    workers = max(1, workers)
    with RegistryClient(source.registry, source.repository, creds, settings, transport,
                        connections=workers + 1) as client:
        image = manifests.fetch(client, source.locator)
        _fetch_blob(client, store, image.config, progress)
        diff_ids = _diff_ids(store, image)
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            futures = [pool.submit(_fetch_layer, client, store, layer, diff_id, progress)
                       for layer, diff_id in zip(image.layers, diff_ids, strict=True)]
            _first_failure(futures)
    if image.media_type == OCI_MANIFEST:
        man_digest = store.layout.put_bytes(image.raw)
    else:  # Docker schema 2: the same config and layers, OCI media types
        man_digest, _ = store.layout.put_json(
            build_manifest(_oci(image.config), [_oci(d) for d in image.layers]))
    BlobSources(store.root).record(source.registry, source.repository,
                                   [d["digest"] for d in image.blobs])
    return store.add_manifest(local_ref, man_digest)


def local_name(source: Reference) -> str:
    """What a pull without ``tag_as`` tags: the reference as given (familiar
    form), by digest alone when a digest was given (Docker's rule)."""
    return str(source.with_digest(source.digest) if source.digest else source)


# -- blobs -----------------------------------------------------------------


def _fetch_layer(client: RegistryClient, store: ImageStore, desc: dict[str, Any], diff_id: str,
                 progress: ProgressFn | None) -> None:
    """Download one layer, then unpack it: what extraction refuses fails the pull."""
    _fetch_blob(client, store, desc, progress)
    blob = store.layout.blob_path(desc["digest"])
    try:
        store.snapshots.ensure(diff_id, blob)
    except AgentError as err:  # UnsafeLayer, not a tar, not its diff_id
        _drop_unused_blob(store, desc["digest"])
        err.message = f"{client}: layer {desc['digest']} refused, no image was recorded: {err.message}"
        err.args = (err.message,)
        raise


def _fetch_blob(client: RegistryClient, store: ImageStore, desc: dict[str, Any],
                progress: ProgressFn | None) -> None:
    digest, size = str(desc["digest"]), int(desc["size"])
    if store.layout.has_blob(digest):
        _report(progress, "exists", digest, size, size)
        return
    writer = store.layout.blob_writer()
    try:
        done = reported = 0
        with client.blob(digest) as chunks:
            for chunk in chunks:
                done += len(chunk)
                if done > size:
                    raise DigestMismatch(f"{client}: blob {digest} is longer than its {size} bytes")
                writer.write(chunk)
                if done - reported >= PROGRESS_STEP or done == size:
                    _report(progress, "download", digest, done, size)
                    reported = done
        if done < size:
            raise DigestMismatch(f"{client}: blob {digest} ended after {done} of {size} bytes")
        try:
            writer.commit(expected=digest)
        except AgentError as err:
            raise DigestMismatch(f"{client}: blob {digest}: {err.message}")
    except BaseException:
        writer.abort()
        raise
    _report(progress, "done", digest, size, size)


def _diff_ids(store: ImageStore, image: manifests.ImageManifest) -> list[str]:
    where = f"{image.digest}"
    try:
        cfg = store.layout.read_json(image.config["digest"])
        diff_ids = list((cfg.get("rootfs") or {}).get("diff_ids") or [])
    except (ValueError, AttributeError):
        raise InvalidArgument(f"image config {image.config['digest']} of {where} is not a JSON object")
    if len(diff_ids) != len(image.layers):
        raise InvalidArgument(
            f"{where}: config lists {len(diff_ids)} diff_ids for {len(image.layers)} layers")
    return [str(d) for d in diff_ids]


def _first_failure(futures: list[concurrent.futures.Future[None]]) -> None:
    """Wait for every future; raise the first failure after cancelling what had not started."""
    failure: BaseException | None = None
    for fut in futures:
        try:
            fut.result()
        except BaseException as err:
            if failure is None:
                failure = err
                for other in futures:
                    other.cancel()
    if failure is not None:
        raise failure


def _drop_unused_blob(store: ImageStore, digest: str) -> None:
    """Delete a refused layer's blob unless an indexed image uses it."""
    with store.layout.locked():
        for row in store.layout.read_index():
            manifest = store.layout.read_json(row["digest"])
            if any(layer.get("digest") == digest for layer in manifest.get("layers") or []):
                return
        store.layout.delete_blob(digest)


def _oci(desc: dict[str, Any]) -> dict[str, Any]:
    return {**desc, "mediaType": TO_OCI[desc["mediaType"]]}


def _report(progress: ProgressFn | None, kind: str, digest: str, done: int, total: int) -> None:
    if progress is not None:
        progress(kind, digest, done, total)
