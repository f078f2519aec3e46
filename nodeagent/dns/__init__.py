"""The node's DNS server: what containers reach at 127.0.0.11:53.

One server per node, in the agent process (``NodeDns``): a thread with a
selector (``loop``) serving many sockets, UDP and TCP, each bound to
127.0.0.11:53 inside one container's network namespace (the supervisor
makes them there and hands their fds over), so the socket a query arrives
on says which container asks (``server``). Answers (``answer``) come from
the node's names (``index``: the cluster's services, VIPs, endpoints and
task names from ``NetworkStateHub``, and engine-mode containers' names and
aliases), scoped to the asking container's networks (``scope``):

    SERVICE, SERVICE.          its VIP on that network (dnsrr: its endpoints, shuffled)
    tasks.SERVICE              its endpoints on that network
    ALIAS, TASK NAME           their addresses there
    CONTAINER, ALIAS           (engine mode, user-defined networks) their addresses
    NAME.NETWORK               NAME on that one network

A, TTL 0; another type for a known name: NOERROR without answers. Anything
else goes to the node's upstream resolvers (``forward``, ``upstreams``:
UDP with a short timeout, one more attempt, TCP when truncated), or gets
SERVFAIL at once when the node has none.

Invariants: a name resolves only on the networks the asker is on; the
answers follow the state as it changes (no cache, TTL 0); the server's
sockets and forwarded queries are touched on its one thread only; a
container's sockets are closed when it exits or is removed.

dnslib is loaded only with the server (``server``, ``answer``), on the first
container with DNS; ``scope``, ``index`` and ``upstreams`` do without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from common.lazy import lazy_exports

if TYPE_CHECKING:
    from nodeagent.dns.index import NameIndex, Resolution
    from nodeagent.dns.node import NodeDns
    from nodeagent.dns.scope import Attachment, ContainerScope
    from nodeagent.dns.server import DnsServer
    from nodeagent.dns.upstreams import Upstream, parse_upstreams, resolve_upstreams

__getattr__ = lazy_exports(__name__, {
    "Attachment": "scope", "ContainerScope": "scope", "NameIndex": "index", "Resolution": "index",
    "NodeDns": "node", "DnsServer": "server", "Upstream": "upstreams",
    "parse_upstreams": "upstreams", "resolve_upstreams": "upstreams",
})
__all__ = ["Attachment", "ContainerScope", "DnsServer", "NameIndex", "NodeDns", "Resolution", "Upstream",
           "parse_upstreams", "resolve_upstreams"]

EMBEDDED_DNS = "127.0.0.11"  # where every container with DNS finds it (its own netns's loopback)
DNS_PORT = 53
