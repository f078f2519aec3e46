"""`orch up`'s flag checks (orch/cluster/flags.py): every flag that cannot
work is refused with one line naming it, and everything that can is
accepted; which argv names a cluster's directories (orch/cluster/sweep.py);
and the cluster record: 0600, no token, and an old record still loads."""

from __future__ import annotations

import ipaddress
import json
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orch.cluster.flags import (
    FIRST_NODE_HOST,
    IFNAMSIZ,
    MAX_CONTROLPLANES,
    MAX_NODES,
    FlagError,
    check_up_flags,
)
from orch.cluster.local import ClusterRecord, NodeRecord
from orch.cluster.sweep import names_dirs

GOOD = {"nodes": 3, "controlplanes": 2, "port": 7700, "registry": 5000, "subnet": "10.89.0.0/24",
        "bridge": "orchup0", "prefix": "orch-"}


def check(**changes: object) -> ipaddress.IPv4Network:
    return check_up_flags(**{**GOOD, **changes})  # type: ignore[arg-type]


def test_the_defaults_pass() -> None:
    assert check() == ipaddress.IPv4Network("10.89.0.0/24")
    assert check(registry=None, controlplanes=1, nodes=1)


@pytest.mark.parametrize("changes, words", [
    ({"nodes": 0}, ["--nodes 0", f"1 to {MAX_NODES}"]),
    ({"nodes": -3}, ["--nodes -3"]),
    ({"nodes": MAX_NODES + 1}, [f"--nodes {MAX_NODES + 1}"]),
    ({"controlplanes": 0}, ["--controlplanes 0"]),
    ({"controlplanes": MAX_CONTROLPLANES + 1}, ["--controlplanes"]),
    ({"port": 99999}, ["--port 99999", "65535"]),
    ({"port": 0}, ["--port 0"]),
    ({"port": 65535, "controlplanes": 2}, ["--port 65535", "--controlplanes 2", "65536"]),
    ({"registry": 0}, ["--registry 0"]),
    ({"registry": 70000}, ["--registry 70000"]),
    ({"registry": 7701}, ["--registry 7701", "control plane"]),
    ({"subnet": "bogus"}, ["--subnet bogus", "CIDR"]),
    ({"subnet": "10.89.0.0/33"}, ["--subnet 10.89.0.0/33", "prefix length"]),
    ({"subnet": "10.89.0.5/24"}, ["host bits", "10.89.0.0/24"]),
    ({"subnet": "fd00::/64"}, ["--subnet fd00::/64", "IPv4"]),
    ({"subnet": "127.0.0.0/24"}, ["loopback"]),
    ({"subnet": "224.0.0.0/24"}, ["multicast"]),
    ({"subnet": "169.254.0.0/24"}, ["link-local"]),
    ({"subnet": "8.8.8.0/24"}, ["public"]),
    ({"subnet": "10.89.0.0/30", "nodes": 2}, ["--subnet 10.89.0.0/30", "2 nodes", "/28"]),
    ({"subnet": "10.89.0.0/28", "nodes": 5}, ["5 nodes", "/27"]),
    ({"subnet": "10.88.0.0/24"}, ["overlaps 10.88.0.0/16"]),
    ({"bridge": "x" * (IFNAMSIZ + 1)}, ["--bridge", f"1 to {IFNAMSIZ}"]),
    ({"bridge": ""}, ["--bridge ''"]),
    ({"bridge": "a/b"}, ["--bridge 'a/b'"]),
    ({"bridge": "br 0"}, ["--bridge 'br 0'"]),
    ({"prefix": "p" * 14, "nodes": 3}, ["--prefix", "ppppppppppppppn3", "at most 13"]),
    ({"prefix": "a/b"}, ["--prefix 'a/b'"]),
    ({"prefix": ""}, ["--prefix ''"]),
])
def test_a_flag_that_cannot_work_is_refused_naming_it(changes: dict[str, object],
                                                      words: list[str]) -> None:
    with pytest.raises(FlagError) as err:
        check(**changes)
    message = str(err.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message


def test_one_node_does_not_use_the_subnet() -> None:
    """A single node runs on the host: a small subnet is no obstacle."""
    assert check(nodes=1, subnet="10.89.0.0/30")


@given(prefixlen=st.integers(min_value=8, max_value=32), nodes=st.integers(min_value=2, max_value=MAX_NODES))
def test_a_subnet_is_accepted_exactly_when_every_node_address_fits(prefixlen: int, nodes: int) -> None:
    net = ipaddress.IPv4Network(f"10.0.0.0/{prefixlen}")
    last = net.network_address + FIRST_NODE_HOST + nodes
    fits = last < net.broadcast_address and not net.overlaps(ipaddress.IPv4Network("10.88.0.0/16"))
    try:
        check(subnet=str(net), nodes=nodes)
    except FlagError:
        assert not fits
    else:
        assert fits


@given(prefix=st.text(alphabet="abc-_.1", min_size=1, max_size=20), nodes=st.integers(1, MAX_NODES))
def test_every_accepted_prefix_makes_short_namespace_names(prefix: str, nodes: int) -> None:
    try:
        check(prefix=prefix, nodes=nodes, subnet="10.0.0.0/16")
    except FlagError:
        return
    assert all(len(f"{prefix}n{i}") <= IFNAMSIZ for i in range(1, nodes + 1))


@pytest.mark.parametrize("argv, named", [
    (["python", "-m", "orch", "agent", "--state-dir", "/s/nodes/n1", "--run-dir", "/r/nodes/n1"], True),
    (["python", "-m", "nodeagent.supervisor", "--state-dir=/s/nodes/n2"], True),
    (["etcd", "--name", "orch", "--data-dir", "/s/etcd"], True),
    (["docker-registry", "serve", "/s/registry/config.yml"], True),
    (["python", "-m", "orch", "controlplane", "--state-dir", "/s"], True),
    # Not a directory flag: a user's tail of a log is not the cluster's.
    (["tail", "-f", "/s/etcd.log"], False),
    (["python", "-m", "orch", "agent", "--state-dir", "/s2/nodes/n1"], False),
    (["python", "-m", "orch", "agent", "--state-dir", "relative/s"], False),
    (["python", "-m", "orch", "agent", "--state-dir"], False),
])
def test_which_argv_names_the_cluster(argv: list[str], named: bool) -> None:
    assert names_dirs(argv, ["/s", "/r"]) is named


def test_the_record_is_private_and_holds_no_token(tmp_path: Path) -> None:
    os.umask(0o022)
    rec = ClusterRecord(state_dir=str(tmp_path / "state"), run_dir=str(tmp_path), controlplane="127.0.0.1:1",
                        join="127.0.0.1:1", token_file="/x/pki/node-token", pki_dir="/x/pki",
                        cert_path="/x/pki/admin",
                        sockets=["/r/cp1.sock"], nodes=[NodeRecord("n1", "", "127.0.0.1", "/s", "/r")])
    (tmp_path / "cluster.json").write_text("{}")
    (tmp_path / "cluster.json").chmod(0o644)
    rec.save()
    assert stat.S_IMODE((tmp_path / "cluster.json").stat().st_mode) == 0o600
    data = json.loads((tmp_path / "cluster.json").read_text())
    assert "token" not in data
    assert data["sockets"] == ["/r/cp1.sock"] and data["cert_path"] == "/x/pki/admin"
    assert ClusterRecord.load(str(tmp_path)) == rec


def test_an_old_record_still_loads(tmp_path: Path) -> None:
    """Written before the token files and the CA: a token in it, no
    token_file, sockets or pki_dir. Its fields that are gone are dropped."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "join-token").write_text("abc")
    old = {"state_dir": str(state), "run_dir": str(tmp_path), "controlplane": "127.0.0.1:7700",
           "join": "10.89.0.1:7700", "token": "abc", "etcd_pid": 5, "etcd_endpoint": "http://127.0.0.1:2",
           "controlplane_pids": [6], "bridge": "orchup0", "subnet": "10.89.0.0/24", "prefix": "orch-",
           "listens": [["127.0.0.1:7700"]], "registry": "", "registry_pid": 0,
           "nodes": [{"name": "n1", "netns": "orch-n1", "address": "10.89.0.11",
                      "state_dir": str(state / "nodes/n1"), "run_dir": str(tmp_path / "nodes/n1")}]}
    (tmp_path / "cluster.json").write_text(json.dumps(old))
    rec = ClusterRecord.load(str(tmp_path))
    assert rec.token_file == "" and rec.pki_dir == ""
    assert rec.sockets == []
    assert rec.nodes[0].netns == "orch-n1" and rec.controlplane_pids == [6]
