"""``ContainerConfig.networks`` at the agent's edge (``specbuild``): the spec's
attachments, and every bad attachment refused with the network it names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from common.errors import InvalidArgument
from nodeagent.agent import specbuild
from nodeagent.images.model import Image, ImageConfig
from nodeagent.runtime.spec import ContainerSpec
from proto import agent_pb2 as pb


def _image() -> Image:
    return Image(id="sha256:" + "0" * 64, repo_tags=["busybox:latest"], manifest_digest="", created="",
                 size=0, config=ImageConfig(cmd=["sh"]), diff_ids=[])


def net(name: str, address: str, *aliases: str, network_id: str | None = None) -> pb.NetworkAttachmentConfig:
    return pb.NetworkAttachmentConfig(network_id=f"id-{name}" if network_id is None else network_id,
                                      network_name=name, address=address, aliases=list(aliases))


def build(tmp: Path, *networks: pb.NetworkAttachmentConfig, **fields: Any) -> ContainerSpec:
    cfg = pb.ContainerConfig(image="busybox", networks=list(networks), **fields)
    spec, _ = specbuild.build(cfg, _image(), [], str(tmp))
    return spec


def test_networks_become_eth1_eth2_in_their_order(tmp_path: Path) -> None:
    spec = build(tmp_path, net("front", "10.96.5.3/24", "web", "www", "web"),
                 net("back", "10.96.6.200/23"))
    first, second = spec.network.attachments
    assert (first.network_id, first.network_name, first.address, first.prefixlen, first.ifname) == (
        "id-front", "front", "10.96.5.3", 24, "eth1")
    assert first.aliases == ["web", "www"]  # once each, in order
    assert (second.address, second.prefixlen, second.ifname) == ("10.96.6.200", 23, "eth2")
    assert first.host_veth == "vn" + spec.id[:10] + "1" and second.host_veth.endswith("2")
    assert all(len(a.host_veth) <= 15 for a in spec.network.attachments)
    assert spec.network.mode == "bridge" and spec.network.dns == []


def test_network_none_may_join_networks_and_no_networks_pay_nothing(tmp_path: Path) -> None:
    assert build(tmp_path, net("front", "10.96.5.3/24"), network="none").network.attached
    plain = build(tmp_path, network="none")
    assert plain.network.attachments == [] and not plain.network.attached


@pytest.mark.parametrize(("networks", "fields", "message"), [
    ([net("front", "10.96.5.3/24")], {"network": "host"}, "not with network mode 'host'"),
    ([net(f"n{i}", f"10.96.{i}.3/24") for i in range(9)], {}, "too many networks: 9"),
    ([net("front", "10.96.5.3/24", network_id="")], {}, "network 1 (front): it needs a network_id"),
    ([net("front", "10.96.5.3")], {}, "invalid address '10.96.5.3' on network 1 (front)"),
    ([net("front", "10.96.5.3/33")], {}, "invalid address '10.96.5.3/33'"),
    ([net("front", "x/24")], {}, "invalid address 'x/24'"),
    ([net("front", "fd00::3/64")], {}, "expected IPv4 address/prefix"),
    ([net("front", "10.96.5.3/31")], {}, "the prefix must be 1 to 30"),
    ([net("front", "10.96.5.0/24")], {}, "not a host address of 10.96.5.0/24"),
    ([net("front", "10.96.5.255/24")], {}, "not a host address"),
    ([net("front", "127.0.0.11/8")], {}, "not a host address"),
    ([net("front", "169.254.1.2/16")], {}, "not a host address"),
    ([net("front", "224.0.0.5/24")], {}, "not a host address"),
    ([net("a", "10.96.5.3/24", network_id="same"), net("b", "10.96.6.3/24", network_id="same")], {},
     "network 2 (b): network_id 'same' is network 1 (a)'s already"),
    ([net("a", "10.96.5.3/24"), net("a", "10.96.6.3/24", network_id="other")], {},
     "network_name 'a' is network 1 (a)'s already"),
    ([net("a", "10.96.5.3/24"), net("b", "10.96.5.4/16")], {},
     "network 2 (b): subnet 10.96.0.0/16 overlaps network 1 (a)'s 10.96.5.0/24"),
    ([net("a", "10.96.5.3/24", "bad name")], {}, "invalid alias 'bad name' on network 1 (a)"),
    ([net("a", "10.96.5.3/24", "-web")], {}, "invalid alias '-web'"),
    ([net("a", "10.96.5.3/24", "a" * 64)], {}, "invalid alias"),
])
def test_bad_networks_are_refused_naming_them(tmp_path: Path, networks: list[pb.NetworkAttachmentConfig],
                                              fields: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        build(tmp_path, *networks, **fields)
    assert message in err.value.message


def test_dotted_and_underscored_aliases_are_dns_names(tmp_path: Path) -> None:
    spec = build(tmp_path, net("a", "10.96.5.3/24", "api.v1", "my_db", "x-1"))
    assert spec.network.attachments[0].aliases == ["api.v1", "my_db", "x-1"]
