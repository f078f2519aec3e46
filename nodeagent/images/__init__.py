"""Local images: an OCI image layout plus read-only unpacked layer snapshots.

Public surface: :class:`ImageStore` (import, add_image/add_manifest, get, list,
remove, prune, disk_usage, manifest, lower_dirs),
the :class:`Image` / :class:`ImageConfig` data, and :func:`apply_layer` for
safe (whiteout-aware) layer extraction; ``pull.pull`` and ``push.push`` move a
registry's images into and out of the store. Image references follow Docker's
rules, parsed by :mod:`registry.reference` (the one parser).

Errors (from ``common.errors``)::

    NotFound           unknown reference, id or prefix
    InvalidArgument    bad reference, ambiguous id prefix, bad import source
    └── UnsafeLayer    a layer escapes its root, holds a device node, or is too big
    AgentError         I/O failure while extracting or a digest mismatch

Invariants: blobs are content-addressed and written atomically; a snapshot
directory exists only complete and is never modified; every layer is
unpacked at most once and shared by all images (and containers) using it.

The registry protocol (client, auth, TLS, references) is the :mod:`registry`
package; the store side of a pull or push lives here (``pull``, ``push``,
``sources``), run by the agent as image jobs (:mod:`.job`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from common.lazy import lazy_exports

if TYPE_CHECKING:
    from nodeagent.images.extract import UnsafeLayer, apply_layer, clean_member_name
    from nodeagent.images.model import DEFAULT_MAX_BYTES, Image, ImageConfig
    from nodeagent.images.store import ImageStore

# Each name loads its module on first use: the node agent looks images up
# without loading the tar, gzip and hashing code that extraction needs.
_HOMES = {
    "DEFAULT_MAX_BYTES": "model",
    "Image": "model",
    "ImageConfig": "model",
    "ImageStore": "store",
    "UnsafeLayer": "extract",
    "apply_layer": "extract",
    "clean_member_name": "extract",
}
__all__ = [
    "DEFAULT_MAX_BYTES",
    "Image",
    "ImageConfig",
    "ImageStore",
    "UnsafeLayer",
    "apply_layer",
    "clean_member_name",
]
__getattr__ = lazy_exports(__name__, _HOMES)
