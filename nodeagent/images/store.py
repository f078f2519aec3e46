"""ImageStore: tagged images in an OCI layout plus their unpacked snapshots.

Layout under the state dir ``root``::

    root/images/          OCI image layout (oci-layout, index.json, blobs/sha256/)
    root/snapshots/<hex>  one read-only unpacked tree per layer diff_id

Invariants:
- index.json holds one entry per name; its ``org.opencontainers.image.ref.name``
  annotation is the reference as :func:`registry.reference.normalize` gives
  it (Docker's familiar form): ``busybox:latest``,
  ``127.0.0.1:5000/team/app:1``, or ``NAME@sha256:...`` for an image pulled
  by digest. Several names may point at the same manifest.
- A digest reference ``NAME@DIGEST`` finds the image indexed under exactly
  that name, or else the image whose manifest digest is DIGEST and which is
  known by NAME (any of its tags): Docker's RepoDigests.
- Every blob named by an index entry exists (blobs are written before the
  index entry; garbage is collected after it is dropped), and a blob or
  snapshot is deleted only when no remaining manifest uses it. Imports and
  removals hold the index lock for their whole read-modify-write, so a
  concurrent removal cannot collect a layer an import is about to reference.
- An image's id is its config digest; images are read-only once stored.
- Index rows without a ref annotation are *untagged* images (added by
  :meth:`ImageStore.add_image` with ``ref=None``, e.g. a pull by digest or an
  intermediate build step, or left *dangling* when an import or pull moved
  their tag to a new image): they keep their blobs and snapshots alive until
  :meth:`prune`, which spares those containers still use.
"""

from __future__ import annotations

import builtins
import datetime
import os
import time
from dataclasses import dataclass
from typing import Any

