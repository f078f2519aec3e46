"""One bridge network on this host: the facade the supervisor uses.

Ties together the address pool (``ipam``), the bridge (``bridge``), the veth
pairs (``veth``) and the nft table (``nftables``, ``ports``). Lifecycle::

    ensure()                       bridge + gateway + nft table (idempotent)
    allocate(id) -> cfg            lease persisted under state_dir
    attach(cfg, pid)               parent side, once the child's net ns exists
                                   (eth0's veth; the overlay networks' too, see veth)
    inside.container_side(cfg)     what the container's init sets up inside
    publish(id, cfg)               DNAT for cfg.ports
    unpublish(id); detach(cfg); release(id)
    teardown()                     bridge, nft table and lease file removed

Nothing host-wide is changed: ``ip_forward`` is left as found (host-local
access to published ports does not need it), the only sysctls written are the
bridge's own ``route_localnet`` and the overlay host ends' own (``veth``),
which disappear with their links.
"""

from __future__ import annotations

import sys

from common.errors import InvalidArgument, SetupError
from nodeagent.network import nftables, ports, veth
from nodeagent.network.ipam import LeaseFile, gateway_of, parse_subnet
from nodeagent.network.names import IFNAMSIZ, host_veth_name
from nodeagent.network.rtnl import LinkSocket
from nodeagent.runtime.spec import NetworkConfig


class BridgeNetwork:
    def __init__(self, state_dir: str, bridge: str = "orch0", subnet: str = "10.88.0.0/16") -> None:
        if not bridge or len(bridge) > IFNAMSIZ or "/" in bridge:
            raise InvalidArgument(f"bad bridge name {bridge!r} (1..{IFNAMSIZ} chars, no '/')")
        self.bridge = bridge
        self.subnet = parse_subnet(subnet)
        self.gateway = str(gateway_of(self.subnet))
        self.leases = LeaseFile(state_dir, bridge, self.subnet)
        self._ensured = False
        self._links: LinkSocket | None = None  # the per-container veth requests
        self.protected: list[int] = []  # orch's ports on this node (see protect)

    def _link_socket(self) -> LinkSocket:
        if self._links is None:
            self._links = LinkSocket()
        return self._links

    def ensure(self) -> None:
        """Bridge up with the gateway address, nft table with isolation; idempotent.
        Done once per process (every container create calls it)."""
        if self._ensured:
            return
        run_bridge_helper("ensure", self.bridge, self.gateway, str(self.subnet.prefixlen))
        nftables.ensure_table(self.bridge)
        self._ensured = True

    def allocate(self, container_id: str) -> NetworkConfig:
        with self.leases.locked() as pool:
            address = pool.allocate(container_id)
        return NetworkConfig(
            mode="bridge",
            bridge=self.bridge,
            address=str(address),
            prefixlen=self.subnet.prefixlen,
            gateway=self.gateway,
            host_veth=host_veth_name(container_id),
        )

    def release(self, container_id: str) -> None:
        with self.leases.locked() as pool:
            pool.release(container_id)

    def attach(self, cfg: NetworkConfig, pid: int) -> None:
        """The container's links, once its net ns exists: ``eth0`` on the
        bridge (bridge mode), then one ``ethK`` per overlay network."""
        links = self._link_socket()
        if cfg.mode == "bridge":
            veth.attach_veth(links, cfg, pid)
        for att in cfg.attachments:
            veth.attach_overlay(links, att, pid)

    def detach(self, cfg: NetworkConfig) -> None:
        """Delete whatever of the container's links is still there (each
        overlay one takes its /32 route and settings with it); idempotent."""
        links = self._link_socket()
        veth.detach_veth(links, cfg)
        for att in cfg.attachments:
            veth.detach_overlay(links, att)

    def protect(self, ports: list[int]) -> None:
        """Fence ``ports`` off from containers on any local address (orch's
        own: the node API, and the control plane's and etcd's); they cannot
        be published either."""
        self.ensure()
        nftables.protect_ports(self.bridge, ports)
        self.protected = sorted(set(ports))

    def publish(self, container_id: str, cfg: NetworkConfig) -> None:
        if not cfg.ports:
            return
        if not cfg.address:
            raise InvalidArgument("cannot publish ports of a container without an address")
        reserved = sorted({p.host_port for p in cfg.ports if p.protocol == "tcp"} & set(self.protected))
        if reserved:
            raise InvalidArgument(f"host port {reserved[0]}/tcp is reserved for orch on this node; "
                                  "publish another port")
        # The lease lock also serialises publishers, so the conflict check
        # and the rule insertion are one step for concurrent callers.
        with self.leases.locked():
            ports.publish(self.bridge, container_id, cfg.address, cfg.ports)

    def unpublish(self, container_id: str) -> None:
        with self.leases.locked():
            ports.unpublish(self.bridge, container_id)

    def teardown(self) -> None:
        """Remove the bridge, the nft table and the lease file: nothing left."""
        nftables.delete_table(self.bridge)
        run_bridge_helper("teardown", self.bridge)
        self.leases.remove()
        self._ensured = False
        if self._links is not None:
            self._links.close()
            self._links = None


def run_bridge_helper(*argv: str) -> None:
    """Run ``nodeagent.network.bridge`` (``ensure NAME GATEWAY PREFIXLEN`` or
    ``teardown NAME``) in its own process, so pyroute2 never loads here; its
    failure is raised here as the helper's ``SetupError``."""
    import subprocess  # not at import: the supervisor clones itself per container

    from nodeagent.runtime import channel

    proc = subprocess.run([sys.executable, "-m", "nodeagent.network.bridge", *argv],
                          capture_output=True)
    if proc.returncode == 0:
        return
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(b"E"):
            raise channel.to_setup_error(line)
    detail = proc.stderr.decode(errors="replace").strip().splitlines()
    raise SetupError(f"bridge_{argv[0]}", list(argv[1:]),
                     detail[-1] if detail else f"helper exited with {proc.returncode}")
