"""ImageStore: tagged images in an OCI layout plus their unpacked snapshots.

Layout under the state dir ``root``::

    root/images/          OCI image layout (oci-layout, index.json, blobs/sha256/)
    root/snapshots/<hex>  one read-only unpacked tree per layer diff_id

Invariants:
- index.json holds one entry per tag; its ``org.opencontainers.image.ref.name``
  annotation is the full normalised reference "name:tag". Several tags may
  point at the same manifest.
- Every blob named by an index entry exists (blobs are written before the
  index entry; garbage is collected after it is dropped), and a blob or
  snapshot is deleted only when no remaining manifest uses it. Imports and
  removals hold the index lock for their whole read-modify-write, so a
  concurrent removal cannot collect a layer an import is about to reference.
- An image's id is its config digest; images are read-only once stored.
"""

from __future__ import annotations

import builtins
import datetime
import os
from dataclasses import dataclass
from typing import Any

from nodeagent.errors import InvalidArgument, NotFound
from nodeagent.images.extract import DEFAULT_MAX_BYTES
from nodeagent.images.layerbuild import build_layer
from nodeagent.images.layout import OciLayout
from nodeagent.images.model import (
    CONFIG_MEDIA_TYPE,
    LAYER_MEDIA_TYPE,
    MANIFEST_MEDIA_TYPE,
    REF_NAME_ANNOTATION,
    UNCOMPRESSED_SIZE_ANNOTATION,
    Image,
    ImageConfig,
    build_config,
    build_manifest,
    descriptor,
)
from nodeagent.images.reference import is_hex_id, normalize
from nodeagent.images.snapshots import Snapshotter


@dataclass(frozen=True)
class _Entry:
    """One index.json row: a tag and the manifest it points at."""

    ref: str
    manifest_digest: str
    manifest_size: int


