"""Forgetting UDP flows to endpoints that are gone.

A UDP "connection" is a conntrack entry that lives as long as datagrams
keep coming: a client that keeps sending from one port to a VIP would keep
reaching an endpoint after it was removed, long after the VIP's chain
stopped choosing it. So when an endpoint goes, the entries whose replies
come from its address are deleted (kube-proxy does the same), and the
client's next datagram is balanced anew. TCP needs nothing: a connection
to a stopped task ends with it, and one to a task still running may go on.

The cost is the kernel's: a dump walks the whole conntrack hash table
(shared by every namespace: 262,144 buckets here, ~4 ms), paid only when
an endpoint goes.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterable

from nodeagent.network.overlay.errors import OverlayError

__all__ = ["forget_udp_to"]


def forget_udp_to(addresses: Iterable[str]) -> int:
    """Delete the UDP conntrack entries answered from ``addresses`` (in the
    caller's namespace); how many there were."""
    gone = set(addresses)
    if not gone:
        return 0
    from pyroute2 import Conntrack
    from pyroute2.conntrack import NFCTAttrTuple
    from pyroute2.netlink.exceptions import NetlinkError

    deleted = 0
    ct = Conntrack()
    try:
        for entry in list(ct.dump_entries(tuple_orig=NFCTAttrTuple(proto=socket.IPPROTO_UDP))):
            if entry.tuple_reply.saddr in gone:
                try:
                    ct.delete(entry)
                    deleted += 1
                except NetlinkError as exc:
                    if exc.code != errno.ENOENT:  # it expired meanwhile
                        raise
    except NetlinkError as exc:
        raise OverlayError("conntrack_delete", {"addresses": sorted(gone)}, str(exc), exc.code)
    finally:
        ct.close()
    return deleted
