"""The network part of PID 1's plan (``init.entries``), the spec's overlay
attachments on disk (``ContainerSpec.to_dict``/``from_dict``) and the /etc
files they imply: pure encoding, no kernel."""

from __future__ import annotations

from typing import Any

import pytest

from common.errors import InvalidArgument
from nodeagent.runtime import bundle, init
from nodeagent.runtime.process import ProcessPlan
from nodeagent.runtime.rootfs import RootfsPlan
from nodeagent.runtime.spec import (
    ContainerSpec,
    NetworkAttachment,
    NetworkConfig,
    ProcessSpec,
    RootfsSpec,
)

CID = "ab" * 32


def att(k: int, address: str, prefixlen: int = 24) -> NetworkAttachment:
    return NetworkAttachment(network_id=f"id{k}", network_name=f"net{k}", address=address,
                             prefixlen=prefixlen, ifname=f"eth{k}", host_veth=f"vn{CID[:10]}{k}",
                             aliases=[f"alias{k}"])


def bridge(*attachments: NetworkAttachment) -> NetworkConfig:
    return NetworkConfig(mode="bridge", bridge="orch0", address="10.88.0.5", prefixlen=16,
                         gateway="10.88.0.1", host_veth="vo" + CID[:10], attachments=list(attachments))


def plan_entries(network: NetworkConfig) -> list[tuple[str, Any]]:
    plan = init.InitPlan(
        unshare_flags=init.unshare_flags(network.mode),
        rootfs=RootfsPlan(staging="/s", overlay_data="o", readonly=False, hostname="h",
                          etc_files={}, masked_paths=(), readonly_paths=()),
        process=ProcessPlan(args=["true"], env={}, cwd="/", user="", cap_mask=0, cap_drop=[],
                            no_new_privs=True, seccomp=None, rlimits=[], stdio=(None, None, None),
                            report_fd=9),
        network=network, control_fd=8, cgroup_files=[], runtime_pid=0)
    return [(k, v) for k, v in init.entries(plan)
            if k in ("net", "ifname", "address", "netmask", "gateway", "link")]


def test_bridge_with_networks_has_eth0_then_one_link_per_network_in_order() -> None:
    entries = plan_entries(bridge(att(1, "10.96.5.3"), att(2, "10.97.0.9", 16)))
    assert entries == [("net", "bridge"), ("ifname", "eth0"), ("address", "10.88.0.5"),
                       ("netmask", entries[3][1]), ("gateway", "10.88.0.1"),
                       ("link", "eth1 10.96.5.3 24"), ("link", "eth2 10.97.0.9 16")]
    assert str(entries[3][1]) == "255.255.0.0"


def test_no_networks_no_links() -> None:
    assert [k for k, _ in plan_entries(bridge())] == ["net", "ifname", "address", "netmask", "gateway"]
    assert plan_entries(NetworkConfig(mode="none")) == [("net", "none")]
    assert plan_entries(NetworkConfig(mode="host")) == [("net", "host")]


def test_none_with_a_network_has_the_link_alone() -> None:
    cfg = NetworkConfig(mode="none", attachments=[att(1, "10.96.5.3")])
    assert plan_entries(cfg) == [("net", "none"), ("link", "eth1 10.96.5.3 24")]


def test_a_bridge_config_without_an_address_is_refused() -> None:
    with pytest.raises(InvalidArgument):
        plan_entries(NetworkConfig(mode="bridge", attachments=[att(1, "10.96.5.3")]))


@pytest.mark.parametrize(("network", "attached"), [
    (NetworkConfig(mode="bridge"), True),
    (NetworkConfig(mode="none"), False),
    (NetworkConfig(mode="host"), False),
    (NetworkConfig(mode="none", attachments=[att(1, "10.96.5.3")]), True),
])
def test_attached_means_links_and_dns_sockets_of_its_own(network: NetworkConfig, attached: bool) -> None:
    assert network.attached is attached


def spec_with(network: NetworkConfig) -> ContainerSpec:
    return ContainerSpec(id=CID, name="c", hostname="box", bundle_dir="/b",
                         rootfs=RootfsSpec(lower_dirs=["/l"]), process=ProcessSpec(args=["true"]),
                         network=network)


def test_attachments_survive_the_record_on_disk() -> None:
    spec = spec_with(bridge(att(1, "10.96.5.3"), att(2, "10.97.0.9", 16)))
    again = ContainerSpec.from_dict(spec.to_dict())
    assert again == spec
    assert isinstance(again.network.attachments[0], NetworkAttachment)
    # A record written before overlay networks existed reads as having none.
    data = spec.to_dict()
    del data["network"]["attachments"]
    assert ContainerSpec.from_dict(data).network.attachments == []


@pytest.mark.parametrize(("network", "resolv"), [
    (bridge(), "nameserver 127.0.0.11\noptions ndots:0\n"),
    (NetworkConfig(mode="none", attachments=[att(1, "10.96.5.3")]),
     "nameserver 127.0.0.11\noptions ndots:0\n"),
    (NetworkConfig(mode="none"), ""),
    (NetworkConfig(mode="bridge", dns=["192.0.2.53"]), "nameserver 192.0.2.53\n"),
])
def test_resolv_conf_points_at_the_node_dns_server(network: NetworkConfig, resolv: str) -> None:
    assert bundle.resolv_conf(spec_with(network)) == resolv


def test_host_networking_keeps_the_hosts_resolv_conf(tmp_path: Any, monkeypatch: Any) -> None:
    host = tmp_path / "resolv.conf"
    host.write_text("nameserver 127.0.0.53\nsearch example.org\n")
    monkeypatch.setattr(bundle, "HOST_RESOLV_CONF", str(host))
    assert bundle.resolv_conf(spec_with(NetworkConfig(mode="host"))) == host.read_text()


def test_hosts_names_the_container_by_its_first_address() -> None:
    assert "10.88.0.5\tbox" in bundle.hosts_file(spec_with(bridge(att(1, "10.96.5.3"))))
    none = NetworkConfig(mode="none", attachments=[att(1, "10.96.5.3")])
    assert "10.96.5.3\tbox" in bundle.hosts_file(spec_with(none))
