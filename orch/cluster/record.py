"""The record of a local cluster, ``<run-dir>/cluster.json``, and the
names and paths every part of ``orch up``/``orch down`` agrees on.

The record is written 0600 and atomically; it holds no secret (the tokens
are 0600 files in the state dir that it names). A record written before the
token files (with a ``token`` field) still loads.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

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
class ClusterRecord:
    state_dir: str
    run_dir: str
    controlplane: str  # address the CLI uses
    join: str  # addresses agents use
    token_file: str = ""  # the join token (0600)
    admin_token_file: str = ""  # the CLI's token for the API over TCP (0600)
    sockets: list[str] = field(default_factory=list)  # each replica's root-only unix socket
    etcd_pid: int = 0
    etcd_endpoint: str = ""
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
        tmp = self.path.with_name("cluster.json.tmp")
        write_private(tmp, json.dumps(asdict(self), indent=2))
        os.replace(tmp, self.path)

    @classmethod
    def load(cls, run_dir: str) -> ClusterRecord:
        """The record in ``run_dir``; one written before the token files
        (with a ``token`` field) reads as using ``<state>/join-token``."""
        data = json.loads((Path(run_dir) / "cluster.json").read_text())
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        data["nodes"] = [NodeRecord(**n) for n in data.get("nodes", [])]
        rec = cls(**data)
        for attr, name in (("token_file", "join-token"), ("admin_token_file", "admin-token")):
            if not getattr(rec, attr) and (Path(rec.state_dir) / name).exists():
                setattr(rec, attr, str(Path(rec.state_dir) / name))
        return rec


def write_private(path: Path, text: str) -> None:
    """Write ``path`` readable by root only, never wider even for a moment."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as f:
        os.fchmod(f.fileno(), 0o600)  # it may have existed with a wider mode
        f.write(text)


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
    """etcd's data dir (its log is ``<data>.log``); its argv names it."""
    return str(Path(rec.state_dir) / "etcd")


def agent_pid(node: NodeRecord) -> int:
    return read_pid(Path(node.run_dir) / "agent.lock")


def read_pid(path: Path) -> int:
    try:
        return int(path.read_text().strip() or 0)
    except (OSError, ValueError):
        return 0
