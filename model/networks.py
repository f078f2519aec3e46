"""Overlay networks' names and subnets: the rules every way in shares (manifests,
`orch network create`, the API, the allocator).

- A network's name: ``NETWORK_NAME_PATTERN`` (Docker's: a letter or digit, then
  letters, digits, ``_``, ``.``, ``-``), at most 128 characters; a stack's
  networks are ``<stack>_<key>`` (Compose's), its default network
  ``<stack>_default``.
- A stack's name: Compose's project name, ``STACK_NAME_PATTERN``; a name taken
  from a directory is first normalised as Compose does (:func:`stack_name_from`).
- A subnet: IPv4 CIDR with no host bits set, prefix /8 to /29 (a /29 holds five
  addresses once ``.0``, ``.1`` and the broadcast address are left out), outside
  the ranges a node uses for itself (loopback, link-local: the overlay's router
  addresses, multicast and the like).
- An alias: a DNS name (labels of letters, digits and ``-``, dot-separated).

Pure: no I/O. Errors are ``ValueError`` whose message names the value and
says what is expected; callers add where it came from (file:line, a flag).
"""

from __future__ import annotations

import ipaddress
import re

__all__ = [
    "ALIAS_PATTERN",
    "MAX_SUBNET_PREFIX",
    "MIN_SUBNET_PREFIX",
    "NETWORK_NAME_PATTERN",
    "STACK_NAME_PATTERN",
    "check_alias",
    "check_network_name",
    "check_stack_name",
    "default_network",
    "host_bounds",
    "parse_subnet",
    "stack_name_from",
    "stack_network",
]

NETWORK_NAME_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$"
STACK_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
ALIAS_PATTERN = rf"^{_LABEL}(\.{_LABEL})*$"
MIN_SUBNET_PREFIX = 8
MAX_SUBNET_PREFIX = 29

_NETWORK_NAME_RE = re.compile(NETWORK_NAME_PATTERN)
_STACK_NAME_RE = re.compile(STACK_NAME_PATTERN)
_ALIAS_RE = re.compile(ALIAS_PATTERN)
_NOT_IN_STACK_NAME = re.compile(r"[^a-z0-9_-]")

# What a node's own traffic uses: an overlay subnet there would shadow it.
_RESERVED = tuple(ipaddress.IPv4Network(n) for n in (
    "0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "240.0.0.0/4"))


def check_network_name(name: str) -> str:
    if not _NETWORK_NAME_RE.fullmatch(name):
        raise ValueError(f"invalid network name {name!r}: use at most 128 letters, digits, '_', '.' "
                         "and '-', starting with a letter or digit")
    return name


def check_stack_name(name: str) -> str:
    if not _STACK_NAME_RE.fullmatch(name):
        raise ValueError(f"invalid stack name {name!r}: use at most 63 lower-case letters, digits, '_' "
                         "and '-', starting with a letter or digit")
    return name


def stack_name_from(text: str) -> str:
    """Compose's normalisation of a project name taken from a directory: lower
    case, only ``[a-z0-9_-]`` kept, leading ``_`` and ``-`` dropped; "" if
    nothing is left. Cut to the longest stack name."""
    return _NOT_IN_STACK_NAME.sub("", text.lower()).lstrip("_-")[:63]


def stack_network(stack: str, key: str) -> str:
    """The cluster name of a stack's network ``key`` (Compose's ``<project>_<key>``)."""
    return f"{stack}_{key}"


def default_network(stack: str) -> str:
    return stack_network(stack, "default")


def check_alias(alias: str) -> str:
    if len(alias) > 253 or not _ALIAS_RE.fullmatch(alias):
        raise ValueError(f"invalid alias {alias!r}: expected a DNS name (letters, digits and '-', "
                         "in dot-separated labels)")
    return alias


def parse_subnet(text: str) -> ipaddress.IPv4Network:
    """``"10.96.5.0/24"`` as a network; ValueError saying what is wrong."""
    try:
        net = ipaddress.IPv4Network(text, strict=True)
    except ipaddress.AddressValueError:
        raise ValueError(f"invalid subnet {text!r}: expected an IPv4 CIDR such as 10.96.5.0/24") from None
    except ipaddress.NetmaskValueError:
        raise ValueError(f"invalid subnet {text!r}: the prefix must be /{MIN_SUBNET_PREFIX} to "
                         f"/{MAX_SUBNET_PREFIX}") from None
    except ValueError:  # host bits set
        loose = ipaddress.IPv4Network(text, strict=False)
        raise ValueError(f"invalid subnet {text!r}: host bits are set; did you mean {loose}?") from None
    if "/" not in text:
        raise ValueError(f"invalid subnet {text!r}: give its prefix, e.g. {text}/24")
    if not MIN_SUBNET_PREFIX <= net.prefixlen <= MAX_SUBNET_PREFIX:
        raise ValueError(f"invalid subnet {text!r}: the prefix must be /{MIN_SUBNET_PREFIX} to "
                         f"/{MAX_SUBNET_PREFIX}")
    for reserved in _RESERVED:
        if net.overlaps(reserved):
            raise ValueError(f"invalid subnet {text!r}: it overlaps {reserved}, which nodes use "
                             "for themselves")
    return net


def host_bounds(subnet: ipaddress.IPv4Network) -> tuple[int, int]:
    """The first and last address a task or VIP may get, as integers: the
    network address, the first host (``.1``, left free: no gateway is needed)
    and the broadcast address are never given."""
    first = int(subnet.network_address) + 2
    last = int(subnet.broadcast_address) - 1
    return first, last
