"""The cluster's objects: services, tasks and nodes (swarmkit's split).

Service (desired: image, replicas, resources, placement, networks, ...) ->
Tasks (one per replica slot; desired state + observed status + node + their
addresses) -> a container on a node. The orchestrator creates and removes
tasks and gives them their addresses, the scheduler only sets a task's node,
the dispatcher only moves assignments, network state and status.

Secrets and configs (``Secret``) are cluster objects too: one object per
*version* of a name, its value sealed (``Sealed``: envelope encryption, see
``controlplane.envelope``). A service grants them by name (``SecretRef``, in
``ServiceSpec.secrets`` and ``ServiceSpec.configs``), and each grant pins the
version it was deployed with (``SecretRef.secret_id``): a changed value is a
new version, so a changed spec, and its tasks are replaced by a rollout.

Networks are cluster objects of their own (``Network``: a subnet and a VXLAN
VNI); a service names the ones it joins (``ServiceSpec.networks``, by name,
as Compose does), its VIPs live on the service object (``Service.vips``,
allocated by the leader, not part of the spec), and each task carries its
address on each of its networks (``Task.networks``).

Invariants:
- task states only move forward (``TaskState`` is ordered); a restart is a
  new task in the same slot;
- ``version`` is the etcd ``mod_revision`` the object was read at (0 = not
  stored yet); every write compares it;
- quantities are base units: bytes, and CPUs as a float;
- an address is ``"IP/prefix"`` (``"10.96.5.3/24"``); a task's addresses and a
  service's VIPs are set before any node sees the task, and never change.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from typing import Any, Literal

from model.health import HealthCheck


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

    @property
    def on_node(self) -> bool:
        """Sent to a node and not ended: it runs there, or is about to (and holds its resources)."""
        return TaskState.ASSIGNED <= self < TaskState.COMPLETE

    def label(self) -> str:
        return self.name.lower()


@dataclass
class PortConfig:
    published: int
    target: int
    protocol: Literal["tcp", "udp"] = "tcp"
    # ingress: every node answers (the routing mesh); host: only the nodes running a task
    mode: Literal["ingress", "host"] = "ingress"


@dataclass
class NetworkAttachment:
    """A service on one network, as its spec names it (Compose's per-service ``networks``)."""

    name: str  # the cluster network's name (a stack's: "<stack>_<key>")
    aliases: list[str] = field(default_factory=list)  # more DNS names of the service there


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
class UpdateConfig:
    """How a changed spec rolls out over a service's tasks (Compose's
    ``deploy.update_config``, and ``rollback_config`` for a rollback), with
    swarmkit's effective defaults: one task at a time, each watched for 5 s,
    and a failure pauses the rollout (the Compose spec's text says
    ``failure_action`` defaults to ``pause`` and ``monitor`` to 0; swarmkit,
    and so Docker, use 5 s)."""

    parallelism: int = 1  # tasks updated at once; 0 = all at once
    delay: float = 0.0  # seconds from one task counting as updated to the next one's start
    failure_action: Literal["pause", "continue", "rollback"] = "pause"
    # seconds a new task must run (and pass its health check) to count as updated;
    # a failure within the rollout counts against max_failure_ratio
    monitor: float = 5.0
    max_failure_ratio: float = 0.0  # failures tolerated, as a fraction of the tasks to update
    order: Literal["stop-first", "start-first"] = "stop-first"


# Docker's default mode of a secret's or config's file: read-only for everyone.
DEFAULT_FILE_MODE = 0o444


@dataclass
class SecretRef:
    """A secret or config granted to a service (swarmkit's ``SecretReference``
    and ``ConfigReference``; Compose's per-service ``secrets``/``configs``).

    The file appears in each task's container at ``target``: for a secret, a
    name under ``/run/secrets`` (or an absolute path), for a config an
    absolute path; owned by ``uid``:``gid`` with ``mode``, read-only, on a
    tmpfs. ``secret_id`` is the version the service was deployed with, set
    by the control plane ("" until then)."""

    source: str  # the secret's (config's) name in the cluster
    target: str  # absolute path in the container (the manifest's relative forms are resolved)
    uid: int = 0
    gid: int = 0
    mode: int = DEFAULT_FILE_MODE
    secret_id: str = ""


@dataclass
class Mount:
    """A volume, bind mount or tmpfs in each task's container (Compose's
    ``volumes`` and ``tmpfs``). A volume is the node's own (a task's data
    stays on the node it ran on): ``source`` is its name on the node (a
    stack's are ``<stack>_<key>``), "" for an anonymous one; a bind's source
    is an absolute path on the node."""

    type: Literal["volume", "bind", "tmpfs"]
    target: str  # absolute path in the container
    source: str = ""
    read_only: bool = False
    volume_nocopy: bool = False  # a new volume is not filled from the image's files there
    tmpfs_size: int = 0  # bytes; 0: the kernel's default
    tmpfs_mode: int = 0  # permission bits; 0: 01777
    # A volume on storage every node reaches (top-level ``x-orch: {shareable:
    # true}``): its tasks may run anywhere. Else a task with a named volume is
    # tied to the node that holds its data (``Task.data_node``).
    shareable: bool = False


@dataclass
class Ulimit:
    name: str  # "nofile", "nproc", "core", ...
    soft: int  # -1: unlimited
    hard: int


DEPENDENCY_CONDITIONS = ("service_started", "service_healthy", "service_completed_successfully")


@dataclass
class Dependency:
    """A service this one starts after (Compose's ``depends_on``): on the
    service's first deploy its tasks wait until ``condition`` holds for the
    dependency (``controlplane.controllers.dependencies``)."""

    service: str
    condition: Literal["service_started", "service_healthy", "service_completed_successfully"] = (
        "service_started")


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
    # Overlay networks, in order (the container's eth1, eth2, ...); [] = only the node's bridge.
    networks: list[NetworkAttachment] = field(default_factory=list)
    endpoint_mode: Literal["vip", "dnsrr"] = "vip"  # vip: one address per network; dnsrr: DNS only
    healthcheck: HealthCheck | None = None  # None: the image's (model.health)
    update_config: UpdateConfig = field(default_factory=UpdateConfig)
    rollback_config: UpdateConfig = field(default_factory=UpdateConfig)
    # Move tasks to a node that joins or comes back when the spread is uneven
    # (``x-orch.rebalance: false`` opts out).
    rebalance: bool = True
    # Files from the cluster's secrets and configs, in each task's container.
    secrets: list[SecretRef] = field(default_factory=list)
    configs: list[SecretRef] = field(default_factory=list)
    # The container's own settings (Compose's keys of the same names), each
    # default the engine's: "" / 0 / false / empty.
    container_name: str = ""  # the task's container's name (one task only); "": generated
    hostname: str = ""  # "": the task's name
    user: str = ""  # "uid[:gid]" or a name of the image's; "": the image's
    working_dir: str = ""  # "": the image's
    stop_signal: str = ""  # "": the image's, else SIGTERM
    network_mode: Literal["", "host", "none"] = ""  # "": the networks (or the node's bridge)
    read_only: bool = False
    init: bool = False
    tty: bool = False
    stdin_open: bool = False
    privileged: bool = False
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)  # HOST[:CONTAINER[:rwm]]
    sysctls: dict[str, str] = field(default_factory=dict)
    ulimits: list[Ulimit] = field(default_factory=list)
    dns: list[str] = field(default_factory=list)
    extra_hosts: list[str] = field(default_factory=list)  # "name:address"
    shm_size: int = 0  # bytes of /dev/shm; 0: the engine's default
    mounts: list[Mount] = field(default_factory=list)
    log_max_size: int = 0  # bytes per log file; 0: the node's default
    log_max_files: int = 0  # 0: the node's default
    # Start order of the first deploy; the control plane's alone (never sent to nodes).
    depends_on: list[Dependency] = field(default_factory=list)


