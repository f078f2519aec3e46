"""Image references, digests and the registry client: a pure package.

It imports nothing of orch's but :mod:`common`; the image store that pulls
write into and pushes read from stays in :mod:`nodeagent.images` (``pull``,
``push``), which uses this package, as the control plane does to pin a tag to
its digest and the manifest parser to check references.

Modules::

    reference    Docker's reference grammar and normalisation (one parser)
    transport    https or plain http, trusted CAs (--registry-ca, certs.d), proxies
    credentials  Docker's config.json credentials
    auth         Basic and Bearer-token auth as an httpx.Auth flow
    client       RegistryClient: the distribution API verbs over httpx
    manifest     fetching, verifying and resolving manifests; resolve_digest
    login        check credentials, then save them
    mediatypes   OCI and Docker media types

The HTTP layer is httpx. It replaced a hand-written client on ``http.client``
(per-thread connections, its own 401/redirect/retry handling); httpx brings
the connection pool, redirects that drop credentials across origins, the
proxy environment and the TLS options.

Errors (``common.errors`` hierarchy)::

    AgentError
    ├── InvalidArgument       bad reference, CA file or manifest; unsupported media type
    └── RegistryError         "registry": refused request, unreachable, untrusted TLS, protocol
        ├── AuthError         "unauthenticated": missing or rejected credentials
        ├── DigestMismatch    "digest_mismatch": content does not hash to its digest
        └── RegistryNotFound  "not_found" (also a NotFound): unknown repository, tag or blob

Invariants: the HTTP code (httpx, ssl) loads only when a client is made;
``reference`` and ``transport`` need neither, so the node agent and the CLI
check references without loading them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from common.lazy import lazy_exports

if TYPE_CHECKING:
    from registry.client import RegistryClient
    from registry.credentials import Credentials, load_credentials, save_credentials
    from registry.errors import AuthError, DigestMismatch, RegistryError, RegistryNotFound
    from registry.login import login
    from registry.manifest import resolve_digest
    from registry.reference import (
        Reference,
        is_digest,
        is_hex_id,
        names_registry,
        normalize,
        parse,
        parse_remote,
    )
    from registry.transport import Settings

_HOMES = {
    "AuthError": "errors",
    "Credentials": "credentials",
    "DigestMismatch": "errors",
    "Reference": "reference",
    "RegistryClient": "client",
    "RegistryError": "errors",
    "RegistryNotFound": "errors",
    "Settings": "transport",
    "is_digest": "reference",
    "is_hex_id": "reference",
    "load_credentials": "credentials",
    "login": "login",
    "names_registry": "reference",
    "normalize": "reference",
    "parse": "reference",
    "parse_remote": "reference",
    "resolve_digest": "manifest",
    "save_credentials": "credentials",
}
__all__ = [
    "AuthError",
    "Credentials",
    "DigestMismatch",
    "Reference",
    "RegistryClient",
    "RegistryError",
    "RegistryNotFound",
    "Settings",
    "is_digest",
    "is_hex_id",
    "load_credentials",
    "login",
    "names_registry",
    "normalize",
    "parse",
    "parse_remote",
    "resolve_digest",
    "save_credentials",
]
__getattr__ = lazy_exports(__name__, _HOMES)
