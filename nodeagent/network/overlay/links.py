"""The overlay's links, FDB and neighbour entries, routes and policy rules in
the node's namespace, through pyroute2 (one ``IPRoute`` socket, used by one
thread at a time).

:meth:`Links.read` reads what the kernel has (every ``vx-*`` VXLAN device,
its addresses, subnet route, permanent FDB and neighbour entries, and the
mesh's rules and tables) into :class:`KernelNet`/:class:`KernelState`;
:meth:`Links.sync_network` and :meth:`Links.sync_returns` change only what
differs from a plan, so running them twice changes nothing the second time,
and a device whose parameters are right is never recreated (its
neighbours, and the connections through it, stay).
"""

from __future__ import annotations

import contextlib
import errno
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from nodeagent.network.overlay.addressing import (
    MAC_PREFIX,
    MESH_MARK_MASK,
    MESH_MARK_TAG,
    RULE_END,
    RULE_GATE,
    RULE_MESH,
    VX_PREFIX,
    VXLAN_OVERHEAD,
    VXLAN_PORT,
    is_mesh_mark,
)
from nodeagent.network.overlay.errors import OverlayError
from nodeagent.network.overlay.plan import LinkPlan

__all__ = ["KernelNet", "KernelState", "Links", "Underlay", "leftovers"]

NUD_PERMANENT = 0x80
NTF_SELF = 0x02
RTNH_F_ONLINK = 0x4
RT_SCOPE_LINK = 253
RTPROT_STATIC = 4
RT_TABLE_MAIN = 254
FR_ACT_TO_TBL = 1
FR_ACT_GOTO = 2
FR_ACT_NOP = 3
FIB_RULE_INVERT = 0x2
DEFAULT_MTU = 1500


@dataclass(frozen=True)
class Underlay:
    """This node's underlay address and what it says about the devices:
    the MTU of the interface carrying it (VXLAN devices get 50 less), and
    whether it may be a source address for the node's own overlay traffic
    (it is on a real interface: not loopback, as a one-node cluster's is)."""

    address: str
    mtu: int = DEFAULT_MTU
    prefsrc: bool = False

    @property
    def vx_mtu(self) -> int:
        return self.mtu - VXLAN_OVERHEAD


@dataclass
class KernelNet:
    """One ``vx-*`` device as the kernel has it."""

    name: str
    index: int
    vni: int = 0
    local: str = ""
    port: int = 0
    learning: bool = True
    proxy: bool = False
    mac: str = ""
    mtu: int = 0
    up: bool = False
    addresses: set[str] = field(default_factory=set)  # "a/len"
    routes: dict[str, str] = field(default_factory=dict)  # main-table dst "a/len" -> prefsrc ("" none)
    fdb: dict[str, str] = field(default_factory=dict)  # MAC -> remote underlay address
    neigh: dict[str, str] = field(default_factory=dict)  # address -> MAC (permanent ones)

    @classmethod
    def of_plan(cls, plan: LinkPlan, index: int, under: Underlay) -> KernelNet:
        """What ``sync_network`` left the device as."""
        return cls(name=plan.name, index=index, vni=plan.vni, local=plan.local, port=VXLAN_PORT,
                   learning=False, proxy=True, mac=plan.mac, mtu=under.vx_mtu, up=True,
                   addresses={f"{plan.router}/32"}, routes={plan.subnet: _prefsrc(plan, under)},
                   fdb=dict(plan.fdb), neigh=dict(plan.neigh))


@dataclass
class KernelState:
    nets: dict[str, KernelNet] = field(default_factory=dict)  # by device name
    returns: dict[int, tuple[str, str]] = field(default_factory=dict)  # mark -> (gateway, device)
    rules: set[int] = field(default_factory=set)  # marks with a rule at RULE_MESH
    gate: bool = False  # both gate rules exist


def _prefsrc(plan: LinkPlan, under: Underlay) -> str:
    return plan.local if under.prefsrc else ""


