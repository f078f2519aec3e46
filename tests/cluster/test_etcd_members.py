"""`orch up --etcd-members 3`: three etcd members on loopback, on mutual TLS
(https client and peer URLs, a plain-http metrics URL each), every
control-plane replica given all of them. One member killed (the raft
leader): deploy, scale and ps see nothing, and the member catches up once
started again. Two killed: writes fail at once with one line saying etcd
lost its quorum while ps still answers; the members back, writes work
without restarting the control plane. `orch down` stops every member and
`orch up` on the kept state starts the same ones: the tasks run again.

Its own cluster (2 nodes, private names, ports and subnet 10.224.x.0/24),
never the session's: killing etcd members would disturb the other tests.
Each scenario ends with the desired counts exactly, and on the host
exactly one container init process per running task of the store, none
other (found by the kernel: the pid 1 of each ``orch/<id>`` cgroup)."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pyetcd
import pytest
from pyetcd import etcdrpc

from common.auth import write_private
from controlplane.etcd import EtcdTLS
from controlplane.trust import issue_local, load_ca
from orch.cluster.etcdchaos import heal_etcd, kill_etcd
from orch.cluster.record import UpError
from orch.cluster.sweep import argv
from orch.pids import alive
from tests.cluster.conftest import LocalCluster, wait_for
from tests.cluster.test_cluster import looping
from tests.cluster.test_cluster_supervisor_death import real_pid1s

QUORUM = "etcd has lost quorum"


def new_cluster(tmp: Path, letter: str, second: int, port: int) -> LocalCluster:
    """A cluster with private names: bridge orch<letter><tag>, namespaces
    o<letter><tag>-*, run dir /run/orch-e<letter>-<tag>, subnet
    10.<second>.x.0/24, control plane on a port from ``port`` on."""
    tag = secrets.token_hex(2)
    run = f"/run/orch-e{letter}-{tag}"
    c = LocalCluster(state=tmp / "state", run=Path(run), bridge=f"orch{letter}{tag}",
                     prefix=f"o{letter}{tag}-", subnet=f"10.{second}.{100 + int(tag[:2], 16) % 100}.0/24",
                     port=port + int(tag, 16) % 800, env={**os.environ, "ORCH_CLUSTER_RUN_DIR": run})
    c.env.pop("ORCH_HOST", None)
    c.env.pop("ORCH_CLUSTER", None)
    return c


def up(c: LocalCluster, *flags: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return c.orch("up", "--nodes", "2", "--state-dir", str(c.state), "--run-dir", str(c.run),
                  "--bridge", c.bridge, "--prefix", c.prefix, "--subnet", c.subnet, "--port", str(c.port),
                  *flags, check=check)


def torn_down(c: LocalCluster) -> None:
    """`orch down --purge` (also when the cluster is already down, for kept
    state); the control planes' and etcd's logs are kept beside the state."""
    logs = c.state.parent / "logs"
    logs.mkdir(exist_ok=True)
    for log in [*c.state.glob("*.log"), *c.state.glob("etcd/*.log")]:
        shutil.copy(log, logs / log.name)
    try:
        if (c.run / "cluster.json").exists() or c.state.exists():
            c.down(purge=True)
    finally:
        subprocess.run(["rm", "-rf", str(c.run)], check=False)


@pytest.fixture(scope="module")
def em(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    if os.geteuid() != 0:
        pytest.skip("a local cluster needs root")
    c = new_cluster(tmp_path_factory.mktemp("etcd-members"), "e", 224, 22000)
    try:
        up(c, "--etcd-members", "3")
        yield c
    finally:
        torn_down(c)


# ---- what etcd and the kernel say -----------------------------------------------------------

def etcd_processes(state: Path) -> list[int]:
    """Live etcd processes whose data dir is inside ``state``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            args = argv(int(entry))
            if args and args[0].endswith("/etcd") and "--data-dir" in args and alive(int(entry)) \
                    and args[args.index("--data-dir") + 1].startswith(f"{state}/"):
                found.append(int(entry))
    return found


