"""The bridge's nftables table: one ``inet`` table per bridge holds every rule
this package installs, so teardown is a single ``delete table``.

Layout of ``table inet orch_<bridge>``::

    chain prerouting   nat, dstnat   published ports (packets from elsewhere)
    chain output       nat, dstnat   published ports (connections from this host)
    chain postrouting  nat, srcnat   masquerade 127.0.0.0/8 sources leaving via the bridge
    chain forward      filter        isolation: nothing is forwarded between the
                                     bridge and any other interface, except
                                     connections to published ports (DNAT'd:
                                     other hosts reach them where the host
                                     forwards, as cluster nodes do) and the
                                     replies of routing-mesh connections
                                     another node sent to a task here (see
                                     below)
    chain guard        filter, input orch's own ports: connections from the bridge
                                     to any local address on a port in the set
                                     ``orch_ports`` (the node API, and the control
                                     plane's and etcd's where they share the
                                     host) are refused, and so is anything sent
                                     from the bridge to 127.0.0.0/8 (the bridge
                                     has route_localnet, and a container with
                                     CAP_NET_RAW could forge such packets)
    set orch_ports     inet_service  filled by ``protect_ports``

The routing mesh (``nodeagent.network.overlay``) keeps a client's address:
a node that takes a connection on a published port DNATs it to a task on
another node, over the overlay, without SNAT. There the task answers through
its default route, ``eth0`` on this bridge, to the client's address; the
overlay marks that connection (``ct mark``, tagged ``MESH_MARK_TAG`` under
``MESH_MARK_MASK``) and policy-routes its replies back to the node that took
it, and the forward chain here lets such replies (and only those) leave the
bridge.

Invariants: ``ensure_table`` is idempotent (the fixed chains are flushed and
refilled in the same atomic batch); published-port rules live only in
``prerouting``/``output`` and are never touched by it. There is deliberately no
outbound masquerade: container subnets never route out through the uplink. The
``inet`` family makes the isolation cover IPv6 as well.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from common.errors import SetupError

if TYPE_CHECKING:
    import subprocess

NFT = "nft"
FAMILY = "inet"

# The ct mark of a connection the routing mesh of another node sent here
# over the overlay: MESH_MARK_TAG in the bits of MESH_MARK_MASK (the rest
# says which node and network: nodeagent.network.overlay.addressing).
MESH_MARK_MASK = 0xF0000000
MESH_MARK_TAG = 0x40000000


def table_name(bridge: str) -> str:
    return "orch_" + re.sub(r"[^A-Za-z0-9_]", "_", bridge)


def _nft(args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``nft ARGS`` and return the completed process (text output)."""
    import subprocess  # not at import: a supervisor without published ports never needs it

    return subprocess.run([NFT, *args], input=stdin, capture_output=True, text=True)


def run_nft(script: str, step: str = "nft") -> None:
    """Apply ``script`` as one atomic batch (``nft -f -``)."""
    proc = _nft(["-f", "-"], script)
    if proc.returncode != 0:
        raise SetupError(step, {"cmd": "nft -f -", "script": script}, proc.stderr.strip())


def list_rules(table: str, chain: str) -> list[dict[str, Any]]:
    """The rules of one chain as nft JSON objects (with ``handle``); [] if absent."""
    args = ["-j", "list", "chain", FAMILY, table, chain]
    proc = _nft(args)
    if proc.returncode != 0:
        if "No such file or directory" in proc.stderr:
            return []
        raise SetupError("nft_list", {"cmd": " ".join([NFT, *args])}, proc.stderr.strip())
    items = json.loads(proc.stdout).get("nftables", [])
    return [item["rule"] for item in items if "rule" in item]


def table_exists(table: str) -> bool:
    return _nft(["list", "table", FAMILY, table]).returncode == 0


def ensure_table(bridge: str) -> None:
    """Create the table and its chains; (re)write isolation and masquerade."""
    t = table_name(bridge)
    br = json.dumps(bridge)  # a quoted nft string
    run_nft(
        f"""
add table {FAMILY} {t}
add chain {FAMILY} {t} prerouting {{ type nat hook prerouting priority dstnat; policy accept; }}
add chain {FAMILY} {t} output {{ type nat hook output priority -100; policy accept; }}
add chain {FAMILY} {t} postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}
add chain {FAMILY} {t} forward {{ type filter hook forward priority filter; policy accept; }}
flush chain {FAMILY} {t} postrouting
flush chain {FAMILY} {t} forward
add rule {FAMILY} {t} postrouting meta nfproto ipv4 ip saddr 127.0.0.0/8 oifname {br} masquerade
add rule {FAMILY} {t} forward ct status dnat accept comment "orch published ports"
add rule {FAMILY} {t} forward iifname {br} ct direction reply ct mark and {MESH_MARK_MASK:#x} == \
{MESH_MARK_TAG:#x} accept comment "orch routing mesh replies"
add rule {FAMILY} {t} forward iifname {br} oifname != {br} drop comment "orch isolation out"
add rule {FAMILY} {t} forward oifname {br} iifname != {br} drop comment "orch isolation in"
add set {FAMILY} {t} orch_ports {{ type inet_service; }}
add chain {FAMILY} {t} guard {{ type filter hook input priority filter; policy accept; }}
flush chain {FAMILY} {t} guard
add rule {FAMILY} {t} guard iifname {br} ct direction original meta nfproto ipv4 ip daddr 127.0.0.0/8 \
drop comment "orch: no loopback from containers"
add rule {FAMILY} {t} guard iifname {br} ct direction original tcp dport @orch_ports \
reject with tcp reset comment "orch: containers never reach orch's ports"
add rule {FAMILY} {t} guard iifname {br} ct direction original udp dport @orch_ports \
drop comment "orch: containers never reach orch's ports (UDP: the control plane's beacons)"
""",
        step="nft_ensure_table",
    )


def protect_ports(bridge: str, ports: list[int]) -> None:
    """Make ``ports`` the set the guard chain refuses (atomically replaced)."""
    t = table_name(bridge)
    elements = ", ".join(str(int(p)) for p in sorted(set(ports)))
    script = f"flush set {FAMILY} {t} orch_ports\n"
    if elements:
        script += f"add element {FAMILY} {t} orch_ports {{ {elements} }}\n"
    run_nft(script, step="nft_protect_ports")


def protected_ports(bridge: str) -> list[int]:
    """The ports in the guard's set ([] without the table)."""
    proc = _nft(["-j", "list", "set", FAMILY, table_name(bridge), "orch_ports"])
    if proc.returncode != 0:
        return []
    for item in json.loads(proc.stdout).get("nftables", []):
        if "set" in item:
            return sorted(int(e) for e in item["set"].get("elem", []) if isinstance(e, int))
    return []


def delete_table(bridge: str) -> None:
    t = table_name(bridge)
    if table_exists(t):
        run_nft(f"delete table {FAMILY} {t}\n", step="nft_delete_table")
