"""The overlay's data plane on one node: VXLAN networks routed at the node,
service VIPs and the routing mesh, programmed from the node's network state
(``nodeagent.network.state``) into the node's network namespace.

Public surface: :class:`Overlay` (started by the agent once it joins a
cluster; ``close(remove=True)`` on ``orch agent stop --all``),
:func:`remove_all` and :func:`leftovers` (for ``orch down``'s sweep).

Shape (flannel's VXLAN backend more than Swarm's L2 overlay; names and
numbers in ``addressing``):

- Each network has one device ``vx-<VNI>`` (learning off, proxy on, no
  IPv6), the node's router address ``169.254.<index>/32`` on it and the route
  ``SUBNET dev vx-<VNI>`` (its source: the node's underlay address). A
  container's address is routed to its own veth (``ethK``, attached by the
  runtime: /32 route, proxy ARP), so every packet between containers goes
  through the nodes' routing and nftables. Permanent FDB entries (peer's vx
  MAC -> its underlay address) and neighbours (remote task or router
  address -> its node's vx MAC) come from the state: nothing floods, nothing
  is learnt. Peers programmed for a network: those with a task on it, and
  every node when it carries a port published in ingress mode.
- VIPs: kube-proxy's nftables shape in table ``ip orch_svc`` (``ruleset``):
  ``VIP : goto svc_<VIP>`` -> ``numgen random mod N`` -> ``ep_<address>``:
  ``dnat to address`` (every port). The reply comes back through the same
  node, which un-DNATs it: the server sees the client's address.
- Isolation, in ``forward``: traffic that touches an overlay address passes
  only within one network's subnet (after DNAT), as an established
  connection, or as routing-mesh traffic; a VIP is DNAT'ed only for overlay
  sources (other clients are refused). Reverse-path checks in ``mangle``:
  an overlay source must arrive where it is routed.
- Routing mesh: a published port (ingress) on any local address is DNAT'ed
  to one of the service's tasks, those on this node when there are any.
  For a task on another node B the packet leaves over the overlay with the
  client's address. On B, a new connection arriving on a vx device from
  outside every overlay subnet gets the ct mark of its sender (``ether
  saddr`` is the sender's vx MAC, which encodes its index); its replies,
  which the task sends through its default route (``eth0``, the bridge),
  get the packet mark from the ct mark, and ``ip rule fwmark M lookup M`` ->
  ``default via <sender's router address> dev vx-<VNI> onlink`` sends them
  back to the node that took the connection, which un-DNATs them. The
  bridge's isolation lets exactly those replies out
  (``nodeagent.network.nftables``). A gate rule keeps all other packets
  from walking the per-peer rules; VXLAN's own packets lose the mark (the
  outer packet is routed with the inner one's mark). Clients on the node's
  loopback are SNAT'ed to its underlay address (masqueraded for a local
  task). Nodes need loose or no reverse-path filtering
  (``net.ipv4.conf.all.rp_filter`` 0 or 2): the mesh delivers over a vx
  device connections whose client is routed elsewhere.
- A removed endpoint gets no new connection: its chain goes in the same
  transaction as the VIP's rewrite, and the UDP flows that VIP (or mesh
  port) balanced to its address are forgotten (``conntrack``: filtered by
  the kernel, so it costs the same however much other UDP, VXLAN's own
  above all, the namespace tracks), so a client's next datagram is
  balanced anew.
- nftables through libnftables in this process (``table``): a change to
  one service costs ~0.6 ms in the kernel's transaction instead of ~13 ms
  for an ``nft`` process that reloads the table.

Invariants: everything is derived from the state (no local allocation);
programming is idempotent and touches only what differs, so a restarted
agent leaves a correct overlay (and its connections) alone; nothing is
removed before the state has arrived; ``remove_all`` leaves no device,
rule, table or nft table behind. Errors are :class:`OverlayError` naming
the step and its arguments.
"""

from __future__ import annotations

from nodeagent.network.overlay.errors import OverlayError
from nodeagent.network.overlay.overlay import Overlay, remove_all

__all__ = ["Overlay", "OverlayError", "leftovers", "remove_all", "remove_here"]


def leftovers() -> list[str]:
    """One line per thing of the overlay's in this network namespace."""
    from nodeagent.network.overlay.links import Links
    from nodeagent.network.overlay.links import leftovers as link_leftovers
    from nodeagent.network.overlay.ruleset import FAMILY, TABLE
    from nodeagent.network.overlay.table import Nft

    links, nft = Links(), Nft()
    try:
        found = link_leftovers(links)
        if nft.exists():
            found.append(f"nft table {FAMILY} {TABLE}")
    finally:
        links.close()
        nft.close()
    return found


def remove_here() -> None:
    """Remove everything the overlay added to this network namespace."""
    from nodeagent.network.overlay.links import Links
    from nodeagent.network.overlay.table import Nft

    links, nft = Links(), Nft()
    try:
        remove_all(links, nft)
    finally:
        links.close()
        nft.close()