@dataclass
class VirtualIP:
    """A service's address on one network (``endpoint_mode: vip``)."""

    network_id: str
    address: str  # "IP/prefix"


ROLLOUT_STATES = ("updating", "paused", "completed", "rollback_started", "rollback_paused",
                  "rollback_completed")


@dataclass
class UpdateStatus:
    """Where a service's rollout stands (swarmkit's ``UpdateStatus``), stored
    on the service so a new leader carries on from it. The API starts one
    when a task's spec changes; the leader moves it and counts progress."""

    state: Literal["updating", "paused", "completed", "rollback_started", "rollback_paused",
                   "rollback_completed"] = "updating"
    started_at: float = 0.0
    completed_at: float = 0.0
    message: str = ""
    total: int = 0  # tasks to update when it started
    updated: int = 0  # tasks of the new spec that count as updated (running, healthy, monitored)
    failed: list[str] = field(default_factory=list)  # ids of the new spec's tasks that failed meanwhile

    @property
    def rollback(self) -> bool:
        return self.state.startswith("rollback")

    @property
    def active(self) -> bool:
        """Still moving tasks (not paused, not completed)."""
        return self.state in ("updating", "rollback_started")


@dataclass
class Revision:
    """An earlier spec of a service (``orch history``, ``orch rollback --to``)."""

    revision: int
    spec: ServiceSpec
    created_at: float = 0.0
    note: str = ""  # how it came: "deploy", "rollback to 3", "automatic rollback: ..."


