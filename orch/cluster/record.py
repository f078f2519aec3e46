"""The record of a local cluster, ``<run-dir>/cluster.json``, and the
names and paths every part of ``orch up``/``orch down`` agrees on.

The record is written 0600 and atomically; it holds no secret (the tokens
are 0600 files in the state dir that it names). A record written before the
token files (with a ``token`` field) still loads.

etcd: a lone member keeps its data in ``<state>/etcd`` (its log beside it,
``<state>/etcd.log``). Members of a cluster of several keep theirs in
``<state>/etcd/<name>`` (logs ``<state>/etcd/<name>.log``), and their
membership (names, addresses, the cluster's token) in
``<state>/etcd/members.json``: an ``orch up`` on kept state starts the
same members again, on the same addresses. The record lists every member
(``etcd_members``); ``etcd_pid`` and ``etcd_endpoint`` stay the first
member's, for what reads only those.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from common.auth import write_private

DEFAULT_STATE = "/var/lib/orch/cluster"
DEFAULT_RUN = "/run/orch/cluster"
CP_PORT = 7700
AGENT_PORT = 7701
NODE_BRIDGE = "orch0"  # each node's container bridge, inside its namespace


class UpError(Exception):
    """A local cluster cannot go up, or down, or restart a part: one line for the user."""


@dataclass
class NodeRecord:
    name: str
    netns: str
    address: str
    state_dir: str
    run_dir: str


@dataclass
class EtcdMember:
    name: str
    data_dir: str  # its --data-dir (its log is <data_dir>.log)
    client: str  # https://127.0.0.1:PORT ("" until started, for a lone member on free ports)
    peer: str  # https://127.0.0.1:PORT (the same)
    pid: int = 0
    metrics: str = ""  # http://127.0.0.1:PORT: /metrics and /health without TLS


@dataclass
class ClusterRecord:
    state_dir: str
    run_dir: str
    controlplane: str  # address the CLI uses
    join: str  # addresses agents use
    token_file: str = ""  # the node join token (0600), which the control planes write
    pki_dir: str = ""  # the cluster CA (ca.key 0600) and the etcd members' certificates
    cert_path: str = ""  # the admin user's ca.pem, cert.pem and key.pem, for the CLI over TCP
    sockets: list[str] = field(default_factory=list)  # each replica's root-only unix socket
    etcd_pid: int = 0  # the first etcd member's
    etcd_endpoint: str = ""  # the first etcd member's client URL
    etcd_members: list[EtcdMember] = field(default_factory=list)
    controlplane_pids: list[int] = field(default_factory=list)  # one per replica
    bridge: str = ""
    subnet: str = ""
    prefix: str = ""
    listens: list[list[str]] = field(default_factory=list)  # each replica's addresses
    registry: str = ""  # HOST:PORT of the cluster's registry, if started
    registry_pid: int = 0
    prometheus: str = ""  # HOST:PORT of Prometheus (`orch up --monitoring`), if started
    prometheus_pid: int = 0
    nodes: list[NodeRecord] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return Path(self.run_dir) / "cluster.json"

    def save(self) -> None:
        """Replace the record atomically; the file is 0600 from its creation."""
        write_private(str(self.path), json.dumps(asdict(self), indent=2).encode())

    @classmethod
    def load(cls, run_dir: str) -> ClusterRecord:
        """The record in ``run_dir``."""
        data = json.loads((Path(run_dir) / "cluster.json").read_text())
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        data["nodes"] = [NodeRecord(**n) for n in data.get("nodes", [])]
        data["etcd_members"] = [EtcdMember(**m) for m in data.get("etcd_members", [])]
        return cls(**data)


def load_record(run_dir: str) -> ClusterRecord:
    """The cluster of ``run_dir``, or UpError saying there is none."""
    try:
        return ClusterRecord.load(run_dir)
    except FileNotFoundError:
        raise UpError(f"no cluster is up ({run_dir}/cluster.json does not exist); start one with orch up")
    except (OSError, ValueError, TypeError) as err:
        raise UpError(f"{run_dir}/cluster.json: unreadable: {err}")


def node_subnet(index: int) -> str:
    """Node i's container subnet (its agent's --subnet)."""
    return f"10.88.{index}.0/24"


def cp_state(rec: ClusterRecord) -> str:
    return str(Path(rec.state_dir) / "controlplane")


def etcd_data(rec: ClusterRecord) -> str:
    """Where etcd keeps its data: a lone member's data dir, or the
    directory of the members' (each one's argv names its own, inside it)."""
    return str(Path(rec.state_dir) / "etcd")


def etcd_members(rec: ClusterRecord) -> list[EtcdMember]:
    """The cluster's etcd members (a record written before ``etcd_members``: its one etcd)."""
    if rec.etcd_members or not (rec.etcd_pid or rec.etcd_endpoint):
        return rec.etcd_members
    return [EtcdMember(LONE_MEMBER, etcd_data(rec), rec.etcd_endpoint, "", rec.etcd_pid)]


