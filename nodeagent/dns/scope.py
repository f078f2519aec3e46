"""Who is asking: a container's DNS scope.

Every DNS socket belongs to one container, so a query arrives with its
asker's scope: the networks the container is on (its address and aliases on
each, in the order of its interfaces) and its name. Names resolve only on
those networks, and in that order: the first network on which a name is
known answers, as Docker's embedded resolver does.

A name ending in the container's own domain (its hostname's, which
resolvers append as a search domain) is looked up without it.

The same scope also publishes the container's own names on its networks
(``publish``: engine-mode user-defined bridge networks, where containers
resolve each other by name and alias; a cluster task's names come from the
cluster's state instead, through the node's ``NetworkStateHub``).

Pure data, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Attachment", "ContainerScope", "normalize"]


@dataclass(frozen=True)
class Attachment:
    """A container on one network."""

    network_id: str
    network_name: str = ""  # "NAME.NETWORK" resolves NAME on that network only
    address: str = ""  # the container's IPv4 address there, no prefix ("" unknown)
    aliases: tuple[str, ...] = ()  # extra names of the container there


@dataclass(frozen=True)
class ContainerScope:
    """What a container's queries are answered from, and what it publishes."""

    name: str = ""  # the container's name
    networks: tuple[Attachment, ...] = ()
    # Its name and aliases resolve for the others on its networks (engine
    # mode's user-defined networks; on the default bridge nothing does).
    publish: bool = False
    # The domain its resolver may append to a name: without a search line
    # in resolv.conf, glibc and busybox take the part of the hostname after
    # its first dot ("web.1.x2" -> "1.x2"), and busybox's nslookup then asks
    # only for "api.1.x2". Such a name is answered as "api".
    domain: str = ""

    def names(self, attachment: Attachment) -> set[str]:
        """The names this container answers to on ``attachment``'s network."""
        if not self.publish or not attachment.address:
            return set()
        return {normalize(n) for n in (self.name, *attachment.aliases) if n}


def normalize(name: str) -> str:
    """The form names are compared in: lower case, no trailing dot."""
    return name.rstrip(".").lower()
