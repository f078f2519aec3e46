"""Image references by Docker's rules: one parser for every layer.

Grammar (distribution/reference, which Docker uses)::

    reference  := name [ ":" tag ] [ "@" digest ]
    name       := [ domain "/" ] path
    domain     := host [ ":" port ]        host: DNS name, IPv4, or [IPv6]
    path       := component ( "/" component )*        at most 255 characters
    component  := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
    tag        := [A-Za-z0-9_] [A-Za-z0-9_.-]{0,127}
    digest     := "sha256:" 64 lowercase hex digits

The first ``/``-separated part is the registry only when it contains a ``.``
or a ``:``, is ``localhost``, or has an uppercase letter ("Docker's rule");
otherwise the name is Docker Hub's: ``busybox`` is ``docker.io/library/busybox``
and ``team/app`` is ``docker.io/team/app``.

Invariants:
- :class:`Reference` holds the full name (``domain`` and ``path``); its
  ``str()`` is Docker's *familiar* form (``busybox:1``, ``team/app``,
  ``127.0.0.1:5000/team/app:1``), which is also how the image store keys
  its tags, so ``busybox``, ``library/busybox`` and
  ``docker.io/library/busybox:latest`` name the same local image.
- :func:`normalize` adds the default tag ("latest") to a name with neither tag
  nor digest; a reference with a digest keeps only the digest (Docker's
  ``ParseDockerRef``): the digest names the content, a tag beside it is noise.
- orch has no implicit *remote* registry: only a reference that names its
  registry (:func:`names_registry`) is pulled, pushed or pinned. Docker Hub is
  reached by naming it (``docker.io/library/busybox``).

Only ``re`` and :mod:`common.errors` are imported: the node agent checks
references on every container start without loading any HTTP code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from common.errors import InvalidArgument

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
DEFAULT_ENDPOINT = "registry-1.docker.io"  # where docker.io's API is served
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"
MAX_PATH_LENGTH = 255

_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(
    rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
)
_DIGEST_SHAPE = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}")
_SHA256 = re.compile(r"sha256:[0-9a-f]{64}")
_IDENTIFIER = re.compile(r"[a-f0-9]{64}")
_HEX = re.compile(r"[0-9a-f]+")


@dataclass(frozen=True)
class Reference:
    """A parsed reference; ``tag`` and ``digest`` are "" when not given."""

    domain: str  # "docker.io" for Docker Hub (familiar names included), else "host[:port]"
    path: str  # "library/busybox", "team/app"
    tag: str = ""
    digest: str = ""
    # Whether the text named its registry (``docker.io/x`` did, ``x`` did not).
    # Not part of equality: both name the same image.
    explicit_domain: bool = field(default=False, compare=False)

    @property
    def name(self) -> str:
        """The full name: ``docker.io/library/busybox``, ``127.0.0.1:5000/app``."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar_name(self) -> str:
        """Docker's short name: ``busybox``, ``team/app``, ``127.0.0.1:5000/app``."""
        if self.domain != DEFAULT_DOMAIN:
            return self.name
        rest = self.path.removeprefix(OFFICIAL_PREFIX)
        return rest if rest != self.path and "/" not in rest else self.path

    @property
    def registry(self) -> str:
        """The registry as credentials and certs.d know it: "host[:port]"."""
        return self.domain

    @property
    def endpoint(self) -> str:
        """The host[:port] serving the registry API (docker.io's is elsewhere)."""
        return DEFAULT_ENDPOINT if self.domain == DEFAULT_DOMAIN else self.domain

    @property
    def repository(self) -> str:
        """The repository on its registry: what goes after /v2/."""
        return self.path

    @property
    def locator(self) -> str:
        """What goes after /manifests/: the digest if given, else the tag (or "latest")."""
        return self.digest or self.tag or DEFAULT_TAG

    @property
    def canonical(self) -> str:
        """The full form, registry included: what a deploy pins and a node pulls."""
        return self.name + _suffix(self.tag, self.digest)

    def with_default_tag(self) -> Reference:
        """Docker's ``TagNameOnly``: "latest" when neither tag nor digest is given."""
        return self if self.tag or self.digest else replace(self, tag=DEFAULT_TAG)

    def with_digest(self, digest: str) -> Reference:
        """This name pinned to ``digest`` (any tag dropped)."""
        return replace(self, tag="", digest=digest)

    def __str__(self) -> str:
        return self.familiar_name + _suffix(self.tag, self.digest)


