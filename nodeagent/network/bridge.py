"""The host bridge: a Linux bridge carrying the gateway address.

``ensure_bridge`` is idempotent: it creates what is missing and leaves what is
already right. ``route_localnet`` is set on the bridge only (a per-device
sysctl that disappears with the device), so packets DNAT'ed from 127.0.0.1 may
leave through it; no host-wide sysctl is touched.

Runs as a one-shot helper process (``python -m nodeagent.network.bridge``),
never inside the supervisor: the bridge is set up once per node, and pyroute2
(~15 MB with what it imports) would otherwise sit in the supervisor for good,
where every container's clone copies its page tables. A failure is printed as
one report line (:mod:`nodeagent.runtime.channel`'s ``E{step, args, ...}``)
and exit status 1; :func:`run_helper` turns it back into the ``SetupError``.

Invariant: after ``teardown_bridge`` no link named ``name`` exists.
"""

from __future__ import annotations

import contextlib
import errno
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

from nodeagent.errors import SetupError
from nodeagent.network._netlink import index_of
from nodeagent.network._netlink import netlink_step as _os_step


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
            except Exception as exc:
                if getattr(exc, "code", None) != errno.ENODEV:  # already gone with its namespace
                    raise
    with netlink_step("bridge_delete", {"ifname": name}):
        ipr.link("del", index=index)


@contextlib.contextmanager
def netlink_step(step: str, args: Any) -> Iterator[None]:
    """As :func:`nodeagent.network._netlink.netlink_step`, for pyroute2's errors too."""
    from pyroute2.netlink.exceptions import NetlinkError

    try:
        with _os_step(step, args):
            yield
    except NetlinkError as exc:
        raise SetupError(step, args, str(exc.args[1] if len(exc.args) > 1 else exc), exc.code)


def run_helper(*argv: str) -> None:
    """Run ``ensure NAME GATEWAY PREFIXLEN`` or ``teardown NAME`` in a helper
    process; its failure is raised here as the helper's ``SetupError``."""
    from nodeagent.runtime import channel

    proc = subprocess.run([sys.executable, "-m", __name__, *argv], capture_output=True)
    if proc.returncode == 0:
        return
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(b"E"):
            raise channel.to_setup_error(line)
    detail = proc.stderr.decode(errors="replace").strip().splitlines()
    raise SetupError(f"bridge_{argv[0]}", list(argv[1:]),
                     detail[-1] if detail else f"helper exited with {proc.returncode}")


def main(argv: list[str]) -> int:
    from pyroute2 import IPRoute

    from nodeagent.runtime import channel

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
        sys.stdout.buffer.write(channel.error_message(f"bridge_{argv[0] if argv else 'helper'}", exc) + b"\n")
        return 1
    return 0


def set_device_sysctl(ifname: str, key: str, value: str) -> None:
    path = f"/proc/sys/net/ipv4/conf/{ifname}/{key}"
    with netlink_step("sysctl", {"path": path, "value": value}), open(path, "w") as f:
        f.write(value)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
