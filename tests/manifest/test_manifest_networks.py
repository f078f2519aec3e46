"""A manifest's networks, as Compose's: the stack's default network, named
networks with aliases, external ones, a subnet asked for, endpoint_mode and
port modes; and each mistake refused at its file:line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from model.manifest import ManifestError, NetworkDef, load_stack, parse_stack
from model.objects import NetworkAttachment, PortConfig


def _stack(text: str, stack: str = "") -> tuple[dict[str, list[NetworkAttachment]], list[NetworkDef]]:
    parsed = parse_stack(textwrap.dedent(text), "m.yaml", stack)
    return {s.name: s.networks for s in parsed.services}, parsed.networks


def test_every_service_joins_the_stacks_default_network() -> None:
    services, networks = _stack("""
        name: shop
        services:
          web: {image: busybox}
          api: {image: busybox}
    """)
    default = [NetworkAttachment("shop_default")]
    assert services == {"web": default, "api": default}
    assert [(n.key, n.name, n.external, n.subnet) for n in networks] == [
        ("default", "shop_default", False, "")]


def test_the_stack_is_named_by_name_then_by_the_caller_then_by_the_directory(tmp_path: Path) -> None:
    assert _stack("services: {web: {image: busybox}}", stack="My App!")[0]["web"] == [
        NetworkAttachment("myapp_default")]  # normalised as Compose does
    assert _stack("name: given\nservices: {web: {image: busybox}}", stack="other")[0]["web"] == [
        NetworkAttachment("given_default")]
    directory = tmp_path / "_Front-End"
    directory.mkdir()
    (directory / "m.yaml").write_text("services: {web: {image: busybox}}\n")
    stack = load_stack(str(directory / "m.yaml"))
    assert (stack.name, stack.services[0].networks) == ("front-end", [NetworkAttachment("front-end_default")])


def test_named_networks_with_aliases_in_both_forms() -> None:
    services, networks = _stack("""
        name: shop
        services:
          web:
            image: busybox
            networks: [front, back]
          db:
            image: busybox
            networks:
              back:
                aliases: [database, db.internal]
        networks:
          front:
          back:
            ipam: {config: [{subnet: 10.96.200.0/24}]}
            labels: {tier: back}
          unused: {}
    """)
    assert services["web"] == [NetworkAttachment("shop_front"), NetworkAttachment("shop_back")]
    assert services["db"] == [NetworkAttachment("shop_back", ["database", "db.internal"])]
    # In order of first use; the unused one is not made (Compose leaves it out too).
    assert [(n.name, n.subnet, n.labels, n.line) for n in networks] == [
        ("shop_front", "", {}, 13), ("shop_back", "10.96.200.0/24", {"tier": "back"}, 14)]


def test_external_networks_and_a_configured_default() -> None:
    services, networks = _stack("""
        name: shop
        services:
          web: {image: busybox, networks: [shared, mesh]}
          worker: {image: busybox}
        networks:
          shared: {external: true}
          mesh: {external: true, name: cluster-mesh}
          default: {ipam: {config: [{subnet: 10.96.100.0/24}]}}
    """)
    assert services["web"] == [NetworkAttachment("shared"), NetworkAttachment("cluster-mesh")]
    assert services["worker"] == [NetworkAttachment("shop_default")]
    assert [(n.name, n.external) for n in networks] == [("shared", True), ("cluster-mesh", True),
                                                        ("shop_default", False)]
    assert networks[2].subnet == "10.96.100.0/24"


def test_a_stack_of_external_networks_needs_no_name() -> None:
    """No network of its own to name: a directory with no usable name is no error."""
    parsed = parse_stack("services: {web: {image: busybox, networks: [x]}}\nnetworks: {x: {external: true}}",
                         "/tmp/m.yaml", stack="!!!")
    assert parsed.services[0].networks == [NetworkAttachment("x")] and parsed.name == ""


def test_network_mode_bridge_joins_no_network_and_takes_host_ports_only() -> None:
    parsed = parse_stack(textwrap.dedent("""
        name: s
        services:
          web:
            image: busybox
            network_mode: bridge
            ports: [{published: 8080, target: 80, mode: host}]
    """), "m.yaml")
    assert parsed.services[0].networks == [] and parsed.networks == []
    assert parsed.services[0].ports == [PortConfig(8080, 80, "tcp", "host")]


def test_endpoint_mode_and_port_modes() -> None:
    parsed = parse_stack(textwrap.dedent("""
        name: s
        services:
          web:
            image: busybox
            ports: ["8080:80", {published: 53, target: 53, protocol: udp, mode: host}]
          dns:
            image: busybox
            deploy: {endpoint_mode: dnsrr}
    """), "m.yaml")
    web, dns = parsed.services
    assert web.ports == [PortConfig(8080, 80, "tcp", "ingress"), PortConfig(53, 53, "udp", "host")]
    assert (web.endpoint_mode, dns.endpoint_mode) == ("vip", "dnsrr")


BAD = [
    ("driver", """
        services: {web: {image: busybox}}
        networks:
          default:
            driver: bridge
    """, "m.yaml:5: networks.default.driver: expected one of overlay, got 'bridge'"),
    ("undefined", """
        name: s
        services:
          web:
            image: busybox
            networks: [front]
    """, "m.yaml:6: services.web.networks[0]: undefined network 'front': define it under the top-level "
         "'networks:'"),
    ("undefined_mapping", """
        name: s
        services:
          web:
            image: busybox
            networks:
              back: {aliases: [db]}
    """, "m.yaml:7: services.web.networks.back: undefined network 'back'"),
    ("external_with_ipam", """
        name: s
        services: {web: {image: busybox}}
        networks:
          default:
            external: true
            ipam: {config: [{subnet: 10.96.1.0/24}]}
    """, "m.yaml:7: networks.default.ipam: an external network takes no 'ipam'"),
    ("mode_and_networks", """
        name: s
        services:
          web:
            image: busybox
            network_mode: bridge
            networks: [default]
    """, "m.yaml:6: services.web.network_mode: network_mode cannot be set with networks (line 7)"),
    ("bad_subnet", """
        name: s
        services: {web: {image: busybox}}
        networks:
          default:
            ipam:
              config:
                - subnet: 10.96.1.1/24
    """, "m.yaml:8: networks.default.ipam.config[0].subnet: invalid subnet '10.96.1.1/24': host bits are "
         "set"),
    ("two_subnets", """
        name: s
        services: {web: {image: busybox}}
        networks:
          default:
            ipam: {config: [{subnet: 10.96.1.0/24}, {subnet: 10.96.2.0/24}]}
    """, "m.yaml:6: networks.default.ipam.config: expected one subnet, got 2"),
    ("gateway", """
        name: s
        services: {web: {image: busybox}}
        networks:
          default:
            ipam:
              config:
                - subnet: 10.96.1.0/24
                  gateway: 10.96.1.1
    """, "m.yaml:9: networks.default.ipam.config[0].gateway: 'gateway' is not supported by orch"),
    ("fixed_address", """
        name: s
        services:
          web:
            image: busybox
            networks:
              default:
                ipv4_address: 10.96.0.5
        networks: {default: }
    """, "m.yaml:8: services.web.networks.default.ipv4_address: 'ipv4_address' is not supported by orch"),
    ("bad_alias", """
        name: s
        services:
          web:
            image: busybox
            networks:
              default:
                aliases: [db, "no spaces"]
    """, "m.yaml:8: services.web.networks.default.aliases[1]: invalid alias 'no spaces'"),
    ("same_name", """
        name: s
        services: {web: {image: busybox, networks: [a, b]}}
        networks:
          a: {name: shared}
          b: {name: shared}
    """, "m.yaml:6: networks.b: names network 'shared', as networks.a does (line 5)"),
    ("bad_stack_name", """
        name: My Shop
        services: {web: {image: busybox}}
    """, "m.yaml:2: name: invalid stack name 'My Shop'"),
    ("ingress_without_network", """
        name: s
        services:
          web:
            image: busybox
            network_mode: bridge
            ports: ["8080:80"]
    """, "m.yaml:7: services.web.ports[0]: an ingress port needs the service on a network"),
    ("ingress_dnsrr", """
        name: s
        services:
          web:
            image: busybox
            ports: ["8080:80"]
            deploy: {endpoint_mode: dnsrr}
    """, "m.yaml:6: services.web.ports[0]: an ingress port cannot be used with endpoint_mode: dnsrr"),
    ("port_mode", """
        name: s
        services:
          web:
            image: busybox
            ports: [{published: 80, target: 80, mode: global}]
    """, "m.yaml:6: services.web.ports[0].mode: unknown port mode 'global'"),
    ("attachable", """
        name: s
        services: {web: {image: busybox}}
        networks:
          default: {attachable: true}
    """, "m.yaml:5: networks.default.attachable: 'attachable' is not supported by orch"),
]


@pytest.mark.parametrize(("text", "expected"), [(t, e) for _, t, e in BAD], ids=[n for n, _, _ in BAD])
def test_mistakes_are_refused_at_their_line(text: str, expected: str) -> None:
    with pytest.raises(ManifestError) as caught:
        parse_stack(textwrap.dedent(text), "m.yaml")  # line 1 is the empty first line
    assert str(caught.value).startswith(expected), str(caught.value)


def test_a_directory_without_a_usable_name_asks_for_one() -> None:
    with pytest.raises(ManifestError, match=r"^/srv/___/m\.yaml:1: name: cannot name the stack after '___'"):
        parse_stack("services: {web: {image: busybox}}", "/srv/___/m.yaml")