class Links:
    def __init__(self) -> None:
        from pyroute2 import IPRoute

        self.ipr: Any = IPRoute()

    def close(self) -> None:
        self.ipr.close()

    # ---- reading ---------------------------------------------------------------

    def underlay(self, address: str) -> Underlay:
        """What the interface holding ``address`` says (see :class:`Underlay`)."""
        for addr in self.ipr.get_addr(family=socket.AF_INET):
            if addr.get_attr("IFA_LOCAL") != address and addr.get_attr("IFA_ADDRESS") != address:
                continue
            links = self.ipr.get_links(addr["index"])
            if not links:
                break
            link = links[0]
            if link["flags"] & 0x8:  # IFF_LOOPBACK
                return Underlay(address)
            return Underlay(address, int(link.get_attr("IFLA_MTU") or DEFAULT_MTU), prefsrc=True)
        return Underlay(address)

    def read(self) -> KernelState:
        state = KernelState()
        for link in self.ipr.get_links():
            name = link.get_attr("IFLA_IFNAME") or ""
            if name.startswith(VX_PREFIX) and _kind(link) == "vxlan":
                state.nets[name] = self._read_net(link, name)
        marks: set[int] = set()
        gate = end = False
        for rule in self.ipr.get_rules(family=socket.AF_INET):
            prio = rule.get_attr("FRA_PRIORITY")
            mark = rule.get_attr("FRA_FWMARK") or 0
            if prio == RULE_MESH and is_mesh_mark(mark):
                state.rules.add(mark)
                marks.add(mark)
            elif prio == RULE_GATE and rule["action"] == FR_ACT_GOTO and mark == MESH_MARK_TAG:
                gate = True
            elif prio == RULE_END and rule["action"] == FR_ACT_NOP:
                end = True
        state.gate = gate and end
        names = {n.index: n.name for n in state.nets.values()}
        for mark in marks:
            for route in self.ipr.get_routes(family=socket.AF_INET, table=mark):
                if route["dst_len"] == 0:
                    state.returns[mark] = (route.get_attr("RTA_GATEWAY") or "",
                                           names.get(route.get_attr("RTA_OIF"), "?"))
        return state

    def _read_net(self, link: Any, name: str) -> KernelNet:
        data = link.get_nested("IFLA_LINKINFO", "IFLA_INFO_DATA")
        net = KernelNet(name=name, index=link["index"], mac=str(link.get_attr("IFLA_ADDRESS") or ""),
                        mtu=int(link.get_attr("IFLA_MTU") or 0), up=bool(link["flags"] & 0x1))
        if data is not None:
            net.vni = int(data.get_attr("IFLA_VXLAN_ID") or 0)
            net.local = str(data.get_attr("IFLA_VXLAN_LOCAL") or "")
            net.port = int(data.get_attr("IFLA_VXLAN_PORT") or 0)
            net.learning = bool(data.get_attr("IFLA_VXLAN_LEARNING"))
            net.proxy = bool(data.get_attr("IFLA_VXLAN_PROXY"))
        for addr in self.ipr.get_addr(family=socket.AF_INET, index=net.index):
            net.addresses.add(f"{addr.get_attr('IFA_ADDRESS')}/{addr['prefixlen']}")
        for route in self.ipr.get_routes(family=socket.AF_INET, table=RT_TABLE_MAIN, oif=net.index):
            if route["type"] == 1 and route.get_attr("RTA_DST"):  # unicast
                dst = f"{route.get_attr('RTA_DST')}/{route['dst_len']}"
                net.routes[dst] = str(route.get_attr("RTA_PREFSRC") or "")
        for entry in self.ipr.fdb("dump", ifindex=net.index):
            mac, dst = entry.get_attr("NDA_LLADDR"), entry.get_attr("NDA_DST")
            if entry["ifindex"] == net.index and mac and dst and entry["state"] & NUD_PERMANENT:
                net.fdb[str(mac)] = str(dst)
        for entry in self.ipr.get_neighbours(family=socket.AF_INET, ifindex=net.index):
            mac, dst = entry.get_attr("NDA_LLADDR"), entry.get_attr("NDA_DST")
            if entry["state"] & NUD_PERMANENT and mac and dst:
                net.neigh[str(dst)] = str(mac)
        return net

    # ---- changing --------------------------------------------------------------

    def sync_network(self, plan: LinkPlan, current: KernelNet | None, under: Underlay) -> KernelNet:
        """Make the device of ``plan`` match it; returns what it is now."""
        if current is not None and not _same_device(current, plan):
            self.delete_net(current)
            current = None
        if current is None:
            current = self._create(plan, under)
        idx, args = current.index, {"ifname": plan.name}
        if current.mtu != under.vx_mtu:
            with _step("vxlan_mtu", {**args, "mtu": under.vx_mtu}):
                self.ipr.link("set", index=idx, mtu=under.vx_mtu)
        if not current.up:
            with _step("vxlan_up", args):
                self.ipr.link("set", index=idx, state="up")
        router = f"{plan.router}/32"
        for stale in sorted(current.addresses - {router}):
            address, _, prefixlen = stale.partition("/")
            with _step("vxlan_address_delete", {**args, "address": stale}), _gone_ok():
                self.ipr.addr("del", index=idx, address=address, prefixlen=int(prefixlen))
        if router not in current.addresses:
            with _step("vxlan_address", {**args, "address": router}):
                self.ipr.addr("add", index=idx, address=plan.router, prefixlen=32, scope=RT_SCOPE_LINK)
        self._sync_routes(plan, current, under)
        self._sync_fdb(plan, current)
        self._sync_neigh(plan, current)
        return KernelNet.of_plan(plan, idx, under)

    def _create(self, plan: LinkPlan, under: Underlay) -> KernelNet:
        args = {"ifname": plan.name, "vni": plan.vni, "local": plan.local, "mac": plan.mac}
        with _step("vxlan_create", args):
            self.ipr.link("add", ifname=plan.name, kind="vxlan", vxlan_id=plan.vni,
                          vxlan_local=plan.local, vxlan_port=VXLAN_PORT, vxlan_learning=0,
                          vxlan_proxy=1, address=plan.mac, mtu=under.vx_mtu)
        index = self.ipr.link_lookup(ifname=plan.name)
        if not index:
            raise OverlayError("vxlan_create", args, "the device vanished after creation")
        # Before it is up: no IPv6 link-local address (nothing floods, and
        # the overlay is IPv4); loopback clients of the mesh may leave
        # through it (masqueraded); it forwards.
        _sysctl(f"ipv6/conf/{plan.name}/disable_ipv6", "1", missing_ok=True)
        _sysctl(f"ipv4/conf/{plan.name}/route_localnet", "1")
        _sysctl(f"ipv4/conf/{plan.name}/forwarding", "1")
        return KernelNet(name=plan.name, index=index[0], vni=plan.vni, local=plan.local,
                         port=VXLAN_PORT, learning=False, proxy=True, mac=plan.mac, mtu=under.vx_mtu)

    def _sync_routes(self, plan: LinkPlan, current: KernelNet, under: Underlay) -> None:
        args = {"ifname": plan.name, "subnet": plan.subnet}
        for dst in sorted(set(current.routes) - {plan.subnet}):
            with _step("route_delete", {**args, "dst": dst}), _gone_ok():
                self.ipr.route("del", dst=dst, oif=current.index, table=RT_TABLE_MAIN)
        prefsrc = _prefsrc(plan, under)
        if current.routes.get(plan.subnet) != prefsrc:
            extra = {"prefsrc": prefsrc} if prefsrc else {}
            with _step("route", {**args, **extra}):
                self.ipr.route("replace", dst=plan.subnet, oif=current.index, scope=RT_SCOPE_LINK,
                               proto=RTPROT_STATIC, table=RT_TABLE_MAIN, **extra)

    def _sync_fdb(self, plan: LinkPlan, current: KernelNet) -> None:
        for mac, dst in sorted(current.fdb.items()):
            if plan.fdb.get(mac) != dst:
                with _step("fdb_delete", {"ifname": plan.name, "mac": mac, "dst": dst}), _gone_ok():
                    self.ipr.fdb("del", ifindex=current.index, lladdr=mac, dst=dst)
        for mac, dst in sorted(plan.fdb.items()):
            if current.fdb.get(mac) != dst:
                with _step("fdb_add", {"ifname": plan.name, "mac": mac, "dst": dst}):
                    self.ipr.fdb("append", ifindex=current.index, lladdr=mac, dst=dst,
                                 state=NUD_PERMANENT, flags=NTF_SELF)

    def _sync_neigh(self, plan: LinkPlan, current: KernelNet) -> None:
        for address in sorted(set(current.neigh) - set(plan.neigh)):
            with _step("neigh_delete", {"ifname": plan.name, "address": address}), _gone_ok():
                self.ipr.neigh("del", dst=address, ifindex=current.index)
        for address, mac in sorted(plan.neigh.items()):
            if current.neigh.get(address) != mac:
                with _step("neigh_add", {"ifname": plan.name, "address": address, "mac": mac}):
                    self.ipr.neigh("replace", dst=address, lladdr=mac, ifindex=current.index,
                                   state=NUD_PERMANENT)

    def delete_net(self, current: KernelNet) -> None:
        """The device, and with it its addresses, routes, FDB and neighbours."""
        with _step("vxlan_delete", {"ifname": current.name}), _gone_ok():
            self.ipr.link("del", index=current.index)

    def sync_returns(self, desired: Mapping[int, tuple[str, str]], state: KernelState) -> None:
        """Make the mesh's rules and tables (mark -> (gateway, device)) match
        ``desired``; ``state`` is updated to what they are now."""
        for mark in sorted(set(state.rules) | set(state.returns)):
            if mark not in desired:
                self._delete_return(mark)
                state.rules.discard(mark)
                state.returns.pop(mark, None)
        for mark, (gateway, dev) in sorted(desired.items()):
            args = {"mark": f"{mark:#x}", "gateway": gateway, "ifname": dev}
            if state.returns.get(mark) != (gateway, dev):
                with _step("mesh_route", args):
                    self.ipr.route("replace", dst="0.0.0.0/0", gateway=gateway, oif=_index(self.ipr, dev),
                                   table=mark, flags=RTNH_F_ONLINK, proto=RTPROT_STATIC)
                state.returns[mark] = (gateway, dev)
            if mark not in state.rules:
                with _step("mesh_rule", args):
                    self.ipr.rule("add", priority=RULE_MESH, fwmark=mark, fwmask=0xFFFFFFFF, table=mark,
                                  action=FR_ACT_TO_TBL)
                state.rules.add(mark)

    def _delete_return(self, mark: int) -> None:
        args = {"mark": f"{mark:#x}"}
        with _step("mesh_rule_delete", args), _gone_ok():
            self.ipr.rule("del", priority=RULE_MESH, fwmark=mark, fwmask=0xFFFFFFFF, table=mark,
                          action=FR_ACT_TO_TBL)
        with _step("mesh_route_delete", args), _gone_ok():
            self.ipr.route("del", dst="0.0.0.0/0", table=mark)

    def ensure_gate(self, state: KernelState) -> None:
        if state.gate:
            return
        self.remove_gate()
        with _step("mesh_gate", {"priority": RULE_GATE}):
            self.ipr.rule("add", priority=RULE_GATE, action=FR_ACT_GOTO, goto=RULE_END,
                          fwmark=MESH_MARK_TAG, fwmask=MESH_MARK_MASK, flags=FIB_RULE_INVERT)
            self.ipr.rule("add", priority=RULE_END, action=FR_ACT_NOP)
        state.gate = True

    def remove_gate(self) -> None:
        for rule in self.ipr.get_rules(family=socket.AF_INET):
            prio = rule.get_attr("FRA_PRIORITY")
            if (prio == RULE_GATE and rule["action"] == FR_ACT_GOTO) or (
                    prio == RULE_END and rule["action"] == FR_ACT_NOP):
                with _step("mesh_gate_delete", {"priority": prio}), _gone_ok():
                    self.ipr.rule("del", priority=prio, action=rule["action"],
                                  **({"goto": RULE_END, "fwmark": MESH_MARK_TAG, "fwmask": MESH_MARK_MASK,
                                      "flags": FIB_RULE_INVERT} if prio == RULE_GATE else {}))

    def remove_all(self) -> None:
        """Everything this package adds to the namespace."""
        state = self.read()
        self.sync_returns({}, state)
        self.remove_gate()
        for net in state.nets.values():
            if net.mac.startswith(MAC_PREFIX):
                self.delete_net(net)


