"""The veth pair joining a container to the bridge.

The host end is named ``cfg.host_veth``, enslaved to the bridge and up; the
peer is created directly inside the container's network namespace (addressed
by a pid living in it) as ``eth0``, so it never appears on the host under a
name that could collide. The container side configures ``eth0`` itself (see
``inside.py``).

Invariant: ``detach`` is idempotent; deleting the host end deletes the peer.
"""

from __future__ import annotations

import errno
from typing import Any

from pyroute2.netlink.exceptions import NetlinkError

from nodeagent.errors import InvalidArgument
from nodeagent.network._netlink import index_of, netlink_step
from nodeagent.network.names import IFNAMSIZ
from nodeagent.runtime.spec import NetworkConfig

CONTAINER_IFNAME = "eth0"


def attach_veth(ipr: Any, cfg: NetworkConfig, pid: int) -> None:
    """Create the pair: host end in ``cfg.bridge`` and up, peer ``eth0`` in pid's netns."""
    if not cfg.host_veth or len(cfg.host_veth) > IFNAMSIZ:
        raise InvalidArgument(f"host veth name {cfg.host_veth!r} must be 1..{IFNAMSIZ} chars")
    bridge = index_of(ipr, cfg.bridge)
    if bridge is None:
        raise InvalidArgument(f"bridge {cfg.bridge!r} does not exist; ensure the network first")
    args = {"ifname": cfg.host_veth, "bridge": cfg.bridge, "pid": pid}
    with netlink_step("veth_create", args):
        # One request: the kernel creates both ends, moves the peer into the
        # target namespace, enslaves the host end and brings it up.
        ipr.link(
            "add",
            ifname=cfg.host_veth,
            kind="veth",
            peer={"ifname": CONTAINER_IFNAME, "net_ns_pid": pid},
            master=bridge,
            state="up",
        )


def detach_veth(ipr: Any, cfg: NetworkConfig) -> None:
    """Delete the host end if it is still there (it vanishes with the netns)."""
    if not cfg.host_veth:
        return
    index = index_of(ipr, cfg.host_veth)
    if index is None:
        return
    with netlink_step("veth_delete", {"ifname": cfg.host_veth}):
        try:
            ipr.link("del", index=index)
        except NetlinkError as exc:
            if exc.code != errno.ENODEV:  # gone with its namespace since the lookup
                raise
