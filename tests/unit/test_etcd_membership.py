"""`orch up --etcd-members`: the count and port checks (orch/cluster/flags.py),
the membership a state keeps and a later `up` must match (orch/cluster/local.py,
``plan_etcd``), the record's members (orch/cluster/record.py) with a record
written before them still meaningful, and each member's etcd command line
(controlplane/etcd.py). No etcd runs here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from controlplane.etcd import PEER_ELECTION_MS, EmbeddedEtcd
from orch.cluster.flags import ETCD_CLIENT_OFFSET, ETCD_PEER_OFFSET, FlagError, check_up_flags, etcd_ports
from orch.cluster.local import plan_etcd
from orch.cluster.record import ClusterRecord, UpError, etcd_members, kept_membership, set_etcd_members

GOOD = {"nodes": 2, "controlplanes": 1, "port": 7700, "registry": None, "subnet": "10.89.0.0/24",
        "bridge": "orchup0", "prefix": "orch-"}


@pytest.mark.parametrize("count", [1, 3, 5, 7])
def test_odd_counts_up_to_seven_pass(count: int) -> None:
    check_up_flags(**GOOD, etcd_members=count)  # type: ignore[arg-type]


@pytest.mark.parametrize("count", [0, 2, 4, 6, 8, 9, -1])
def test_even_and_out_of_range_counts_are_refused(count: int) -> None:
    with pytest.raises(FlagError, match=rf"^--etcd-members {count}: etcd runs 1, 3, 5 or 7 members"):
        check_up_flags(**GOOD, etcd_members=count)  # type: ignore[arg-type]


def test_ports_follow_the_control_plane_port() -> None:
    assert etcd_ports(7700, 1) == []  # a lone member takes free ports
    assert etcd_ports(7700, 3) == [(7700 + ETCD_CLIENT_OFFSET + i, 7700 + ETCD_PEER_OFFSET + i)
                                   for i in range(3)]
    assert etcd_ports(7700, 3) == [(7900, 7910), (7901, 7911), (7902, 7912)]


def test_ports_past_65535_or_on_the_registry_are_refused() -> None:
    with pytest.raises(FlagError, match=r"--port 65400 with --etcd-members 3: .* past 65535"):
        check_up_flags(**{**GOOD, "port": 65400}, etcd_members=3)  # type: ignore[arg-type]
    with pytest.raises(FlagError, match="--registry 7911: etcd listens there"):
        check_up_flags(**{**GOOD, "registry": 7911}, etcd_members=3)  # type: ignore[arg-type]
    check_up_flags(**{**GOOD, "registry": 7911}, etcd_members=1)  # type: ignore[arg-type]


def test_a_new_state_gets_the_members_asked_for(tmp_path: Path) -> None:
    plan = plan_etcd(str(tmp_path), 7700, 3)
    assert plan.new and plan.token.startswith("orch-")
    assert [(m.name, m.data_dir, m.client, m.peer) for m in plan.members] == [
        (f"etcd{i}", str(tmp_path / "etcd" / f"etcd{i}"), f"http://127.0.0.1:{7899 + i}",
         f"http://127.0.0.1:{7909 + i}") for i in (1, 2, 3)]
    lone = plan_etcd(str(tmp_path), 7700, None)
    assert [(m.name, m.data_dir, m.client) for m in lone.members] == [("orch", str(tmp_path / "etcd"), "")]


def test_a_kept_state_starts_its_own_members_again(tmp_path: Path) -> None:
    plan = plan_etcd(str(tmp_path), 7700, 3)
    plan.save(str(tmp_path))
    assert json.loads((tmp_path / "etcd" / "members.json").read_text())["token"] == plan.token
    kept = plan_etcd(str(tmp_path), 8800, None)  # another --port: the kept addresses stay
    assert not kept.new and kept.token == plan.token and kept.members == plan.members
    assert plan_etcd(str(tmp_path), 7700, 3).members == plan.members
    with pytest.raises(UpError, match=r"--etcd-members 1: the state in .* holds an etcd of 3 member"):
        plan_etcd(str(tmp_path), 7700, 1)


def test_a_kept_lone_member_is_not_made_three(tmp_path: Path) -> None:
    (tmp_path / "etcd" / "member").mkdir(parents=True)  # a lone member's data
    kept = kept_membership(str(tmp_path))
    assert kept is not None and not kept.new and [m.name for m in kept.members] == ["orch"]
    with pytest.raises(UpError, match=r"--etcd-members 3: .* holds an etcd of 1 member"):
        plan_etcd(str(tmp_path), 7700, 3)


def test_an_unreadable_membership_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "etcd").mkdir()
    (tmp_path / "etcd" / "members.json").write_text("{")
    with pytest.raises(UpError, match=r"members\.json: unreadable"):
        kept_membership(str(tmp_path))


def test_the_record_lists_every_member_and_keeps_the_first_in_the_old_fields(tmp_path: Path) -> None:
    rec = ClusterRecord(state_dir=str(tmp_path / "state"), run_dir=str(tmp_path),
                        controlplane="127.0.0.1:7700", join="127.0.0.1:7700")
    members = plan_etcd(rec.state_dir, 7700, 3).members
    for pid, member in enumerate(members, 100):
        member.pid = pid
    set_etcd_members(rec, members)
    assert (rec.etcd_pid, rec.etcd_endpoint) == (100, "http://127.0.0.1:7900")
    rec.save()
    loaded = ClusterRecord.load(str(tmp_path))
    assert loaded == rec and etcd_members(loaded) == members


def test_a_record_from_before_the_members_reads_as_one(tmp_path: Path) -> None:
    old = {"state_dir": str(tmp_path / "state"), "run_dir": str(tmp_path), "controlplane": "127.0.0.1:7700",
           "join": "127.0.0.1:7700", "etcd_pid": 5, "etcd_endpoint": "http://127.0.0.1:2379"}
    (tmp_path / "cluster.json").write_text(json.dumps(old))
    [member] = etcd_members(ClusterRecord.load(str(tmp_path)))
    assert (member.name, member.pid, member.client, member.data_dir) == \
        ("orch", 5, "http://127.0.0.1:2379", str(tmp_path / "state" / "etcd"))


def test_a_members_command_names_every_peer_and_its_timing(tmp_path: Path) -> None:
    peers = {"etcd1": "http://127.0.0.1:7910", "etcd2": "http://127.0.0.1:7911"}
    cmd = EmbeddedEtcd(tmp_path / "etcd1", 7900, 7910, "etcd1", peers=peers, cluster_state="existing",
                       cluster_token="orch-x").command()

    def flag(name: str) -> str:
        return cmd[cmd.index(name) + 1]

    assert flag("--initial-cluster") == "etcd1=http://127.0.0.1:7910,etcd2=http://127.0.0.1:7911"
    assert (flag("--initial-cluster-state"), flag("--initial-cluster-token")) == ("existing", "orch-x")
    assert flag("--election-timeout") == str(PEER_ELECTION_MS)
    assert flag("--listen-peer-urls") == "http://127.0.0.1:7910"
    lone = EmbeddedEtcd(tmp_path / "etcd", 7900, 7910).command()
    assert lone[lone.index("--initial-cluster") + 1] == "orch=http://127.0.0.1:7910"
    assert "--election-timeout" not in lone and "--initial-cluster-token" not in lone
    with pytest.raises(ValueError, match="fixed ports"):
        EmbeddedEtcd(tmp_path / "etcd1", 0, 7910, "etcd1", peers=peers)