from common.errors import AgentError, InvalidArgument, NotFound
from nodeagent.images.layout import OciLayout
from nodeagent.images.model import (
    CONFIG_MEDIA_TYPE,
    DEFAULT_MAX_BYTES,
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
from nodeagent.images.snapshots import Snapshotter
from registry.reference import is_hex_id, names_registry, normalize


@dataclass(frozen=True)
class _Entry:
    """One index.json row: a tag and the manifest it points at."""

    ref: str
    manifest_digest: str
    manifest_size: int


# Unreferenced blobs younger than this survive prune(): a pull or build writes
# its layer blobs before the manifest that references them is indexed.
PRUNE_GRACE_SECONDS = 600.0


class ImageStore:
    def __init__(self, root: str, max_layer_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.root = root
        self.layout = OciLayout(os.path.join(root, "images"))
        self.snapshots = Snapshotter(os.path.join(root, "snapshots"), max_layer_bytes)
        self.layout.ensure()
        os.makedirs(self.snapshots.root, exist_ok=True)
        # Every container start looks its image up. index.json is read again
        # only when it changed (it is replaced atomically: a new inode);
        # manifests and configs are content-addressed, so never change.
        self._index_key: tuple[int, int, int] | None = None
        self._index_entries: builtins.list[_Entry] = []
        self._blobs: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}

    # -- import ------------------------------------------------------------

    def import_rootfs(self, source: str, ref: str, config: ImageConfig | None = None) -> Image:
        """Make a one-layer image of a directory or tarball and tag it ``ref``."""
        from nodeagent.images.layerbuild import build_layer

        full_ref = tag_ref(ref)
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
            manifest = build_manifest(descriptor(CONFIG_MEDIA_TYPE, cfg_digest, cfg_size), [layer_desc])
            man_digest, man_size = self.layout.put_json(manifest)
            self._tag_locked(full_ref, man_digest, man_size)
        return self.get(full_ref)

    def add_image(
        self, ref: str | None, config: dict[str, Any], layers: builtins.list[dict[str, Any]]
    ) -> Image:
        """Store ``config`` and an OCI manifest over ``layers``; index it, tagged ``ref`` if given.

        ``layers`` are OCI descriptors (mediaType, digest, size[, annotations]),
        bottom first, whose blobs are already in the layout; ``config`` is the
        OCI image config whose ``rootfs.diff_ids`` match them one to one.
        """
        if ref is not None:
            tag_ref(ref)
        diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
        if len(diff_ids) != len(layers):
            raise InvalidArgument(f"image config lists {len(diff_ids)} diff_ids for {len(layers)} layers")
        for layer in layers:
            if not self.layout.has_blob(layer["digest"]):
                raise NotFound(f"layer blob {layer['digest']} is not in {self.layout.blob_dir}")
        cfg_digest, cfg_size = self.layout.put_json(config)
        manifest = build_manifest(
            descriptor(CONFIG_MEDIA_TYPE, cfg_digest, cfg_size), [dict(ly) for ly in layers]
        )
        man_digest, _ = self.layout.put_json(manifest)
        return self.add_manifest(ref, man_digest)

    def add_manifest(self, ref: str | None, manifest_digest: str) -> Image:
        """Index an OCI manifest whose blobs (itself, config, layers) are all in the layout.

        Used by pulls so the stored manifest and config keep their registry
        digests byte for byte. ``ref`` may be ``NAME@DIGEST`` (a pull by
        digest). ``ref=None`` adds an untagged entry (unless the manifest is
        already indexed).
        """
        full_ref = normalize(ref) if ref is not None else None
        with self.layout.locked():
            self._checked_manifest(manifest_digest)
            size = os.path.getsize(self.layout.blob_path(manifest_digest))
            if full_ref is not None:
                self._tag_locked(full_ref, manifest_digest, size)
            elif not any(r["digest"] == manifest_digest for r in self.layout.read_index()):
                rows = self.layout.read_index()
                rows.append(descriptor(MANIFEST_MEDIA_TYPE, manifest_digest, size))
                self.layout.write_index(rows)
            return self._load(manifest_digest, self._entries())

    def manifest(self, image: Image) -> dict[str, Any]:
        """The OCI manifest JSON of ``image`` (as stored; its digest is image.manifest_digest)."""
        try:
            return dict(self.layout.read_json(image.manifest_digest))
        except FileNotFoundError:
            raise NotFound(f"manifest {image.manifest_digest} of image {image.id} is missing")

    def manifest_bytes(self, image: Image) -> bytes:
        """The stored manifest blob exactly (what a push sends, so its digest is kept)."""
        try:
            with open(self.layout.blob_path(image.manifest_digest), "rb") as f:
                return f.read()
        except FileNotFoundError:
            raise NotFound(f"manifest {image.manifest_digest} of image {image.id} is missing")

    # -- lookup ------------------------------------------------------------

    def get(self, ref: str) -> Image:
        """By "name", "name:tag", "name@sha256:<manifest digest>", "sha256:<id>"
        or a unique id prefix (>= 4 hex digits)."""
        entries = self._entries()
        ref_error: InvalidArgument | None = None
        if not ref.startswith("sha256:"):
            try:
                full = normalize(ref)
            except InvalidArgument as e:
                ref_error = e
            else:
                found = _lookup(full, entries)
                if found is not None:
                    return self._load(found, entries)
        if is_hex_id(ref):
            return self._get_by_id(ref, entries)
        if ref.startswith("sha256:"):
            raise InvalidArgument(
                f"invalid image id {ref!r}: expected sha256: and 4 to 64 lowercase hex digits"
            )
        if ref_error is not None:
            raise ref_error
        shown = normalize(ref)
        hint = f"orch pull {shown}" if names_registry(ref) else f"orch image import DIR {shown}"
        raise NotFound(f'image "{shown}" not found ({hint})')

    def list(self) -> builtins.list[Image]:
        """Images with a name (a tag or a digest they were pulled by); untagged: see prune()."""
        entries = self._entries()
        seen: dict[str, Image] = {}
        for entry in entries:
            if entry.ref and entry.manifest_digest not in seen:
                seen[entry.manifest_digest] = self._load(entry.manifest_digest, entries)
        return sorted(seen.values(), key=lambda im: ([*im.repo_tags, *im.repo_digests, ""][0], im.id))

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

        ``NAME@DIGEST`` untags every name NAME the image has (its tags and
        the digest it was pulled by). Returns Docker-style lines:
        "untagged: name:tag", "deleted: sha256:...".
        """
        image = self.get(ref)
        tags = self._names_to_drop(ref, image)
        removed: builtins.list[str] = []
        with self.layout.locked():
            rows = self.layout.read_index()
            keep = [
                r
                for r in rows
                if _ref_of(r) not in tags and (_ref_of(r) or r["digest"] != image.manifest_digest)
            ]
            self.layout.write_index(keep)
            removed += [f"untagged: {t}" for t in tags]
            removed += self._collect_locked(image.manifest_digest)
        return removed

    def _names_to_drop(self, ref: str, image: Image) -> builtins.list[str]:
        """The names ``remove(ref)`` takes away: the tag it named; for
        ``NAME@DIGEST`` every name NAME the image has; for an id, all of them."""
        own = sorted({e.ref for e in self._entries() if e.manifest_digest == image.manifest_digest and e.ref})
        try:
            full = "" if ref.startswith("sha256:") else normalize(ref)
        except InvalidArgument:
            full = ""  # an id prefix
        if "@" in full:
            return [r for r in own if _name_of(r) == _name_of(full)]
        return [full] if full in own else own

    def prune(self, grace_seconds: float = PRUNE_GRACE_SECONDS,
              in_use: builtins.set[str] | frozenset[str] = frozenset()) -> builtins.list[str]:
        """Drop untagged images; delete blobs and snapshots no indexed image references.

        ``in_use``: image ids (config digests) that containers run from; they
        stay even when untagged, or their containers would lose their layers.

        Blobs of the dropped images go at once; other unreferenced blobs (and
        stale ``.tmp-`` files) only when older than ``grace_seconds``, since a
        pull or build in progress writes blobs before indexing its manifest.
        Returns Docker-style lines ("deleted: sha256:...").
        """
        removed: builtins.list[str] = []
        with self.layout.locked():
            rows = self.layout.read_index()
            def needed(row: dict[str, Any]) -> bool:
                if _ref_of(row):
                    return True
                return bool(in_use) and self.layout.read_json(row["digest"])["config"]["digest"] in in_use

            dropped = [r for r in rows if not needed(r)]
            keep = [r for r in rows if needed(r)]
            if dropped:
                self.layout.write_index(keep)
            doomed: set[str] = set()
            for row in dropped:
                removed.append(f"deleted: {row['digest']}")
                doomed |= self._blobs_of(row["digest"])[0]
            live_blobs: set[str] = set()
            live_diff_ids: set[str] = set()
            for digest in {r["digest"] for r in keep}:
                blobs, diff_ids = self._blobs_of(digest)
                live_blobs |= blobs
                live_diff_ids |= diff_ids
            cutoff = time.time() - grace_seconds
            for name in sorted(os.listdir(self.layout.blob_dir)):
                path = os.path.join(self.layout.blob_dir, name)
                digest = "sha256:" + name
                if name.startswith(".tmp-") or digest not in live_blobs:
                    if digest not in doomed and _mtime(path) > cutoff:
                        continue
                    if _unlink(path) and not name.startswith("."):
                        removed.append(f"deleted blob: {digest}")
            for name in sorted(os.listdir(self.snapshots.root)):
                if name.startswith("."):
                    continue
                if "sha256:" + name not in live_diff_ids and self.snapshots.remove("sha256:" + name):
                    removed.append(f"deleted snapshot: sha256:{name}")
        return removed

    def disk_usage(self) -> builtins.list[dict[str, Any]]:
        """Per indexed image: {ref, id, logical_size, shared, unique}; then a "total" row.

        Sizes are apparent bytes of the image's blobs (manifest, config, layers)
        plus the unpacked snapshots of its layers. A layer (blob + snapshot)
        used by more than one image counts as ``shared`` in each; the total
        row's ``logical_size`` sums the images, while its ``disk`` is what the
        store really holds (every file once, orphans included).
        """
        entries = self._entries()
        by_manifest: dict[str, builtins.list[str]] = {}
        for row in self.layout.read_index():
            by_manifest.setdefault(row["digest"], [])
            if _ref_of(row):
                by_manifest[row["digest"]].append(_ref_of(row))
        objects: dict[str, dict[str, int]] = {}  # manifest -> {object key: bytes}
        users: dict[str, int] = {}
        for man_digest in by_manifest:
            objs = self._objects_of(man_digest)
            objects[man_digest] = objs
            for key in objs:
                users[key] = users.get(key, 0) + 1
        rows: builtins.list[dict[str, Any]] = []
        shared_once: dict[str, int] = {}
        for man_digest, refs in by_manifest.items():
            objs = objects[man_digest]
            shared = sum(size for key, size in objs.items() if users[key] > 1)
            shared_once.update({k: v for k, v in objs.items() if users[k] > 1})
            image = self._load(man_digest, entries)
            rows.append(
                {
                    "ref": sorted(refs)[0] if refs else "<none>",
                    "refs": sorted(refs),
                    "id": image.id,
                    "logical_size": sum(objs.values()),
                    "shared": shared,
                    "unique": sum(objs.values()) - shared,
                }
            )
        rows.sort(key=lambda r: (r["ref"], r["id"]))
        unique_total = sum(r["unique"] for r in rows)
        rows.append(
            {
                "ref": "total",
                "refs": [],
                "id": "",
                "logical_size": sum(r["logical_size"] for r in rows),
                "shared": sum(shared_once.values()),
                "unique": unique_total,
                "disk": _tree_bytes(self.layout.blob_dir) + _tree_bytes(self.snapshots.root),
            }
        )
        return rows

    # -- internals ---------------------------------------------------------

    def _checked_manifest(self, manifest_digest: str) -> dict[str, Any]:
        """Read a manifest and check every blob it names is present."""
        try:
            manifest = dict(self.layout.read_json(manifest_digest))
        except FileNotFoundError:
            raise NotFound(f"manifest blob {manifest_digest} is not in {self.layout.blob_dir}")
        if manifest.get("mediaType", MANIFEST_MEDIA_TYPE) != MANIFEST_MEDIA_TYPE:
            raise InvalidArgument(
                f"manifest {manifest_digest} has media type {manifest.get('mediaType')!r}; "
                f"the store holds {MANIFEST_MEDIA_TYPE} only"
            )
        for desc in [manifest["config"], *(manifest.get("layers") or [])]:
            if not self.layout.has_blob(desc["digest"]):
                raise NotFound(f"blob {desc['digest']} of manifest {manifest_digest} is missing")
        return manifest

    def _blobs_of(self, manifest_digest: str) -> tuple[set[str], set[str]]:
        """(blob digests, diff_ids) a manifest references; missing blobs tolerated."""
        blobs = {manifest_digest}
        try:
            manifest = self.layout.read_json(manifest_digest)
        except FileNotFoundError:
            return blobs, set()
        blobs.add(manifest["config"]["digest"])
        blobs.update(layer["digest"] for layer in manifest.get("layers") or [])
        try:
            cfg = self.layout.read_json(manifest["config"]["digest"])
        except FileNotFoundError:
            return blobs, set()
        return blobs, set(cfg["rootfs"]["diff_ids"])

    def _objects_of(self, manifest_digest: str) -> dict[str, int]:
        """On-disk pieces of one image keyed so equal pieces of two images compare equal."""
        manifest = self.layout.read_json(manifest_digest)
        cfg_digest = manifest["config"]["digest"]
        diff_ids = self.layout.read_json(cfg_digest)["rootfs"]["diff_ids"]
        out = {
            manifest_digest: _file_bytes(self.layout.blob_path(manifest_digest)),
            cfg_digest: _file_bytes(self.layout.blob_path(cfg_digest)),
        }
        for layer, diff_id in zip(manifest.get("layers") or [], diff_ids, strict=False):
            out[layer["digest"]] = _file_bytes(self.layout.blob_path(layer["digest"]))
            out["snapshot:" + diff_id] = _tree_bytes(self.snapshots.path(diff_id))
        return out

    def _entries(self) -> builtins.list[_Entry]:
        try:
            st = os.stat(self.layout.index_path)
            key: tuple[int, int, int] | None = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            key = None
        if key is None or key != self._index_key:
            self._index_entries = [
                _Entry(_ref_of(r), r["digest"], int(r.get("size", 0)))
                for r in self.layout.read_index()
                if r.get("mediaType", MANIFEST_MEDIA_TYPE) == MANIFEST_MEDIA_TYPE
            ]
            self._index_key = key
        return list(self._index_entries)

    def _load(self, manifest_digest: str, entries: builtins.list[_Entry]) -> Image:
        blobs = self._blobs.get(manifest_digest)
        if blobs is None:
            manifest = self.layout.read_json(manifest_digest)
            blobs = (manifest, self.layout.read_json(manifest["config"]["digest"]))
            if len(self._blobs) >= 256:
                self._blobs.clear()
            self._blobs[manifest_digest] = blobs
        manifest, cfg = blobs
        layers = manifest.get("layers") or []
        unpacked = sum(
            int((layer.get("annotations") or {}).get(UNCOMPRESSED_SIZE_ANNOTATION, 0)) for layer in layers
        )
        refs = [e.ref for e in entries if e.manifest_digest == manifest_digest and e.ref]
        return Image(
            id=manifest["config"]["digest"],
            repo_tags=sorted(r for r in refs if "@" not in r),
            repo_digests=sorted({r for r in refs if "@" in r}
                                | {f"{_name_of(r)}@{manifest_digest}" for r in refs}),
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

    def _tag_locked(self, full_ref: str, man_digest: str, man_size: int) -> None:
        """Point ``full_ref`` at the manifest. The image the tag named before
        stays, untagged (dangling, as in Docker): containers may still run
        from its layers, so only :meth:`prune` deletes it."""
        rows = self.layout.read_index()
        previous = next((r for r in rows if _ref_of(r) == full_ref), None)
        # The tag replaces its old row and any untagged row of the same manifest.
        rows = [r for r in rows if _ref_of(r) != full_ref and (_ref_of(r) or r["digest"] != man_digest)]
        rows.append(descriptor(MANIFEST_MEDIA_TYPE, man_digest, man_size, **{REF_NAME_ANNOTATION: full_ref}))
        if previous is not None and all(r["digest"] != previous["digest"] for r in rows):
            rows.append(descriptor(MANIFEST_MEDIA_TYPE, previous["digest"], previous["size"]))
        rows.sort(key=_ref_of)
        self.layout.write_index(rows)

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
            in_use_diff_ids.update(self.layout.read_json(other["config"]["digest"])["rootfs"]["diff_ids"])
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


def tag_ref(ref: str) -> str:
    """``ref`` normalised, refused if it carries a digest: an import or a
    build makes a new manifest, which a digest could not name."""
    full = normalize(ref)
    if "@" in full:
        raise InvalidArgument(f"{ref!r}: an image is tagged NAME[:TAG]; a digest names what a "
                              "registry holds (orch pull NAME@DIGEST)")
    return full


def _lookup(full: str, entries: builtins.list[_Entry]) -> str | None:
    """The manifest digest a normalised reference names, if indexed."""
    for entry in entries:
        if entry.ref == full:
            return entry.manifest_digest
    name, at, digest = full.partition("@")
    if at:
        for entry in entries:
            if entry.manifest_digest == digest and entry.ref and _name_of(entry.ref) == name:
                return entry.manifest_digest
    return None


def _name_of(ref: str) -> str:
    """ "name:tag" or "name@digest" (normalised) -> "name"."""
    name = ref.partition("@")[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > slash else name


def _stored_ref(ref: str) -> str:
    """A ref annotation as :func:`normalize` writes it (an index written by
    an older orch, or another tool, may spell a name another way)."""
    if not ref:
        return ref
    try:
        return normalize(ref)
    except InvalidArgument:
        return ref


def _ref_of(row: dict[str, Any]) -> str:
    """The row's name, normalised ("" for an untagged row)."""
    return _stored_ref(str((row.get("annotations") or {}).get(REF_NAME_ANNOTATION, "")))


def _mtime(path: str) -> float:
    try:
        return os.lstat(path).st_mtime
    except FileNotFoundError:
        return 0.0


def _unlink(path: str) -> bool:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    except OSError as e:
        raise AgentError(f"prune: cannot delete {path}: {e}")
    return True


def _file_bytes(path: str) -> int:
    try:
        return os.lstat(path).st_size
    except FileNotFoundError:
        return 0


def _tree_bytes(root: str) -> int:
    """Apparent size of every file under ``root`` (hardlinked inodes once, symlinks not followed)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except FileNotFoundError:
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
