"""Registry client: push and pull images over the OCI distribution API.

Public surface: :func:`parse_remote` / :class:`RemoteRef`, :func:`push`,
:func:`pull`, :func:`login`, :func:`load_credentials` / :class:`Credentials`.
Only the stdlib (``http.client``) is used. Loopback registries (127.0.0.0/8,
localhost, ::1) are spoken to over plain http, all others over https.

Errors (``nodeagent.errors`` hierarchy)::

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

from nodeagent.images.registry.auth import Credentials, load_credentials
from nodeagent.images.registry.client import AuthError, DigestMismatch, RegistryError
from nodeagent.images.registry.login import login
from nodeagent.images.registry.pull import pull, resolve_digest
from nodeagent.images.registry.push import push
from nodeagent.images.registry.remote import RemoteRef, names_registry, parse_remote

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