def _flag(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def _address(url: str) -> str:
    return url.split("//", 1)[-1]


def member_tls(c: LocalCluster) -> EtcdTLS:
    """A client certificate of the cluster's CA as the members take one (a
    control plane's), made once from the CA in the state's pki dir, beside
    the state; with the CA, good for reading any member."""
    pki_dir = Path(c.record()["pki_dir"])
    out = c.state.parent / "etcd-client"
    if not (out / "client.key").exists():
        ca = load_ca(str(pki_dir))
        assert ca is not None
        cert, key = issue_local(ca, "members-test", "controlplane")
        write_private(str(out / "client.crt"), cert)
        write_private(str(out / "client.key"), key)
    return EtcdTLS(str(pki_dir / "ca.crt"), str(out / "client.crt"), str(out / "client.key"))


def _status(client_url: str, tls: EtcdTLS) -> Any:
    assert client_url.startswith("https://")
    creds = grpc.ssl_channel_credentials(*(Path(f).read_bytes() for f in (tls.ca_file, tls.key_file,
                                                                            tls.cert_file)))
    with grpc.secure_channel(client_url.split("//", 1)[1], creds) as channel:
        return etcdrpc.MaintenanceStub(channel).Status(etcdrpc.StatusRequest(), timeout=2)


def raft_leader(c: LocalCluster) -> int:
    """The member (1-based) that leads etcd's raft (0 while none does)."""
    tls = member_tls(c)
    for i, member in enumerate(c.record()["etcd_members"], 1):
        try:
            status = _status(member["client"], tls)
        except grpc.RpcError:
            continue
        if status.leader and status.leader == status.header.member_id:
            return i
    return 0


def member_data(client_url: str, tls: EtcdTLS) -> tuple[int, dict[bytes, tuple[bytes, int]]] | None:
    """What one member alone holds (a serializable read, answered from its
    own copy): its revision and every key of orch's; None if it does not answer."""
    host, port = client_url.split("//", 1)[1].rsplit(":", 1)
    client = pyetcd.client(host, int(port), ca_cert=tls.ca_file, cert_key=tls.key_file,
                           cert_cert=tls.cert_file, timeout=2)
    try:
        resp = client.get_prefix_response("/orch/", serializable=True)
    except Exception:
        return None
    finally:
        client.close()
    return int(resp.header.revision), {kv.key: (kv.value, kv.mod_revision) for kv in resp.kvs}


def running_tasks(c: LocalCluster) -> list[dict[str, Any]]:
    return [t for t in c.tasks() if t["state"] == "running" and t["desired"] == "running"]


def converged(c: LocalCluster, expected: dict[str, int], timeout: float = 60) -> None:
    """Wait until the store runs exactly ``expected`` tasks of each service
    (and of no other) and every node is ready, and the host runs exactly one
    container init process for each of those tasks, none for another task."""
    last: Any = None

    def check() -> bool:
        nonlocal last
        nodes = {n["name"]: n["state"] for n in c.nodes()}
        store = running_tasks(c)
        counts = Counter(t["service"] for t in store)
        if set(nodes.values()) != {"ready"} or counts != Counter(expected):
            last = f"nodes {nodes}, running {counts}"
            return False
        try:
            real = sorted(task for pairs in real_pid1s(c).values() for task, _ in pairs)
        except (ValueError, IndexError, OSError):  # a container record being written
            last = "container records being written"
            return False
        want = sorted(t["id"] for t in store)
        last = f"host runs {real}, the store {want}"
        return real == want

    try:
        wait_for(check, timeout=timeout, interval=0.2)
    except AssertionError:
        raise AssertionError(f"not converged within {timeout} s: {last}")


def one_line_error(proc: subprocess.CompletedProcess[str], words: str) -> None:
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and "Traceback" not in proc.stderr, proc.stderr


def leftovers(c: LocalCluster) -> list[str]:
    """Processes naming the cluster's directories, its namespaces and links, its directories."""
    paths = (str(c.state), str(c.run))
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid() and alive(int(entry)):
            cmd = " ".join(argv(int(entry)))
            if any(p in cmd for p in paths):
                out.append(f"process {entry}: {cmd[:120]}")
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    out += [f"netns {line.split()[0]}" for line in netns.splitlines() if line.startswith(c.prefix)]
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    out += [f"link {line.split(':')[1].strip()}" for line in links.splitlines()
            if line.split(":")[1].strip().split("@")[0] == c.bridge]
    return out + [f"directory {p}" for p in paths if os.path.exists(p)]


# ---- flags ----------------------------------------------------------------------------------

@pytest.mark.parametrize("count", ["2", "4", "9", "0"])
def test_an_even_or_too_large_member_count_is_refused_before_anything(tmp_path: Path, count: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("orch up needs root")
    c = new_cluster(tmp_path, "g", 224, 22000)
    try:
        proc = up(c, "--etcd-members", count, check=False)
        one_line_error(proc, f"--etcd-members {count}: etcd runs 1, 3, 5 or 7 members")
        assert not c.state.exists() and not c.run.exists()
    finally:
        torn_down(c)


# ---- three members --------------------------------------------------------------------------

def test_three_members_run_and_every_replica_knows_them_all(em: LocalCluster) -> None:
    rec = em.record()
    members = rec["etcd_members"]
    assert [m["name"] for m in members] == ["etcd1", "etcd2", "etcd3"]
    assert [m["client"] for m in members] == [f"https://127.0.0.1:{em.port + 200 + i}" for i in range(3)]
    assert [m["peer"] for m in members] == [f"https://127.0.0.1:{em.port + 210 + i}" for i in range(3)]
    assert (rec["etcd_pid"], rec["etcd_endpoint"]) == (members[0]["pid"], members[0]["client"])
    assert sorted(etcd_processes(em.state)) == sorted(m["pid"] for m in members)
    metrics = [m["metrics"] for m in members]
    assert all(u.startswith("http://127.0.0.1:") for u in metrics) and len(set(metrics)) == 3
    for m in members:
        args = argv(m["pid"])
        assert _flag(args, "--data-dir") == m["data_dir"] == str(em.state / "etcd" / m["name"])
        assert _flag(args, "--initial-cluster") == ",".join(f"{x['name']}={x['peer']}" for x in members)
        assert _flag(args, "--listen-metrics-urls") == m["metrics"]
        assert "--client-cert-auth" in args and "--peer-client-cert-auth" in args
        assert _flag(args, "--peer-cert-file") == str(Path(rec["pki_dir"]) / f"etcd-{m['name']}.crt")
        # Plain http answers /health there, and only there.
        with urllib.request.urlopen(f"{m['metrics']}/health", timeout=5) as resp:
            assert json.loads(resp.read())["health"] == "true"
    for pid in rec["controlplane_pids"]:
        assert _flag(argv(pid), "--etcd") == ",".join(m["client"] for m in members)
    # One cluster: every member knows the same leader.
    assert len({_status(m["client"], member_tls(em)).leader for m in members}) == 1


def test_the_raft_leader_killed_nothing_shows_and_it_catches_up(em: LocalCluster, tmp_path: Path) -> None:
    """The issue's "kill 1 of 3 etcd members": the member that leads raft."""
    em.orch("deploy", "-f", looping(tmp_path, "one", 4))
    converged(em, {"one": 4})
    victim = wait_for(lambda: raft_leader(em), timeout=10)
    assert kill_etcd(str(em.run), victim).startswith(f"etcd member {victim} (etcd{victim}, pid ")
    assert em.record()["etcd_members"][victim - 1]["pid"] not in etcd_processes(em.state)
    # At once, while the two others elect a leader: no error anywhere.
    em.orch("scale", "one=6")
    em.orch("deploy", "-f", looping(tmp_path, "two", 2))
    assert len(em.running("two")) == 2
    converged(em, {"one": 6, "two": 2})
    em.orch("scale", "one=3")
    converged(em, {"one": 3, "two": 2})
    with pytest.raises(UpError, match=f"etcd member {victim} .* is not running"):
        kill_etcd(str(em.run), victim)

    done = heal_etcd(str(em.run))
    assert len(done) == 1 and done[0].startswith(f"etcd member {victim} (etcd{victim}) started again")
    assert heal_etcd(str(em.run)) == []
    members = em.record()["etcd_members"]
    assert len(etcd_processes(em.state)) == 3

    # It caught up: alone, it holds what another member holds, at the same revision.
    tls = member_tls(em)

    def same() -> bool:
        mine = member_data(members[victim - 1]["client"], tls)
        other = member_data(members[victim % 3]["client"], tls)
        return mine is not None and mine == other

    wait_for(same, timeout=30)
    em.orch("rm", "one")
    em.orch("rm", "two")
    converged(em, {})


def test_two_killed_writes_fail_at_once_then_work_again(em: LocalCluster, tmp_path: Path) -> None:
    em.orch("deploy", "-f", looping(tmp_path, "kept", 3))
    converged(em, {"kept": 3})
    planes = em.record()["controlplane_pids"]
    leader = wait_for(lambda: raft_leader(em), timeout=10)
    for member in (leader, leader % 3 + 1):
        kill_etcd(str(em.run), member)
    assert len(etcd_processes(em.state)) == 1
    # Writes: refused, one line, soon (the timeout only guards against a hang).
    one_line_error(em.orch("scale", "kept=5", check=False, timeout=30), QUORUM)
    one_line_error(em.orch("deploy", "-f", looping(tmp_path, "new", 2), check=False, timeout=30), QUORUM)
    # Reads of the control plane's cache still answer.
    assert sorted(t["service"] for t in running_tasks(em)) == ["kept"] * 3

    assert len(heal_etcd(str(em.run))) == 2
    assert len(etcd_processes(em.state)) == 3
    # The same control planes: they came back by themselves.
    assert em.record()["controlplane_pids"] == planes and all(alive(pid) for pid in planes)
    em.orch("scale", "kept=5")
    em.orch("deploy", "-f", looping(tmp_path, "new", 2))
    converged(em, {"kept": 5, "new": 2})
    em.orch("rm", "new")
    converged(em, {"kept": 5})


def test_down_stops_every_member_and_up_starts_the_same_ones(em: LocalCluster) -> None:
    before = em.record()["etcd_members"]
    tasks = {t["id"] for t in running_tasks(em)}
    assert len(tasks) == 5
    kill_etcd(str(em.run), 2)  # down copes with a member already gone
    em.down(purge=False)
    assert etcd_processes(em.state) == []
    kept = json.loads((em.state / "etcd" / "members.json").read_text())["members"][1]["client"]
    assert _address(kept) == _address(before[1]["client"])
    # The kept state's membership is the state's to say.
    proc = up(em, "--etcd-members", "1", check=False)
    one_line_error(proc, "--etcd-members 1: the state in")
    assert re.search(r"holds an etcd of 3 member", proc.stderr)
    up(em)
    after = em.record()["etcd_members"]
    assert [(m["name"], m["client"], m["peer"], m["data_dir"]) for m in after] == \
        [(m["name"], m["client"], m["peer"], m["data_dir"]) for m in before]
    assert all(m["client"].startswith("https://") and m["metrics"].startswith("http://") for m in after)
    assert sorted(etcd_processes(em.state)) == sorted(m["pid"] for m in after)
    converged(em, {"kept": 5})
    assert {t["id"] for t in running_tasks(em)} == tasks


def test_down_purge_leaves_nothing(em: LocalCluster) -> None:
    """Last: the module's cluster goes, nothing of it stays, no etcd member either."""
    em.down(purge=True)
    assert etcd_processes(em.state) == []
    assert leftovers(em) == []
