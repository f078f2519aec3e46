"""Remote image references: "host[:port]/repo/path[:tag][@sha256:...]".

Invariants: a :class:`RemoteRef` always names its registry host explicitly
(there is no default registry), and has a tag ("latest" when none is given)
unless it was given by digest only. Loopback hosts are spoken to over plain
http, every other host over https (:func:`scheme_for`).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from common.errors import InvalidArgument
from nodeagent.images.reference import DEFAULT_TAG

_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_HOST = re.compile(r"(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\])(?::[0-9]{1,5})?")


@dataclass(frozen=True)
class RemoteRef:
    registry: str  # "host[:port]", as written
    repository: str  # "a/b"
    tag: str  # "" only when given by digest alone
    digest: str  # "" unless given

    @property
    def reference(self) -> str:
        """What goes after /manifests/: the digest if known, else the tag."""
        return self.digest or self.tag

    def __str__(self) -> str:
        out = f"{self.registry}/{self.repository}"
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


def parse_remote(ref: str) -> RemoteRef:
    """Parse "localhost:5000/app:v1" or "127.0.0.1:5000/a/b@sha256:..."."""
    first, slash, rest = ref.partition("/")
    if not slash or not _looks_like_host(first):
        raise InvalidArgument(
            f"remote image reference {ref!r} names no registry host: "
            "write it as HOST[:PORT]/NAME[:TAG], e.g. 127.0.0.1:5000/app:v1"
        )
    if not _HOST.fullmatch(first):
        raise InvalidArgument(f"remote image reference {ref!r}: bad registry host {first!r}")
    name, at, digest = rest.partition("@")
    if at and not _DIGEST.fullmatch(digest):
        raise InvalidArgument(
            f"remote image reference {ref!r}: digest {digest!r} must be sha256: and 64 hex digits"
        )
    tag = ""
    colon = name.rfind(":")
    if colon >= 0:
        name, tag = name[:colon], name[colon + 1 :]
        if not _TAG.fullmatch(tag):
            raise InvalidArgument(f"remote image reference {ref!r}: bad tag {tag!r}")
    elif not at:
        tag = DEFAULT_TAG
    if not name or not all(_COMPONENT.fullmatch(c) for c in name.split("/")):
        raise InvalidArgument(
            f"remote image reference {ref!r}: repository {name!r} must be lowercase "
            "components of [a-z0-9] joined by '.', '_', '__' or '-', separated by '/'"
        )
    return RemoteRef(first, name, tag, digest)


def _looks_like_host(first: str) -> bool:
    """Docker's rule: the first component is a host if it has '.' or ':' or is localhost."""
    return "." in first or ":" in first or first == "localhost" or first.startswith("[")


def host_of(registry: str) -> str:
    """ "host[:port]" -> host (IPv6 brackets removed)."""
    if registry.startswith("["):
        return registry[1 : registry.index("]")]
    return registry.rsplit(":", 1)[0] if ":" in registry else registry


def is_loopback(registry: str) -> bool:
    host = host_of(registry)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


INSECURE_ENV = "ORCH_INSECURE_REGISTRIES"


def insecure_registries() -> set[str]:
    """Registries reached over plain http although not on loopback (Docker's
    --insecure-registry): ``$ORCH_INSECURE_REGISTRIES``, comma-separated
    HOST:PORT; a local test cluster's registry on its private bridge."""
    import os

    return {r.strip() for r in os.environ.get(INSECURE_ENV, "").split(",") if r.strip()}


def scheme_for(registry: str) -> str:
    return "http" if is_loopback(registry) or registry in insecure_registries() else "https"


def names_registry(image: str) -> bool:
    """Docker's rule: the first path component is a registry host when it has
    a dot or a port, or is ``localhost`` ("busybox", "library/app": local)."""
    first, sep, _ = image.partition("/")
    return bool(sep) and ("." in first or ":" in first or first == "localhost")