@dataclass
class Service:
    id: str
    spec: ServiceSpec
    created_at: float = 0.0
    updated_at: float = 0.0
    # Allocated by the leader for each network of the spec (vip mode), not
    # part of the spec: redeploying the same spec keeps them.
    vips: list[VirtualIP] = field(default_factory=list)
    revision: int = 1  # the spec's revision: 1 at creation, +1 for each change but scaling
    note: str = ""  # how the current revision came (as Revision.note)
    history: list[Revision] = field(default_factory=list)  # earlier revisions, oldest first
    update_status: UpdateStatus | None = None  # None: never updated
    version: int = 0

    @property
    def previous_spec(self) -> ServiceSpec | None:
        return self.history[-1].spec if self.history else None

# How a task's error starts when its container died with the node's
# supervisor (nodeagent.supervisor.recovery): the node's fault, not the
# task's, so its replacement is not held back by the restart delay.
SUPERVISOR_DIED = "killed: its supervisor"


@dataclass
class TaskStatus:
    state: TaskState = TaskState.NEW
    message: str = ""
    error: str = ""
    timestamp: float = 0.0
    container_id: str = ""
    exit_code: int = 0
    health: str = ""  # "" (no check), "starting", "healthy", "unhealthy" (model.health)


@dataclass
class TaskNetwork:
    """A task's attachment to one network: its address there and its DNS aliases."""

    network_id: str
    name: str  # the network's name (networks are never renamed)
    address: str  # "IP/prefix", allocated by the leader before the task reaches a node
    aliases: list[str] = field(default_factory=list)


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
    networks: list[TaskNetwork] = field(default_factory=list)  # in the spec's order
    version: int = 0
    # The node that holds its node-local named volumes' data (its slot's,
    # inherited by each replacement and update): it runs there or waits. "":
    # none yet, or the spec has no such volume.
    data_node: str = ""

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
    # Small and unique in the cluster (>= 1; 0 = not given yet), allocated at
    # registration and kept: the data plane derives MACs, link-local router
    # addresses, marks and routing tables from it.
    index: int = 0
    metrics_address: str = ""  # its agent's Prometheus endpoint (HOST:PORT); "" if it serves none
    ready_since: float = 0.0  # when it last became ready (joined, or came back)
    version: int = 0
    # Drained with --allow-data-loss: the tasks whose volume data it holds
    # may run elsewhere. Cleared when it is activated again.
    data_released: bool = False


@dataclass
class Network:
    """An overlay network: a subnet from the cluster's pool (or asked for) and a VXLAN VNI."""

    id: str
    name: str
    subnet: str  # "10.96.5.0/24"
    vni: int  # >= 4096
    stack: str = ""  # the manifest (stack) that made it; "" for `orch network create`
    labels: dict[str, str] = field(default_factory=dict)
    created_at: float = 0.0
    version: int = 0


SECRET_KINDS = ("secret", "config")


@dataclass
class Sealed:
    """A value under envelope encryption (``controlplane.envelope``): sealed
    with its own AES-256-GCM data key, which is stored wrapped by the
    cluster's key-encryption key ``kek_id``. Byte strings are base64."""

    kek_id: str
    wrapped_key: str
    key_nonce: str
    nonce: str
    ciphertext: str


