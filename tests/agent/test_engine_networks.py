"""User-defined bridge networks in engine mode, through the real agent and
CLI: containers on one resolve and reach each other by name and alias
(the node's DNS server at 127.0.0.11); containers elsewhere neither resolve
nor reach them; a network in use is not removed, a removed one leaves no
bridge and no nft table; networks outlive an agent restart. Plus the
definitions file's own rules, without an agent."""

from __future__ import annotations

import ipaddress
import json
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from common.errors import Conflict, InvalidArgument, NotFound
from nodeagent.network.engine_networks import EngineNetworks, routed_subnets
from nodeagent.network.nftables import table_exists, table_name

if TYPE_CHECKING:
    from conftest import Engine


def link_exists(name: str) -> bool:
    return Path(f"/sys/class/net/{name}").exists()


def wait_for(check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def free_subnet() -> str:
    taken = routed_subnets()
    while True:
        net = ipaddress.IPv4Network(f"10.216.{secrets.randbelow(256)}.0/24")
        if not any(net.overlaps(t) for t in taken):
            return str(net)


@pytest.fixture
def networks(engine: Engine) -> Iterator[Callable[..., dict[str, str]]]:
    """Makes networks (inspected); removes them, and their containers, afterwards."""
    made: list[str] = []
    containers: list[str] = []

    def make(name: str, *extra: str) -> dict[str, str]:
        engine.orch("network", "create", name, "--subnet", free_subnet(), *extra)
        made.append(name)
        doc: dict[str, str] = json.loads(engine.orch("network", "inspect", name).stdout)[0]
        return doc

    make.containers = containers  # type: ignore[attr-defined]
    try:
        yield make
    finally:
        if containers:
            engine.orch("rm", "-f", *containers, check=False)
        for name in made:
            engine.orch("network", "rm", name, check=False)


def run(engine: Engine, name: str, *args: str) -> None:
    engine.orch("run", "-d", "--name", name, *args, "busybox", "sleep", "600")


def resolves(engine: Engine, container: str, name: str) -> str | None:
    """The address ``container`` gets for ``name`` from its resolver, or None."""
    out = engine.orch("exec", container, "nslookup", name, check=False, timeout=30)
    if out.returncode != 0:
        return None
    lines = out.stdout.split("Name:", 1)[-1]
    found = [line.split()[-1] for line in lines.splitlines() if line.startswith("Address")]
    return found[0] if found else None


def reaches(engine: Engine, container: str, address: str) -> bool:
    return engine.orch("exec", container, "ping", "-c1", "-W1", address, check=False,
                       timeout=30).returncode == 0


def test_containers_on_a_network_find_and_reach_each_other(engine: Engine,
                                                           networks: Callable[..., dict[str, str]]) -> None:
    tag = secrets.token_hex(2)
    app, other = f"app{tag}", f"other{tag}"
    app_doc = networks(app)
    networks(other)
    names = [f"web{tag}", f"cli{tag}", f"far{tag}", f"plain{tag}"]
    networks.containers.extend(names)  # type: ignore[attr-defined]
    web, cli, far, plain = names
    run(engine, web, "--network", app, "--network-alias", f"www{tag}", "--network-alias", "shared")
    run(engine, cli, "--network", app_doc["id"][:12])  # an id prefix names it too
    run(engine, far, "--network", other)
    run(engine, plain)  # the default bridge
    web_ip = json.loads(engine.orch("inspect", web).stdout)[0]["ip_address"]
    assert ipaddress.IPv4Address(web_ip) in ipaddress.IPv4Network(app_doc["subnet"])

    assert engine.orch("exec", cli, "cat", "/etc/resolv.conf").stdout == \
        "nameserver 127.0.0.11\noptions ndots:0\n"
    assert resolves(engine, cli, web) == web_ip
    assert resolves(engine, cli, f"www{tag}") == web_ip
    assert resolves(engine, cli, f"{web}.{app}") == web_ip
    assert reaches(engine, cli, f"www{tag}")
    # Another network and the default bridge: no names, no way through.
    for outsider in (far, plain):
        assert resolves(engine, outsider, web) is None
        assert resolves(engine, outsider, f"www{tag}") is None
        assert not reaches(engine, outsider, web_ip)
    far_ip = json.loads(engine.orch("inspect", far).stdout)[0]["ip_address"]
    assert not reaches(engine, web, far_ip)  # both ways

    details = json.loads(engine.orch("network", "inspect", app).stdout)[0]
    assert {c["name"]: c["aliases"] for c in details["containers"]} == \
        {web: [f"www{tag}", "shared"], cli: []}
    listed = json.loads(engine.orch("network", "ls", "-o", "json").stdout)
    assert {"bridge", "host", "none", app, other} <= {n["name"] for n in listed}

    # A removed container's name goes from the others' answers.
    engine.orch("rm", "-f", web)
    wait_for(lambda: resolves(engine, cli, web) is None, "the removed container's name to go")


def test_removal_is_refused_while_used_and_leaves_nothing(engine: Engine,
                                                          networks: Callable[..., dict[str, str]]) -> None:
    tag = secrets.token_hex(2)
    name, user = f"gone{tag}", f"user{tag}"
    doc = networks(name)
    bridge = doc["bridge"]
    networks.containers.append(user)  # type: ignore[attr-defined]
    engine.orch("create", "--name", user, "--network", name, "busybox", "sleep", "600")
    assert link_exists(bridge) and table_exists(table_name(bridge))
    refused = engine.orch("network", "rm", name, check=False)
    assert refused.returncode == 1 and f"in use by container(s) {user}" in refused.stderr
    assert engine.orch("network", "inspect", name).returncode == 0
    engine.orch("rm", "-f", user)
    engine.orch("network", "rm", name)
    assert not link_exists(bridge) and not table_exists(table_name(bridge))
    missing = engine.orch("run", "--rm", "--network", name, "busybox", "true", check=False)
    assert missing.returncode == 125 and f"network {name!r} not found" in missing.stderr


def test_networks_outlive_an_agent_restart(engine: Engine, networks: Callable[..., dict[str, str]]) -> None:
    tag = secrets.token_hex(2)
    name, one, two = f"keep{tag}", f"one{tag}", f"two{tag}"
    doc = networks(name)
    networks.containers.extend([one, two])  # type: ignore[attr-defined]
    run(engine, one, "--network", name, "--network-alias", f"first{tag}")
    engine.orch("agent", "stop", "--state-dir", str(engine.state), "--run-dir", str(engine.run))
    engine.start()
    assert json.loads(engine.orch("network", "inspect", name).stdout)[0]["id"] == doc["id"]
    run(engine, two, "--network", name)
    one_ip = json.loads(engine.orch("inspect", one).stdout)[0]["ip_address"]
    # The restarted agent serves the running container's sockets again.
    assert resolves(engine, two, f"first{tag}") == one_ip
    assert resolves(engine, one, two) is not None


def test_stop_all_removes_the_bridges_and_keeps_the_definitions(
        engine: Engine, networks: Callable[..., dict[str, str]]) -> None:
    tag = secrets.token_hex(2)
    name, one, two = f"kept{tag}", f"k1{tag}", f"k2{tag}"
    bridge = networks(name)["bridge"]
    networks.containers.extend([one, two])  # type: ignore[attr-defined]
    run(engine, one, "--network", name)
    engine.stop_all()
    assert not link_exists(bridge) and not table_exists(table_name(bridge))
    engine.start()
    assert name in engine.orch("network", "ls").stdout
    # The next container on it brings its bridge back.
    run(engine, one, "--network", name)
    run(engine, two, "--network", name)
    assert link_exists(bridge) and table_exists(table_name(bridge))
    assert resolves(engine, two, one) == json.loads(engine.orch("inspect", one).stdout)[0]["ip_address"]


@pytest.mark.parametrize(("args", "message"), [
    (["network", "create", "bridge"], "built-in network mode"),
    (["network", "create", "-bad"], "see 'orch network create --help'"),
    (["network", "create", "bad/name"], "invalid network name"),
    (["network", "create", "x", "--subnet", "10.0.0.0/33"], "invalid --subnet"),
    (["network", "create", "x", "--subnet", "127.5.0.0/24"], "loopback"),
    (["network", "rm", "bridge"], "built-in network"),
    (["network", "inspect", "no-such-net"], "network 'no-such-net' not found"),
    (["run", "--rm", "--network-alias", "a", "busybox", "true"], "needs a user-defined network"),
])
def test_bad_network_requests_say_why(engine: Engine, args: list[str], message: str) -> None:
    out = engine.orch(*args, check=False)
    assert out.returncode != 0 and message in out.stderr, out.stderr
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr


def test_a_taken_name_or_subnet_is_refused(engine: Engine, networks: Callable[..., dict[str, str]]) -> None:
    tag = secrets.token_hex(2)
    doc = networks(f"dup{tag}")
    again = engine.orch("network", "create", f"dup{tag}", check=False)
    assert again.returncode == 1 and "already exists" in again.stderr
    overlap = engine.orch("network", "create", f"dup2{tag}", "--subnet", doc["subnet"], check=False)
    assert overlap.returncode == 1 and "overlaps" in overlap.stderr
    clash = engine.orch("network", "create", f"dup3{tag}", "--subnet", engine.subnet, check=False)
    assert clash.returncode == 1 and "overlaps" in clash.stderr


# ---- the definitions, without an agent ---------------------------------------

def test_definitions_pick_free_subnets_and_keep_across_instances(tmp_path: Path) -> None:
    nets = EngineNetworks(str(tmp_path), default_subnet="10.88.0.0/16")
    taken = [ipaddress.IPv4Network("10.90.0.0/24")]  # a route of the host's, say
    a = nets.create("a", taken=taken)
    b = nets.create("b", taken=taken)
    assert (a.subnet, b.subnet) == ("10.90.1.0/24", "10.90.2.0/24")
    assert a.bridge == "ob-" + a.id[:12] and len(a.bridge) <= 15 and a.gateway == "10.90.1.1"
    again = EngineNetworks(str(tmp_path))
    assert [n.name for n in again.all()] == ["a", "b"]
    assert again.get(a.id[:6]) == a and again.by_bridge(b.bridge) == b
    with pytest.raises(Conflict, match="already exists"):
        again.create("a", taken=[])
    with pytest.raises(Conflict, match=r"overlaps 10\.90\.1\.0/24"):
        again.create("c", "10.90.0.0/16", taken=[])
    with pytest.raises(NotFound):
        again.get("zzz")
    removing = again.mark_removing("b")
    assert removing.removing
    with pytest.raises(NotFound, match="being removed"):
        again.get("b")
    again.mark_removing("b", removing=False)
    assert again.get("b") == b
    again.delete(b.id)
    assert [n.name for n in nets.all()] == ["a"]


@pytest.mark.parametrize("name", ["host", "none", "", "-x", "a" * 65, "a b", "é"])
def test_definitions_refuse_bad_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(InvalidArgument):
        EngineNetworks(str(tmp_path)).create(name, taken=[])


def test_run_options_carry_the_network_and_its_aliases() -> None:
    from orch.cli import runcmd
    from proto import agent_pb2 as pb

    argv = ["-d", "--network", "appnet", "--network-alias", "db", "--network-alias", "pg", "busybox"]
    values = runcmd.parse_quick(argv)
    assert values is not None and values["network_alias"] == ["db", "pg"]
    got = pb.ContainerConfig.FromString(runcmd.encode_config(runcmd.config_fields(values)))
    assert (got.network, list(got.network_aliases)) == ("appnet", ["db", "pg"])
