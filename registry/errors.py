"""The registry package's errors, in the :mod:`common.errors` hierarchy.

Each keeps its ``code`` across a process boundary (an image job reports it to
the agent as a dict), so the agent answers with the same status either way.
"""

from __future__ import annotations

from common.errors import AgentError, NotFound


class RegistryError(AgentError):
    """The registry refused a request, could not be reached, or answered outside the protocol."""

    code = "registry"


class AuthError(RegistryError):
    """Missing or rejected credentials (401/403)."""

    code = "unauthenticated"


class DigestMismatch(RegistryError):
    """Content did not hash to the digest that named it; nothing was stored."""

    code = "digest_mismatch"


class RegistryNotFound(RegistryError, NotFound):
    """Unknown repository, tag, manifest or blob (404)."""

    code = "not_found"