def set_etcd_members(rec: ClusterRecord, members: list[EtcdMember]) -> None:
    rec.etcd_members = members
    rec.etcd_pid = members[0].pid if members else 0
    rec.etcd_endpoint = members[0].client if members else ""


LONE_MEMBER = "orch"  # the name of a lone etcd member
_MEMBERS_FILE = "members.json"


@dataclass
class EtcdMembership:
    """The etcd members a cluster's state holds data for (``new``: none
    yet), kept in the state dir across ``orch down``/``orch up``."""

    members: list[EtcdMember]
    token: str  # etcd's --initial-cluster-token: members of another cluster never join it
    new: bool

    def save(self, state_dir: str) -> None:
        """Remember the membership of several members (a lone one needs no file)."""
        if len(self.members) == 1:
            return
        path = Path(state_dir) / "etcd" / _MEMBERS_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        members = [{"name": m.name, "data_dir": m.data_dir, "client": m.client, "peer": m.peer}
                   for m in self.members]
        write_private(str(path), json.dumps({"token": self.token, "members": members}, indent=2).encode())


def kept_membership(state_dir: str) -> EtcdMembership | None:
    """The etcd membership of the state in ``state_dir`` (None if it holds
    no etcd data): several members as ``members.json`` lists them, or a
    lone member. UpError if the file does not read."""
    etcd = Path(state_dir) / "etcd"
    path = etcd / _MEMBERS_FILE
    if path.exists():
        try:
            data = json.loads(path.read_text())
            members = [EtcdMember(m["name"], m["data_dir"], m["client"], m["peer"]) for m in data["members"]]
            return EtcdMembership(members, str(data["token"]), new=False)
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise UpError(f"{path}: unreadable ({err}); the state's etcd members are unknown: "
                          "start afresh with orch down --purge")
    if (etcd / "member").is_dir():
        return EtcdMembership([EtcdMember(LONE_MEMBER, str(etcd), "", "")], "", new=False)
    return None


def new_membership(state_dir: str, ports: list[tuple[int, int]], token: str) -> EtcdMembership:
    """A lone member (``ports`` empty: it takes free ones) or one member per (client, peer) port."""
    etcd = Path(state_dir) / "etcd"
    if not ports:
        return EtcdMembership([EtcdMember(LONE_MEMBER, str(etcd), "", "")], token, new=True)
    members = [EtcdMember(f"etcd{i}", str(etcd / f"etcd{i}"), f"http://127.0.0.1:{client}",
                          f"http://127.0.0.1:{peer}") for i, (client, peer) in enumerate(ports, 1)]
    return EtcdMembership(members, token, new=True)


def agent_pid(node: NodeRecord) -> int:
    return read_pid(Path(node.run_dir) / "agent.lock")


def read_pid(path: Path) -> int:
    try:
        return int(path.read_text().strip() or 0)
    except (OSError, ValueError):
        return 0
