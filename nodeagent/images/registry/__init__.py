"""Registry client: push and pull images over the OCI distribution API.

Public surface: :func:`parse_remote` / :class:`RemoteRef`, :func:`push`,
:func:`pull`, :func:`login`, :func:`load_credentials` / :class:`Credentials`.
Only the stdlib (``http.client``) is used. Loopback registries (127.0.0.0/8,
localhost, ::1) are spoken to over plain http, all others over https.

Errors (``common.errors`` hierarchy)::

    AgentError
    ├── InvalidArgument       bad remote reference, unsupported media type/platform
    └── RegistryError         "registry": refused request, protocol violation
        ├── AuthError         "unauthenticated": missing or rejected credentials
        ├── DigestMismatch    "digest_mismatch": content does not hash to its digest
        └── (also NotFound)   "not_found": unknown repository, tag or blob

Invariants: blobs land in the store only complete and verified (temp file,
sha256 and size checked, rename); a push sends the manifest last and byte
for byte as stored, so the remote manifest digest equals the local one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from common.lazy import lazy_exports

if TYPE_CHECKING:
    from nodeagent.images.registry.auth import Credentials, load_credentials
    from nodeagent.images.registry.client import AuthError, DigestMismatch, RegistryError
    from nodeagent.images.registry.login import login
    from nodeagent.images.registry.pull import pull, resolve_digest
    from nodeagent.images.registry.push import push
    from nodeagent.images.registry.remote import RemoteRef, names_registry, parse_remote

# Loaded on first use: checking whether a reference names a registry does not
# load the HTTP client.
_HOMES = {
    "AuthError": "client",
    "Credentials": "auth",
    "DigestMismatch": "client",
    "RegistryError": "client",
    "RemoteRef": "remote",
    "load_credentials": "auth",
    "login": "login",
    "names_registry": "remote",
    "parse_remote": "remote",
    "pull": "pull",
    "push": "push",
    "resolve_digest": "pull",
}
__all__ = [
    "AuthError",
    "Credentials",
    "DigestMismatch",
    "RegistryError",
    "RemoteRef",
    "load_credentials",
    "login",
    "names_registry",
    "parse_remote",
    "pull",
    "push",
    "resolve_digest",
]
__getattr__ = lazy_exports(__name__, _HOMES)
