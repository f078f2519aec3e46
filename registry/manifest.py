"""Image manifests from a registry: fetched, verified, resolved to one platform.

Accepted: OCI image manifests and indexes, Docker schema 2 manifests and
manifest lists. From an index (or list) the linux/amd64 entry is taken.

Invariants:
- A manifest fetched by digest hashes to that digest, and one fetched by tag
  hashes to the registry's ``Docker-Content-Digest`` when it sends one;
  otherwise :class:`~registry.errors.DigestMismatch`.
- Every blob a returned manifest names has a media type orch stores
  (:data:`registry.mediatypes.TO_OCI`) and a sha256 digest.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from common.errors import InvalidArgument
from registry import mediatypes as mt
from registry.client import RegistryClient
from registry.credentials import Credentials
from registry.errors import DigestMismatch, RegistryError
from registry.reference import is_digest, parse_remote
from registry.transport import Settings

if TYPE_CHECKING:
    import httpx

MAX_MANIFEST_BYTES = 4 << 20
PLATFORM = ("linux", "amd64")


@dataclass(frozen=True)
class ImageManifest:
    raw: bytes  # as the registry sent it (its sha256 is ``digest``)
    media_type: str  # OCI or Docker image manifest
    digest: str
    config: dict[str, Any]  # descriptor
    layers: list[dict[str, Any]]  # descriptors, bottom first

    @property
    def blobs(self) -> list[dict[str, Any]]:
        return [self.config, *self.layers]


def fetch(client: RegistryClient, locator: str) -> ImageManifest:
    """The image manifest ``locator`` (tag or digest) names, for linux/amd64."""
    raw, media_type, digest = _fetch(client, locator)
    if media_type in mt.INDEXES:
        chosen = _pick_platform(_json(raw, client, locator), f"{client}:{locator}")
        raw, media_type, digest = _fetch(client, chosen)
    return _image_manifest(raw, media_type, digest, f"{client}@{digest}")


def resolve_digest(remote: str, creds: Credentials | None = None, settings: Settings | None = None,
                   transport: httpx.BaseTransport | None = None) -> str:
    """The manifest digest ``remote``'s tag points at now (what a deploy pins).

    For a multi-platform image this is the index's digest, as Docker pins it.
    """
    ref = parse_remote(remote)
    if ref.digest:
        return ref.digest
    with RegistryClient(ref.registry, ref.repository, creds, settings, transport) as client:
        _raw, _media_type, digest = _fetch(client, ref.locator)
    return digest


def _fetch(client: RegistryClient, locator: str) -> tuple[bytes, str, str]:
    raw, content_type, announced = client.get_manifest(locator, mt.ACCEPT, MAX_MANIFEST_BYTES)
    actual = "sha256:" + hashlib.sha256(raw).hexdigest()
    for want in (locator if is_digest(locator) else "", announced):
        if want.startswith("sha256:") and want != actual:
            raise DigestMismatch(f"{client}: manifest {locator} hashes to {actual}, expected {want}")
    media_type = str(_json(raw, client, locator).get("mediaType") or content_type)
    return raw, media_type, actual


def _json(raw: bytes, client: RegistryClient, locator: str) -> dict[str, Any]:
    try:
        doc = json.loads(raw)
    except ValueError:
        raise RegistryError(f"{client}: manifest {locator} is not JSON")
    if not isinstance(doc, dict):
        raise RegistryError(f"{client}: manifest {locator} is not a JSON object")
    return doc


def _pick_platform(index: dict[str, Any], where: str) -> str:
    entries = [e for e in index.get("manifests") or [] if isinstance(e, dict)]
    for entry in entries:
        plat = entry.get("platform") or {}
        if (plat.get("os"), plat.get("architecture")) == PLATFORM and is_digest(str(entry.get("digest"))):
            return str(entry["digest"])
    found = sorted(
        f"{(e.get('platform') or {}).get('os')}/{(e.get('platform') or {}).get('architecture')}"
        for e in entries
    )
    raise InvalidArgument(f"{where}: no {'/'.join(PLATFORM)} image in the index (has {found})")


def _image_manifest(raw: bytes, media_type: str, digest: str, where: str) -> ImageManifest:
    if media_type not in mt.MANIFESTS:
        raise InvalidArgument(f"{where}: unsupported manifest media type {media_type!r}")
    doc = json.loads(raw)
    config = doc.get("config")
    layers = doc.get("layers") or []
    if doc.get("schemaVersion") != 2 or not isinstance(config, dict) or not isinstance(layers, list):
        raise InvalidArgument(f"{where}: manifest is not schemaVersion 2 with a config")
    for desc in [config, *layers]:
        if not isinstance(desc, dict) or desc.get("mediaType") not in mt.TO_OCI:
            kind = desc.get("mediaType") if isinstance(desc, dict) else desc
            raise InvalidArgument(f"{where}: blob has unsupported media type {kind!r}")
        if not is_digest(str(desc.get("digest"))) or not isinstance(desc.get("size"), int) \
                or desc["size"] < 0:
            raise InvalidArgument(f"{where}: blob descriptor {desc!r} lacks a sha256 digest and a size")
    return ImageManifest(raw, media_type, digest, dict(config), [dict(d) for d in layers])