@dataclass
class Secret:
    """One version of a secret or a config (``kind``): versions share the
    ``name`` and count up (``number``); a deploy whose value changed makes
    the next one. The value is only ever stored sealed. A version stays while
    a task or a service (its spec or a revision it can roll back to) uses it,
    and the latest always."""

    id: str  # this version's; what a SecretRef pins
    name: str
    kind: Literal["secret", "config"] = "secret"
    number: int = 1  # the version under its name: 1, 2, ...
    size: int = 0  # bytes of the value
    labels: dict[str, str] = field(default_factory=dict)
    stack: str = ""  # the manifest (stack) that made it; "" for `orch secret create`
    created_at: float = 0.0
    sealed: Sealed | None = None
    version: int = 0


# ---- (de)serialisation ---------------------------------------------------

def to_dict(obj: Any) -> dict[str, Any]:
    """Plain JSON-able dict; ``version`` is not stored (it is etcd's)."""
    data = dataclasses.asdict(obj)
    data.pop("version", None)
    return data


def spec_from_dict(d: dict[str, Any]) -> ServiceSpec:
    d = dict(d)
    d["ports"] = [PortConfig(**p) for p in d.get("ports", [])]
    d["networks"] = [NetworkAttachment(**n) for n in d.get("networks", [])]
    d["limits"] = Resources(**d.get("limits", {}))
    d["reservations"] = Resources(**d.get("reservations", {}))
    d["placement"] = Placement(**d.get("placement", {}))
    d["restart_policy"] = RestartPolicy(**d.get("restart_policy", {}))
    d["healthcheck"] = HealthCheck.from_dict(d.get("healthcheck"))
    d["update_config"] = UpdateConfig(**d.get("update_config", {}))
    d["rollback_config"] = UpdateConfig(**d.get("rollback_config", {}))
    d["secrets"] = [SecretRef(**r) for r in d.get("secrets", [])]
    d["configs"] = [SecretRef(**r) for r in d.get("configs", [])]
    d["ulimits"] = [Ulimit(**u) for u in d.get("ulimits", [])]
    d["mounts"] = [Mount(**m) for m in d.get("mounts", [])]
    d["depends_on"] = [Dependency(**x) for x in d.get("depends_on", [])]
    return ServiceSpec(**d)


def service_from_dict(d: dict[str, Any], version: int = 0) -> Service:
    status = d.get("update_status")
    return Service(id=d["id"], spec=spec_from_dict(d["spec"]), created_at=d.get("created_at", 0.0),
                   updated_at=d.get("updated_at", 0.0),
                   vips=[VirtualIP(**v) for v in d.get("vips", [])],
                   revision=d.get("revision", 1), note=d.get("note", ""),
                   history=[Revision(r["revision"], spec_from_dict(r["spec"]), r.get("created_at", 0.0),
                                     r.get("note", "")) for r in d.get("history", [])],
                   update_status=UpdateStatus(**status) if status else None, version=version)


def task_from_dict(d: dict[str, Any], version: int = 0) -> Task:
    d = dict(d)
    status = dict(d.get("status", {}))
    status["state"] = TaskState(status.get("state", 0))
    d["status"] = TaskStatus(**status)
    d["desired_state"] = TaskState(d.get("desired_state", TaskState.RUNNING))
    spec = d["spec"]
    d["spec"] = spec if isinstance(spec, ServiceSpec) else spec_from_dict(spec)
    d["networks"] = [TaskNetwork(**n) for n in d.get("networks", [])]
    d["version"] = version
    return Task(**d)


def node_from_dict(d: dict[str, Any], version: int = 0) -> Node:
    d = dict(d)
    d["resources"] = NodeResources(**d.get("resources", {}))
    d["version"] = version
    return Node(**d)


def network_from_dict(d: dict[str, Any], version: int = 0) -> Network:
    d = dict(d)
    d["version"] = version
    return Network(**d)


def secret_from_dict(d: dict[str, Any], version: int = 0) -> Secret:
    d = dict(d)
    sealed = d.get("sealed")
    d["sealed"] = Sealed(**sealed) if sealed else None
    d["version"] = version
    return Secret(**d)
