"""The host bridge: a Linux bridge carrying the gateway address.

``ensure_bridge`` is idempotent: it creates what is missing and leaves what is
already right. ``route_localnet`` is set on the bridge only (a per-device
sysctl that disappears with the device), so packets DNAT'ed from 127.0.0.1 may
leave through it; no host-wide sysctl is touched.

Runs as a one-shot helper process (``python -m nodeagent.network.bridge``),
never imported by the supervisor: the bridge is set up once per node, and
pyroute2 (~15 MB with what it imports) would otherwise sit in the supervisor
for good, where every container's clone copies its page tables. A failure is
printed as one report line (:mod:`nodeagent.runtime.channel`'s
``E{step, args, ...}``) and exit status 1; the parent side
(``bridge_network.run_bridge_helper``) turns it back into the ``SetupError``.

Invariant: after ``teardown_bridge`` no link named ``name`` exists.
"""

from __future__ import annotations

import contextlib
import errno
import sys
from collections.abc import Iterator
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from common.errors import SetupError
from nodeagent.network import _netlink
from nodeagent.network._netlink import index_of
from nodeagent.runtime import channel


def ensure_bridge(ipr: Any, name: str, gateway: str, prefixlen: int) -> int:
    """Bridge ``name`` up with ``gateway/prefixlen``; returns its index."""
    index = index_of(name)
    if index is None:
        with netlink_step("bridge_create", {"ifname": name}):
            ipr.link("add", ifname=name, kind="bridge")
        index = index_of(name)
        if index is None:
            raise SetupError("bridge_create", {"ifname": name}, "bridge vanished after creation")
    _ensure_address(ipr, index, name, gateway, prefixlen)
    set_device_sysctl(name, "route_localnet", "1")
    with netlink_step("bridge_up", {"ifname": name}):
        ipr.link("set", index=index, state="up")
    return index


def _ensure_address(ipr: Any, index: int, name: str, gateway: str, prefixlen: int) -> None:
    present = {
        (a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in ipr.get_addr(index=index, family=2)
    }
    if (gateway, prefixlen) in present:
        return
    with netlink_step("bridge_address", {"ifname": name, "address": f"{gateway}/{prefixlen}"}):
        ipr.addr("add", index=index, address=gateway, prefixlen=prefixlen)


def teardown_bridge(ipr: Any, name: str) -> None:
    """Delete the bridge's ports, then the bridge (address, routes and sysctls
    go with it). Ports are deleted because a bridge going away only releases
    them: a veth whose container was not detached would stay behind."""
    index = index_of(name)
    if index is None:
        return
    for port in ipr.get_links(master=index):
        ifname = port.get_attr("IFLA_IFNAME")
        with netlink_step("bridge_port_delete", {"ifname": ifname}):
            try:
                ipr.link("del", index=port["index"])
            except NetlinkError as exc:
                if exc.code != errno.ENODEV:  # already gone with its namespace
                    raise
    with netlink_step("bridge_delete", {"ifname": name}):
        ipr.link("del", index=index)


@contextlib.contextmanager
def netlink_step(step: str, args: Any) -> Iterator[None]:
    """As :func:`nodeagent.network._netlink.netlink_step`, for pyroute2's errors too."""
    try:
        with _netlink.netlink_step(step, args):
            yield
    except NetlinkError as exc:
        raise SetupError(step, args, str(exc.args[1] if len(exc.args) > 1 else exc), exc.code)


def main(argv: list[str]) -> int:
    try:
        with IPRoute() as ipr:
            if argv[:1] == ["ensure"] and len(argv) == 4:
                ensure_bridge(ipr, argv[1], argv[2], int(argv[3]))
            elif argv[:1] == ["teardown"] and len(argv) == 2:
                teardown_bridge(ipr, argv[1])
            else:
                raise SetupError("bridge_helper", argv, "usage: ensure NAME GATEWAY PREFIXLEN"
                                 " | teardown NAME")
    except Exception as exc:
        step = f"bridge_{argv[0] if argv else 'helper'}"
        sys.stdout.buffer.write(channel.error_message(step, exc) + b"\n")
        return 1
    return 0


def set_device_sysctl(ifname: str, key: str, value: str) -> None:
    path = f"/proc/sys/net/ipv4/conf/{ifname}/{key}"
    with netlink_step("sysctl", {"path": path, "value": value}), open(path, "w") as f:
        f.write(value)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