class ImageStore:
    def __init__(self, root: str, max_layer_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.root = root
        self.layout = OciLayout(os.path.join(root, "images"))
        self.snapshots = Snapshotter(os.path.join(root, "snapshots"), max_layer_bytes)
        self.layout.ensure()
        os.makedirs(self.snapshots.root, exist_ok=True)

    # -- import ------------------------------------------------------------

    def import_rootfs(self, source: str, ref: str, config: ImageConfig | None = None) -> Image:
        """Make a one-layer image of a directory or tarball and tag it ``ref``."""
        full_ref = normalize(ref)
        config = config or ImageConfig()
        with self.layout.locked():
            layer = build_layer(source, self.layout)
            created = _now()
            cfg = build_config(
                config, [layer.diff_id], created, f"orch image import {os.path.basename(source)}"
            )
            cfg_digest, cfg_size = self.layout.put_json(cfg)
            layer_desc = descriptor(
                LAYER_MEDIA_TYPE,
                layer.digest,
                layer.size,
                **{UNCOMPRESSED_SIZE_ANNOTATION: str(layer.uncompressed_size)},
            )
            manifest = build_manifest(
                descriptor(CONFIG_MEDIA_TYPE, cfg_digest, cfg_size), [layer_desc]
            )
            man_digest, man_size = self.layout.put_json(manifest)
            replaced = self._tag_locked(full_ref, man_digest, man_size)
            if replaced is not None:
                self._collect_locked(replaced)
        return self.get(full_ref)

    # -- lookup ------------------------------------------------------------

    def get(self, ref: str) -> Image:
        """By "name", "name:tag", "sha256:<id>" or a unique id prefix (>= 4 hex digits)."""
        entries = self._entries()
        ref_error: InvalidArgument | None = None
        if not ref.startswith("sha256:"):
            try:
                full = normalize(ref)
            except InvalidArgument as e:
                ref_error = e
            else:
                for entry in entries:
                    if entry.ref == full:
                        return self._load(entry.manifest_digest, entries)
        if is_hex_id(ref):
            return self._get_by_id(ref, entries)
        if ref.startswith("sha256:"):
            raise InvalidArgument(
                f"invalid image id {ref!r}: expected sha256: and 4 to 64 lowercase hex digits"
            )
        if ref_error is not None:
            raise ref_error
        shown = normalize(ref)
        raise NotFound(f'image "{shown}" not found (orch image import DIR {shown})')

    def list(self) -> builtins.list[Image]:
        entries = self._entries()
        seen: dict[str, Image] = {}
        for entry in entries:
            if entry.manifest_digest not in seen:
                seen[entry.manifest_digest] = self._load(entry.manifest_digest, entries)
        return sorted(
            seen.values(), key=lambda im: (im.repo_tags[0] if im.repo_tags else "", im.id)
        )

    def lower_dirs(self, image: Image) -> builtins.list[str]:
        """Unpack each layer once (keyed by diff_id); topmost layer first."""
        dirs = []
        for diff_id, digest in zip(image.diff_ids, image.layer_digests, strict=True):
            blob = self.layout.blob_path(digest)
            if not self.snapshots.exists(diff_id) and not os.path.exists(blob):
                raise NotFound(f"layer {digest} of image {image.id} is missing (image removed?)")
            dirs.append(self.snapshots.ensure(diff_id, blob))
        return list(reversed(dirs))

    # -- removal -----------------------------------------------------------

    def remove(self, ref: str) -> builtins.list[str]:
        """Untag ``ref`` (or every tag of an id); delete what no image uses any more.

        Returns Docker-style lines: "untagged: name:tag", "deleted: sha256:...".
        """
        image = self.get(ref)
        tags = [normalize(ref)] if _is_tag_of(ref, image) else image.repo_tags
        removed: builtins.list[str] = []
        with self.layout.locked():
            rows = self.layout.read_index()
            keep = [r for r in rows if _ref_of(r) not in tags]
            self.layout.write_index(keep)
            removed += [f"untagged: {t}" for t in tags]
            removed += self._collect_locked(image.manifest_digest)
        return removed

    # -- internals ---------------------------------------------------------

    def _entries(self) -> builtins.list[_Entry]:
        return [
            _Entry(_ref_of(r), r["digest"], int(r.get("size", 0)))
            for r in self.layout.read_index()
            if r.get("mediaType", MANIFEST_MEDIA_TYPE) == MANIFEST_MEDIA_TYPE and _ref_of(r)
        ]

    def _load(self, manifest_digest: str, entries: builtins.list[_Entry]) -> Image:
        manifest = self.layout.read_json(manifest_digest)
        cfg = self.layout.read_json(manifest["config"]["digest"])
        layers = manifest.get("layers") or []
        unpacked = sum(
            int((layer.get("annotations") or {}).get(UNCOMPRESSED_SIZE_ANNOTATION, 0))
            for layer in layers
        )
        return Image(
            id=manifest["config"]["digest"],
            repo_tags=sorted(e.ref for e in entries if e.manifest_digest == manifest_digest),
            manifest_digest=manifest_digest,
            created=str(cfg.get("created", "")),
            size=sum(int(layer["size"]) for layer in layers),
            config=ImageConfig.from_oci(cfg.get("config")),
            diff_ids=list(cfg["rootfs"]["diff_ids"]),
            layer_digests=[layer["digest"] for layer in layers],
            unpacked_size=unpacked,
        )

    def _get_by_id(self, ref: str, entries: builtins.list[_Entry]) -> Image:
        prefix = ref.removeprefix("sha256:")
        matches: dict[str, Image] = {}
        for entry in entries:
            if entry.manifest_digest in matches:
                continue
            image = self._load(entry.manifest_digest, entries)
            if image.id.removeprefix("sha256:").startswith(prefix):
                matches[entry.manifest_digest] = image
        ids = {im.id for im in matches.values()}
        if not matches:
            raise NotFound(f'image "{ref}" not found (orch image list shows the ids)')
        if len(ids) > 1:
            raise InvalidArgument(
                f"image id prefix {ref!r} is ambiguous: matches {len(ids)} images; give more digits"
            )
        return next(iter(matches.values()))

    def _tag_locked(self, full_ref: str, man_digest: str, man_size: int) -> str | None:
        """Point ``full_ref`` at the manifest; returns the manifest it used to name."""
        rows = self.layout.read_index()
        previous = next((r["digest"] for r in rows if _ref_of(r) == full_ref), None)
        rows = [r for r in rows if _ref_of(r) != full_ref]
        rows.append(
            descriptor(MANIFEST_MEDIA_TYPE, man_digest, man_size, **{REF_NAME_ANNOTATION: full_ref})
        )
        rows.sort(key=_ref_of)
        self.layout.write_index(rows)
        return previous if previous != man_digest else None

    def _collect_locked(self, manifest_digest: str) -> builtins.list[str]:
        """Delete the manifest, its config and unshared layers/snapshots if untagged."""
        rows = self.layout.read_index()
        if any(r["digest"] == manifest_digest for r in rows):
            return []
        in_use_layers: set[str] = set()
        in_use_diff_ids: set[str] = set()
        for digest in {r["digest"] for r in rows}:
            other = self.layout.read_json(digest)
            in_use_layers.update(layer["digest"] for layer in other.get("layers") or [])
            in_use_diff_ids.update(
                self.layout.read_json(other["config"]["digest"])["rootfs"]["diff_ids"]
            )
        manifest = self.layout.read_json(manifest_digest)
        config_digest = manifest["config"]["digest"]
        diff_ids = self.layout.read_json(config_digest)["rootfs"]["diff_ids"]
        removed = [f"deleted: {config_digest}"]
        for layer in manifest.get("layers") or []:
            if layer["digest"] not in in_use_layers and self.layout.delete_blob(layer["digest"]):
                removed.append(f"deleted layer: {layer['digest']}")
        for diff_id in diff_ids:
            if diff_id not in in_use_diff_ids:
                self.snapshots.remove(diff_id)
        self.layout.delete_blob(config_digest)
        self.layout.delete_blob(manifest_digest)
        return removed


def _is_tag_of(ref: str, image: Image) -> bool:
    """Did ``ref`` name one of the image's tags (rather than its id)?"""
    if ref.startswith("sha256:"):
        return False
    try:
        return normalize(ref) in image.repo_tags
    except InvalidArgument:
        return False


def _ref_of(row: dict[str, Any]) -> str:
    return str((row.get("annotations") or {}).get(REF_NAME_ANNOTATION, ""))


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
