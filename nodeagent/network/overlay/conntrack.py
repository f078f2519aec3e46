"""Forgetting UDP flows balanced to endpoints that are gone.

A UDP "connection" is a conntrack entry that lives as long as datagrams
keep coming: a client that keeps sending from one port to a VIP would keep
reaching an endpoint after it was removed, long after the VIP's chain
stopped choosing it. So when an endpoint leaves a VIP (or a port of the
routing mesh), the entries of the UDP flows it balanced there are deleted
(kube-proxy does the same), and the client's next datagram is balanced
anew. TCP needs nothing: a connection to a stopped task ends with it, and
one to a task still running may go on.

The kernel does the filtering: one dump per VIP or mesh port that lost
endpoints, asking only for the UDP entries sent to it (``CTA_FILTER`` on
the original tuple); of those, the ones answered from a lost endpoint go.
A node's namespace holds many UDP entries that are none of ours: VXLAN's
own datagrams, one entry per inner connection (the outer source port is a
hash of the inner flow), tens of thousands under steady load. Reading
them all into Python would take seconds, in the overlay thread, between
two passes: every removal after it would wait as long, while the stopping
tasks still got new connections. What is left is the kernel's walk of the
conntrack hash table (shared by every namespace: 262,144 buckets here,
~11 ms a dump), paid only when a VIP or a mesh port loses an endpoint.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Collection, Mapping

from nodeagent.network.overlay.errors import OverlayError

__all__ = ["Destination", "forget_udp_flows"]

# Where flows were balanced from: (VIP, 0) for a VIP (every port), ("", port)
# for a port the mesh publishes (on every local address).
Destination = tuple[str, int]


def forget_udp_flows(gone: Mapping[Destination, Collection[str]]) -> int:
    """Delete the UDP conntrack entries of flows sent to each destination
    and answered from one of its addresses (in the caller's namespace);
    how many there were."""
    lost = {dest: frozenset(addresses) for dest, addresses in gone.items() if addresses}
    if not lost:
        return 0
    from pyroute2 import Conntrack
    from pyroute2.conntrack import NFCTAttrTuple
    from pyroute2.netlink.exceptions import NetlinkError

    deleted = 0
    ct = Conntrack()
    try:
        for (address, port), addresses in sorted(lost.items()):
            sent_to = (NFCTAttrTuple(proto=socket.IPPROTO_UDP, daddr=address) if address
                       else NFCTAttrTuple(proto=socket.IPPROTO_UDP, dport=port))
            for entry in list(ct.dump_entries(tuple_orig=sent_to)):
                if entry.tuple_reply.saddr not in addresses:
                    continue
                try:
                    ct.delete(entry)
                    deleted += 1
                except NetlinkError as exc:
                    if exc.code != errno.ENOENT:  # it expired meanwhile
                        raise
    except NetlinkError as exc:
        raise OverlayError("conntrack_delete", {"destinations": sorted(lost)}, str(exc), exc.code)
    finally:
        ct.close()
    return deleted
