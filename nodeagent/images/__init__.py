"""Local images: an OCI image layout plus read-only unpacked layer snapshots.

Public surface: :class:`ImageStore` (import, add_image/add_manifest, get, list,
remove, prune, disk_usage, manifest, lower_dirs),
the :class:`Image` / :class:`ImageConfig` data, reference helpers, and
:func:`apply_layer` for safe (whiteout-aware) layer extraction.

Errors (from ``common.errors``)::

    NotFound           unknown reference, id or prefix
    InvalidArgument    bad reference, ambiguous id prefix, bad import source
    └── UnsafeLayer    a layer escapes its root, holds a device node, or is too big
    AgentError         I/O failure while extracting or a digest mismatch

Invariants: blobs are content-addressed and written atomically; a snapshot
directory exists only complete and is never modified; every layer is
unpacked at most once and shared by all images (and containers) using it.

Registry push/pull/login live in the :mod:`nodeagent.images.registry` subpackage.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from common.lazy import lazy_exports

if TYPE_CHECKING:
    from nodeagent.images.extract import UnsafeLayer, apply_layer, clean_member_name
    from nodeagent.images.model import DEFAULT_MAX_BYTES, Image, ImageConfig
    from nodeagent.images.reference import Reference, normalize, parse_reference
    from nodeagent.images.store import ImageStore

# Each name loads its module on first use: the node agent looks images up
# without loading the tar, gzip and hashing code that extraction needs.
_HOMES = {
    "DEFAULT_MAX_BYTES": "model",
    "Image": "model",
    "ImageConfig": "model",
    "ImageStore": "store",
    "Reference": "reference",
    "UnsafeLayer": "extract",
    "apply_layer": "extract",
    "clean_member_name": "extract",
    "normalize": "reference",
    "parse_reference": "reference",
}
__all__ = [
    "DEFAULT_MAX_BYTES",
    "Image",
    "ImageConfig",
    "ImageStore",
    "Reference",
    "UnsafeLayer",
    "apply_layer",
    "clean_member_name",
    "normalize",
    "parse_reference",
]
__getattr__ = lazy_exports(__name__, _HOMES)