def _suffix(tag: str, digest: str) -> str:
    return (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")


def parse(text: str) -> Reference:
    """Parse ``text`` by Docker's rules (``ParseNormalizedNamed``).

    InvalidArgument says which part is wrong, as ``invalid image reference
    "TEXT": ...``.
    """
    if not text:
        raise _invalid(text, "repository name must have at least one component")
    if _IDENTIFIER.fullmatch(text):
        raise _invalid(text, "a 64-digit hex string is an image id, not a repository name")
    rest, at, digest = text.partition("@")
    if at:
        _check_digest(text, digest)
    domain, remainder, explicit = split_domain(rest)
    path, colon, tag = remainder.partition(":")
    if path != path.lower():
        written = rest.partition(":")[0] if not explicit else path
        raise _invalid(text, f"repository name {written!r} must be lowercase")
    if explicit and not _DOMAIN.fullmatch(domain):
        raise _invalid(text, f"registry {domain!r} is not a valid host[:port]")
    _check_path(text, path)
    if colon and not _TAG.fullmatch(tag):
        raise _invalid(
            text,
            f"tag {tag!r} must be 1-128 characters of [A-Za-z0-9_.-], not starting with '.' or '-'",
        )
    return Reference(domain, path, tag, digest, explicit_domain=explicit)


def normalize(text: str) -> str:
    """The key the image store uses: familiar ``name:tag`` ("latest" when
    none is given), or ``name@digest`` when a digest is given."""
    ref = parse(text)
    if ref.digest:
        ref = ref.with_digest(ref.digest)
    return str(ref.with_default_tag())


def parse_remote(text: str) -> Reference:
    """A reference that must name its registry (what pull, push and pin take);
    tagged "latest" when it has neither tag nor digest."""
    ref = parse(text)
    if not ref.explicit_domain:
        raise InvalidArgument(
            f"image reference {text!r} names no registry: write it as HOST[:PORT]/NAME[:TAG], "
            f"e.g. 127.0.0.1:5000/{ref.familiar_name}:{ref.tag or DEFAULT_TAG} "
            f"(orch has no default registry; Docker Hub is {DEFAULT_DOMAIN}/...)"
        )
    return ref.with_default_tag()


def split_domain(name: str) -> tuple[str, str, bool]:
    """Docker's ``splitDockerDomain``: (domain, remainder, named explicitly).

    ``name`` may carry a tag; it is not validated here.
    """
    first, slash, rest = name.partition("/")
    if slash and (first == "localhost" or "." in first or ":" in first or first != first.lower()):
        domain, remainder, explicit = first, rest, True
    else:
        domain, remainder, explicit = DEFAULT_DOMAIN, name, False
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_PREFIX + remainder
    return domain, remainder, explicit


def check_registry(text: str) -> str:
    """``text`` if it is a registry "host[:port]" (what ``orch login`` takes)."""
    if not _DOMAIN.fullmatch(text):
        raise InvalidArgument(f"registry {text!r} is not a valid host[:port], e.g. 127.0.0.1:5000")
    return DEFAULT_DOMAIN if text == LEGACY_DEFAULT_DOMAIN else text


def names_registry(text: str) -> bool:
    """Whether ``text`` names its registry (``127.0.0.1:5000/app``,
    ``localhost/app``, ``docker.io/library/busybox``), by Docker's rule for the
    first ``/``-separated part. ``busybox`` and ``team/app`` do not."""
    return split_domain(text.partition("@")[0])[2]


def is_digest(text: str) -> bool:
    """``sha256:`` and 64 lowercase hex digits."""
    return _SHA256.fullmatch(text) is not None


def is_hex_id(text: str) -> bool:
    """True for "sha256:<hex>" or bare hex of at least 4 digits (an image id prefix)."""
    body = text.removeprefix("sha256:")
    return 4 <= len(body) <= 64 and _HEX.fullmatch(body) is not None


def _check_path(text: str, path: str) -> None:
    if len(path) > MAX_PATH_LENGTH:
        raise _invalid(text, f"repository name must not be more than {MAX_PATH_LENGTH} characters")
    for component in path.split("/"):
        if not _COMPONENT.fullmatch(component):
            raise _invalid(
                text,
                f"name component {component!r} must be lowercase letters and digits, "
                "optionally separated by '.', '_', '__' or '-'",
            )


def _check_digest(text: str, digest: str) -> None:
    algorithm = digest.partition(":")[0]
    if _DIGEST_SHAPE.fullmatch(digest) and algorithm != "sha256":
        raise _invalid(text, f"digest algorithm {algorithm!r} is not supported (sha256 only)")
    if not _SHA256.fullmatch(digest):
        raise _invalid(text, f"digest {digest!r} must be sha256: and 64 lowercase hex digits")


def _invalid(text: str, why: str) -> InvalidArgument:
    return InvalidArgument(f"invalid image reference {text!r}: {why}")
