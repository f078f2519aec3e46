"""The agent's DNS: the node's name index and its server, started on demand.

An agent that never runs a container with DNS never loads dnslib (about
4 MB of RSS, 30 ms of imports): the index starts following the node's
``NetworkStateHub`` and the server's thread starts when the first
container's sockets arrive (:meth:`NodeDns.add_container`).

The sockets come from the supervisor's ``dns_sockets`` event
(:meth:`NodeDns.take_sockets`, the ``SupervisorClient`` fd taker), whose
data gives the container's scope (:func:`scope_from_event`): its overlay
networks (whose names come from the cluster's state), or its user-defined
bridge network (engine mode: its name and aliases resolve there). A
container's sockets are dropped (closed) when it exits or is removed, or
when the supervisor goes away (its containers die with it; a new one sends
the sockets of those it starts): a socket keeps its network namespace
alive, and a restarted container has a new namespace, whose sockets come
anew.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nodeagent.dns.index import NameIndex
from nodeagent.dns.scope import Attachment, ContainerScope
from nodeagent.dns.upstreams import Upstream

if TYPE_CHECKING:
    from nodeagent.dns.server import DnsServer
    from nodeagent.network.state import NetworkStateHub

__all__ = ["NodeDns", "scope_from_event"]

# A user-defined bridge's network: (id, name), or None if the bridge is no network's.
BridgeLookup = Callable[[str], "tuple[str, str] | None"]


def scope_from_event(data: dict[str, Any], user_network: BridgeLookup | None = None) -> ContainerScope:
    """A container's scope from its ``dns_sockets`` event (see
    ``nodeagent.supervisor``): its overlay networks, in order (their names
    are the cluster's: nothing published here); or, on a user-defined
    bridge, that network, where its name and ``network_aliases`` resolve."""
    name = str(data.get("name", ""))
    domain = str(data.get("hostname") or "").partition(".")[2]
    bridge = str(data.get("bridge") or "")
    if bridge and user_network is not None and data.get("ip_address"):
        found = user_network(bridge)
        if found is not None:
            aliases = tuple(str(a) for a in data.get("network_aliases") or ())
            return ContainerScope(name=name, publish=True, domain=domain, networks=(
                Attachment(found[0], found[1], str(data["ip_address"]), aliases),))
    return ContainerScope(name=name, domain=domain, networks=tuple(
        Attachment(str(n.get("network_id", "")), str(n.get("network_name", "")),
                   str(n.get("address", "")).partition("/")[0],
                   tuple(str(a) for a in n.get("aliases") or ()))
        for n in data.get("networks") or ()))


class NodeDns:
    def __init__(self, upstreams: list[Upstream], hub: NetworkStateHub | None = None,
                 user_network: BridgeLookup | None = None, forward_timeout: float | None = None) -> None:
        self.upstreams = list(upstreams)
        self.hub = hub
        self.user_network = user_network
        self.index = NameIndex()
        self.forward_timeout = forward_timeout
        self._server: DnsServer | None = None
        self._lock = threading.Lock()
        self._closed = False

    @property
    def started(self) -> bool:
        return self._server is not None

    def server(self) -> DnsServer:
        """The server, started (and the hub followed) on first use."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the node's DNS server is closed")
            if self._server is None:
                from nodeagent.dns.server import DnsServer

                kwargs: dict[str, Any] = {}
                if self.forward_timeout is not None:
                    kwargs["forward_timeout"] = self.forward_timeout
                self._server = DnsServer(self.index, self.upstreams, **kwargs)
                if self.hub is not None:
                    self.hub.subscribe(self.index.follow)
            return self._server

    def add_container(self, cid: str, udp_fd: int | None, tcp_fd: int | None,
                      scope: ContainerScope) -> None:
        """Serve the container's sockets (owned from now on, closed here
        even if the server cannot take them)."""
        try:
            server = self.server()
        except Exception:
            _close([fd for fd in (udp_fd, tcp_fd) if fd is not None])
            raise
        server.add_container(cid, udp_fd, tcp_fd, scope)

    def take_sockets(self, data: dict[str, Any], fds: list[int]) -> None:
        """The ``dns_sockets`` event's taker (on the supervisor client's
        reader thread: it does not block): serve ``fds`` (UDP, TCP) for the
        container ``data`` describes."""
        cid = str(data.get("id", ""))
        if not cid or len(fds) != 2:
            _close(fds)
            return
        self.add_container(cid, fds[0], fds[1], scope_from_event(data, self.user_network))

    def set_scope(self, cid: str, scope: ContainerScope) -> None:
        if self._server is not None:
            self._server.set_scope(cid, scope)

    def remove_container(self, cid: str) -> None:
        if self._server is not None:
            self._server.remove_container(cid)

    def on_event(self, event: str, data: dict[str, Any]) -> None:
        """A supervisor event (``EventHub`` listener): an exited or removed
        container's sockets go; all of them when the supervisor does."""
        if event in ("exited", "removed") and data.get("id"):
            self.remove_container(str(data["id"]))
        elif event == "disconnected" and self._server is not None:
            self._server.remove_all()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            server, self._server = self._server, None
        if server is not None:
            server.close()


def _close(fds: list[int]) -> None:
    for fd in fds:
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)
