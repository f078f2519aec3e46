"""The cluster's objects: services, tasks and nodes (swarmkit's split).

Service (desired: image, replicas, resources, placement, ...) -> Tasks (one
per replica slot; desired state + observed status + node) -> a container on a
node. The orchestrator creates and removes tasks, the scheduler only sets a
task's node, the dispatcher only moves assignments and status.

Invariants:
- task states only move forward (``TaskState`` is ordered); a restart is a
  new task in the same slot;
- ``version`` is the etcd ``mod_revision`` the object was read at (0 = not
  stored yet); every write compares it;
- quantities are base units: bytes, and CPUs as a float.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from typing import Any, Literal


class TaskState(enum.IntEnum):
    NEW = 0
    PENDING = 1  # waiting for the scheduler
    ASSIGNED = 2  # has a node; the node has not picked it up yet
    PREPARING = 3  # node pulls the image, builds the spec
    STARTING = 4
    RUNNING = 5
    COMPLETE = 6  # exited 0
    FAILED = 7  # exited non-zero, or setup failed
    SHUTDOWN = 8  # stopped on request
    REJECTED = 9  # the node could not run it
    ORPHANED = 10  # its node went down

    @property
    def terminal(self) -> bool:
        return self >= TaskState.COMPLETE

    def label(self) -> str:
        return self.name.lower()


@dataclass
class PortConfig:
    published: int
    target: int
    protocol: Literal["tcp", "udp"] = "tcp"


@dataclass
class Resources:
    cpus: float = 0.0
    memory_bytes: int = 0
    pids: int = 0  # limits only: 0 = the node's default, -1 = unlimited


@dataclass
class Placement:
    constraints: list[str] = field(default_factory=list)  # "node.labels.zone==a", "node.name!=n1"
    preferences: list[str] = field(default_factory=list)  # spread labels: "node.labels.zone"
    max_replicas_per_node: int = 0  # 0 = no limit


@dataclass
class RestartPolicy:
    condition: Literal["none", "on-failure", "any"] = "any"
    delay: float = 5.0  # seconds before a replacement starts (doubles, capped)
    max_attempts: int = 0  # 0 = unlimited
    window: float = 0.0


@dataclass
class ServiceSpec:
    name: str
    image: str
    command: list[str] | None = None
    entrypoint: list[str] | None = None
    env: list[str] = field(default_factory=list)
    ports: list[PortConfig] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    mode: Literal["replicated", "global"] = "replicated"
    replicas: int = 1
    limits: Resources = field(default_factory=Resources)
    reservations: Resources = field(default_factory=Resources)
    placement: Placement = field(default_factory=Placement)
    restart_policy: RestartPolicy = field(default_factory=RestartPolicy)
    binpack: bool = False  # scoring: pack nodes instead of spreading
    stop_grace_period: float = 10.0  # seconds between the stop signal and SIGKILL
    storage_size: int = 0  # bytes the writable layer may hold (storage_opt size); 0 = no limit


@dataclass
class Service:
    id: str
    spec: ServiceSpec
    created_at: float = 0.0
    updated_at: float = 0.0
    version: int = 0


@dataclass
class TaskStatus:
    state: TaskState = TaskState.NEW
    message: str = ""
    error: str = ""
    timestamp: float = 0.0
    container_id: str = ""
    exit_code: int = 0


@dataclass
class Task:
    id: str
    service_id: str
    service_name: str
    slot: int  # replicated: 1..N; global: 0 (one per node)
    spec: ServiceSpec  # the service spec this task was made from
    node_id: str = ""
    desired_state: TaskState = TaskState.RUNNING
    status: TaskStatus = field(default_factory=TaskStatus)
    created_at: float = 0.0
    attempt: int = 0  # restarts of this slot so far
    version: int = 0

    @property
    def name(self) -> str:
        return f"{self.service_name}.{self.slot or self.node_id[:8]}.{self.id[:8]}"


@dataclass
class NodeResources:
    cpus: float = 0.0
    memory_bytes: int = 0


@dataclass
class Node:
    id: str
    name: str
    address: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    resources: NodeResources = field(default_factory=NodeResources)
    state: Literal["ready", "down", "unknown"] = "unknown"
    availability: Literal["active", "drain", "pause"] = "active"
    last_heartbeat: float = 0.0
    # What the control plane presents to this node's API (the node made it);
    # never shown to clients.
    api_token: str = ""
    version: int = 0


# ---- (de)serialisation ---------------------------------------------------

def to_dict(obj: Any) -> dict[str, Any]:
    """Plain JSON-able dict; ``version`` is not stored (it is etcd's)."""
    data = dataclasses.asdict(obj)
    data.pop("version", None)
    return data


def _spec(d: dict[str, Any]) -> ServiceSpec:
    d = dict(d)
    d["ports"] = [PortConfig(**p) for p in d.get("ports", [])]
    d["limits"] = Resources(**d.get("limits", {}))
    d["reservations"] = Resources(**d.get("reservations", {}))
    d["placement"] = Placement(**d.get("placement", {}))
    d["restart_policy"] = RestartPolicy(**d.get("restart_policy", {}))
    return ServiceSpec(**d)


def service_from_dict(d: dict[str, Any], version: int = 0) -> Service:
    return Service(id=d["id"], spec=_spec(d["spec"]), created_at=d.get("created_at", 0.0),
                   updated_at=d.get("updated_at", 0.0), version=version)


def task_from_dict(d: dict[str, Any], version: int = 0) -> Task:
    d = dict(d)
    status = dict(d.get("status", {}))
    status["state"] = TaskState(status.get("state", 0))
    d["status"] = TaskStatus(**status)
    d["desired_state"] = TaskState(d.get("desired_state", TaskState.RUNNING))
    d["spec"] = _spec(d["spec"])
    d["version"] = version
    return Task(**d)


def node_from_dict(d: dict[str, Any], version: int = 0) -> Node:
    d = dict(d)
    d["resources"] = NodeResources(**d.get("resources", {}))
    d["version"] = version
    return Node(**d)