def leftovers(links: Links) -> list[str]:
    """One line per thing of the overlay's still in the namespace."""
    state = links.read()
    out = [f"interface {name}" for name, net in sorted(state.nets.items()) if net.mac.startswith(MAC_PREFIX)]
    out += [f"ip rule fwmark {mark:#x} (priority {RULE_MESH})" for mark in sorted(state.rules)]
    out += [f"routing table {mark:#x}" for mark in sorted(state.returns)]
    if state.gate:
        out.append(f"ip rules at priorities {RULE_GATE} and {RULE_END}")
    return out


def _same_device(current: KernelNet, plan: LinkPlan) -> bool:
    """Whether the device can stay (parameters that cannot change in place)."""
    return (current.vni == plan.vni and current.local == plan.local and current.port == VXLAN_PORT
            and not current.learning and current.proxy and current.mac.lower() == plan.mac)


def _kind(link: Any) -> str:
    info = link.get_attr("IFLA_LINKINFO")
    return str(info.get_attr("IFLA_INFO_KIND")) if info is not None else ""


def _index(ipr: Any, name: str) -> int:
    found = ipr.link_lookup(ifname=name)
    if not found:
        raise OverlayError("link_lookup", {"ifname": name}, "no such device")
    return int(found[0])


def _sysctl(key: str, value: str, missing_ok: bool = False) -> None:
    path = f"/proc/sys/net/{key}"
    try:
        with open(path, "w") as f:
            f.write(value)
    except OSError as exc:
        if missing_ok and exc.errno == errno.ENOENT:
            return
        raise OverlayError("sysctl", {"path": path, "value": value}, exc.strerror or str(exc), exc.errno or 0)


@contextlib.contextmanager
def _step(step: str, args: Any) -> Iterator[None]:
    """A failed request as ``OverlayError(step, args, why, errno)``."""
    from pyroute2.netlink.exceptions import NetlinkError

    try:
        yield
    except NetlinkError as exc:
        detail = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
        raise OverlayError(step, args, detail, exc.code)
    except OSError as exc:
        raise OverlayError(step, args, exc.strerror or str(exc), exc.errno or 0)


@contextlib.contextmanager
def _gone_ok() -> Iterator[None]:
    """A delete of something already gone is done."""
    from pyroute2.netlink.exceptions import NetlinkError

    try:
        yield
    except NetlinkError as exc:
        if exc.code not in (errno.ENOENT, errno.ESRCH, errno.ENODEV, errno.EADDRNOTAVAIL):
            raise
