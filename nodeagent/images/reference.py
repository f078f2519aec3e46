"""Image references: parse, validate and normalise "name[:tag]".

Invariants:
- A normalised reference is always "name:tag" (no tag means "latest").
- Names are lowercase path components ``[a-z0-9]+`` joined by ``.``, ``_``,
  ``__`` or dashes, separated by ``/`` (Docker's grammar, which also satisfies
  the OCI ``ref.name`` annotation grammar).
- Tags are ``[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}``.
Digest references (``name@sha256:...``) are not supported yet.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from common.errors import InvalidArgument

DEFAULT_TAG = "latest"

_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_HEX = re.compile(r"[0-9a-f]+")
MAX_NAME_LENGTH = 255


@dataclass(frozen=True)
class Reference:
    name: str
    tag: str

    def __str__(self) -> str:
        return f"{self.name}:{self.tag}"


def parse_reference(text: str) -> Reference:
    """Split and validate ``text``; InvalidArgument says which part is wrong."""
    if not text:
        raise InvalidArgument('invalid image reference "": empty')
    if "@" in text:
        raise InvalidArgument(
            f"invalid image reference {text!r}: digest references (name@sha256:...) "
            "are not supported; use name:tag or the image id"
        )
    name, tag = text, DEFAULT_TAG
    slash = text.rfind("/")
    colon = text.rfind(":")
    if colon > slash:
        name, tag = text[:colon], text[colon + 1 :]
    _check_name(text, name)
    _check_tag(text, tag)
    return Reference(name, tag)


def normalize(text: str) -> str:
    """Validate and add the default tag: ``foo`` -> ``foo:latest``."""
    return str(parse_reference(text))


def is_hex_id(text: str) -> bool:
    """True for "sha256:<hex>" or bare hex of at least 4 digits (an id prefix)."""
    body = text.removeprefix("sha256:")
    return len(body) >= 4 and len(body) <= 64 and _HEX.fullmatch(body) is not None


def _check_name(text: str, name: str) -> None:
    if not name:
        raise InvalidArgument(f"invalid image reference {text!r}: empty name")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidArgument(
            f"invalid image reference {text!r}: name longer than {MAX_NAME_LENGTH} characters"
        )
    for component in name.split("/"):
        if not _COMPONENT.fullmatch(component):
            raise InvalidArgument(
                f"invalid image reference {text!r}: name component {component!r} must be "
                "lowercase letters and digits, optionally separated by '.', '_', '__' or '-'"
            )


def _check_tag(text: str, tag: str) -> None:
    if not _TAG.fullmatch(tag):
        raise InvalidArgument(
            f"invalid image reference {text!r}: tag {tag!r} must be 1-128 characters of "
            "[A-Za-z0-9_.-], not starting with '.' or '-'"
        )
