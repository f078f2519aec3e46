"""The model on the wire: ``model.objects`` <-> the typed messages of proto/cluster.proto.

The one converter between the two, used at the gRPC edge only: the control
plane's API and dispatcher, the node's worker and the CLI's cluster commands.
Generated classes stop here; the scheduler, the store and the controllers see
only the model. (The store's own encoding, JSON in etcd, is not the wire: see
``controlplane.store.codec``.)

It lives in ``model``, not ``proto``, because ``proto`` is the bottom layer
(generated code, importing nothing of orch's) and the model owns its forms.
Importing it loads protobuf; nothing on the CLI's fast paths does.

Invariants:
- ``X_from_pb(X_to_pb(x)) == x`` for every object the model can hold;
- enums convert by name, never by number: the tables below are built from
  the generated enums' names, and importing this module fails if the model
  has a value the proto lacks;
- an empty message converts to the model's defaults (the proto's enum zeros
  are the model's defaults; fields with another default are ``optional``);
- a value the model does not know (an enum number from a newer peer) raises
  :class:`WireError` naming the field.

The spec's container settings (mounts, capabilities, ulimits, ... from
Compose's service keys) travel with each task to its node, which turns them
into the engine's request (``nodeagent.cluster.executor``); ``depends_on``
travels too, so a service reads back whole, though only the control plane
acts on it (the start order of a deploy).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from model.health import HealthCheck, HttpProbe, TcpProbe
from model.objects import (
    DEPENDENCY_CONDITIONS,
    ROLLOUT_STATES,
    Dependency,
    Mount,
    Network,
    NetworkAttachment,
    Node,
    NodeResources,
    Placement,
    PortConfig,
    Resources,
    RestartPolicy,
    Revision,
    SecretRef,
    Service,
    ServiceSpec,
    Task,
    TaskNetwork,
    TaskState,
    TaskStatus,
    Ulimit,
    UpdateConfig,
    UpdateStatus,
    VirtualIP,
)
from proto import agent_pb2 as apb
from proto import cluster_pb2 as cpb

__all__ = [
    "ACTIONS",
    "ENDPOINT_MODES",
    "MODES",
    "NODE_AVAILABILITIES",
    "NODE_STATES",
    "PORT_MODES",
    "PROTOCOLS",
    "RESTART_CONDITIONS",
    "SECRET_KINDS",
    "StoreObject",
    "WireError",
    "availability_from_pb",
    "availability_to_pb",
    "endpoint_mode_from_pb",
    "endpoint_mode_to_pb",
    "event_from_pb",
    "event_to_pb",
    "network_from_pb",
    "network_to_pb",
    "node_from_pb",
    "node_to_pb",
    "ports_from_pb",
    "ports_to_pb",
    "secret_kind_from_pb",
    "secret_kind_to_pb",
    "secret_refs_from_pb",
    "secret_refs_to_pb",
    "service_from_pb",
    "service_to_pb",
    "spec_from_pb",
    "spec_to_pb",
    "status_update_from_pb",
    "status_update_to_pb",
    "task_from_pb",
    "task_state_from_pb",
    "task_state_to_pb",
    "task_to_pb",
]

StoreObject = Service | Task | Node | Network


class WireError(ValueError):
    """A message the model cannot hold; the text names the field."""


# The model's closed sets of words, each a proto enum; the proto's names are
# PREFIX + the word in upper case, "-" as "_".
MODES = ("replicated", "global")
PROTOCOLS = ("tcp", "udp")
PORT_MODES = ("ingress", "host")
ENDPOINT_MODES = ("vip", "dnsrr")
RESTART_CONDITIONS = ("any", "on-failure", "none")
NODE_STATES = ("unknown", "ready", "down")
NODE_AVAILABILITIES = ("active", "drain", "pause")
ACTIONS = ("put", "delete", "synced", "keepalive")  # the events' actions
FAILURE_ACTIONS = ("pause", "continue", "rollback")
UPDATE_ORDERS = ("stop-first", "start-first")
SECRET_KINDS = ("secret", "config")


def _by_name(enum: Any, prefix: str, words: Iterable[str]) -> tuple[dict[str, Any], dict[int, Any]]:
    """Word -> number and number -> word for ``enum``; fails at import if a word has no value."""
    to_pb = {word: enum.Value(prefix + word.upper().replace("-", "_")) for word in words}
    return to_pb, {number: word for word, number in to_pb.items()}


_MODE, _MODE_OF = _by_name(cpb.ServiceMode, "SERVICE_MODE_", MODES)
_PROTOCOL, _PROTOCOL_OF = _by_name(cpb.PortProtocol, "PORT_PROTOCOL_", PROTOCOLS)
_PORT_MODE, _PORT_MODE_OF = _by_name(cpb.PortMode, "PORT_MODE_", PORT_MODES)
_ENDPOINT_MODE, _ENDPOINT_MODE_OF = _by_name(cpb.EndpointMode, "ENDPOINT_MODE_", ENDPOINT_MODES)
_CONDITION, _CONDITION_OF = _by_name(cpb.RestartCondition, "RESTART_CONDITION_", RESTART_CONDITIONS)
_NODE_STATE, _NODE_STATE_OF = _by_name(cpb.NodeState, "NODE_STATE_", NODE_STATES)
_AVAILABILITY, _AVAILABILITY_OF = _by_name(cpb.NodeAvailability, "NODE_AVAILABILITY_",
                                           NODE_AVAILABILITIES)
_ACTION, _ACTION_OF = _by_name(cpb.EventAction, "EVENT_ACTION_", ACTIONS)
_FAILURE_ACTION, _FAILURE_ACTION_OF = _by_name(cpb.FailureAction, "FAILURE_ACTION_", FAILURE_ACTIONS)
_ORDER, _ORDER_OF = _by_name(cpb.UpdateOrder, "UPDATE_ORDER_", (o.replace("-", "_") for o in UPDATE_ORDERS))
_SECRET_KIND, _SECRET_KIND_OF = _by_name(cpb.SecretKind, "SECRET_KIND_", SECRET_KINDS)
_TASK_STATE: dict[TaskState, Any] = {state: cpb.TaskState.Value(f"TASK_STATE_{state.name}")
                                     for state in TaskState}
_TASK_STATE_OF = {number: state for state, number in _TASK_STATE.items()}

# Defaults that are not the proto's zero values (their fields are optional).
_SPEC = ServiceSpec(name="", image="")
_TASK = Task(id="", service_id="", service_name="", slot=0, spec=_SPEC)
_REF = SecretRef(source="", target="")


def _member(table: dict[Any, Any], number: int | str, field: str) -> Any:
    try:
        return table[number]
    except KeyError:
        raise WireError(f"{field}: {number!r} is not a value this version knows") from None


def task_state_to_pb(state: TaskState) -> Any:
    return _TASK_STATE[state]


def task_state_from_pb(number: int, field: str = "state") -> TaskState:
    return _member(_TASK_STATE_OF, number, field)  # type: ignore[no-any-return]


def availability_to_pb(availability: str) -> Any:
    """``active``, ``drain`` or ``pause`` as the enum; WireError for another word."""
    try:
        return _AVAILABILITY[availability]
    except KeyError:
        raise WireError(f"availability: {availability!r} is not one of "
                        f"{', '.join(NODE_AVAILABILITIES)}") from None


def availability_from_pb(number: int) -> str:
    return _member(_AVAILABILITY_OF, number, "availability")  # type: ignore[no-any-return]


def secret_kind_to_pb(kind: str) -> Any:
    """``secret`` or ``config`` as the enum; WireError for another word."""
    try:
        return _SECRET_KIND[kind]
    except KeyError:
        raise WireError(f"kind: {kind!r} is not one of {', '.join(SECRET_KINDS)}") from None


def secret_kind_from_pb(number: int, field: str = "kind") -> Literal["secret", "config"]:
    return _member(_SECRET_KIND_OF, number, field)  # type: ignore[no-any-return]


# ---- service specs -----------------------------------------------------------

def _resources_to_pb(r: Resources) -> cpb.Resources:
    return cpb.Resources(cpus=r.cpus, memory_bytes=r.memory_bytes, pids=r.pids)


def _resources_from_pb(m: cpb.Resources) -> Resources:
    return Resources(cpus=m.cpus, memory_bytes=m.memory_bytes, pids=m.pids)


def ports_to_pb(ports: Iterable[PortConfig]) -> list[cpb.PortConfig]:
    """Ports as messages; KeyError for a protocol or mode the wire has no word for."""
    return [cpb.PortConfig(published=p.published, target=p.target, protocol=_PROTOCOL[p.protocol],
                           mode=_PORT_MODE[p.mode]) for p in ports]


def ports_from_pb(ports: Iterable[cpb.PortConfig], field: str = "ports") -> list[PortConfig]:
    return [PortConfig(published=p.published, target=p.target,
                       protocol=_member(_PROTOCOL_OF, p.protocol, f"{field}[{i}].protocol"),
                       mode=_member(_PORT_MODE_OF, p.mode, f"{field}[{i}].mode"))
            for i, p in enumerate(ports)]


def endpoint_mode_to_pb(mode: str) -> Any:
    return _ENDPOINT_MODE[mode]


def endpoint_mode_from_pb(number: int, field: str = "endpoint_mode") -> Literal["vip", "dnsrr"]:
    return _member(_ENDPOINT_MODE_OF, number, field)  # type: ignore[no-any-return]


def secret_refs_to_pb(refs: Iterable[SecretRef]) -> list[cpb.SecretReference]:
    return [cpb.SecretReference(source=r.source, target=r.target, uid=r.uid, gid=r.gid, mode=r.mode,
                                secret_id=r.secret_id) for r in refs]


def secret_refs_from_pb(refs: Iterable[cpb.SecretReference]) -> list[SecretRef]:
    return [SecretRef(source=r.source, target=r.target, uid=r.uid, gid=r.gid,
                      mode=r.mode if r.HasField("mode") else _REF.mode, secret_id=r.secret_id) for r in refs]


def spec_to_pb(spec: ServiceSpec) -> cpb.ServiceSpec:
    placement, policy = spec.placement, spec.restart_policy
    try:
        ports = ports_to_pb(spec.ports)
        mode, condition = _MODE[spec.mode], _CONDITION[policy.condition]
        endpoint_mode = _ENDPOINT_MODE[spec.endpoint_mode]
    except KeyError as err:
        raise WireError(f"service {spec.name}: {err.args[0]!r} has no wire form") from None
    out = cpb.ServiceSpec(
        name=spec.name, image=spec.image, env=spec.env, ports=ports, labels=spec.labels, mode=mode,
        replicas=spec.replicas, limits=_resources_to_pb(spec.limits),
        reservations=_resources_to_pb(spec.reservations),
        placement=cpb.Placement(constraints=placement.constraints, preferences=placement.preferences,
                                max_replicas_per_node=placement.max_replicas_per_node),
        restart_policy=cpb.RestartPolicy(condition=condition, delay=policy.delay,
                                         max_attempts=policy.max_attempts, window=policy.window),
        binpack=spec.binpack, stop_grace_period=spec.stop_grace_period, storage_size=spec.storage_size,
        networks=[cpb.NetworkAttachment(name=n.name, aliases=n.aliases) for n in spec.networks],
        endpoint_mode=endpoint_mode, update_config=update_config_to_pb(spec.update_config),
        rollback_config=update_config_to_pb(spec.rollback_config), rebalance=spec.rebalance,
        secrets=secret_refs_to_pb(spec.secrets), configs=secret_refs_to_pb(spec.configs),
        container_name=spec.container_name, hostname=spec.hostname, user=spec.user,
        working_dir=spec.working_dir, stop_signal=spec.stop_signal, network_mode=spec.network_mode,
        read_only=spec.read_only, init=spec.init, tty=spec.tty, stdin_open=spec.stdin_open,
        privileged=spec.privileged, cap_add=spec.cap_add, cap_drop=spec.cap_drop, devices=spec.devices,
        sysctls=spec.sysctls,
        ulimits=[apb.Ulimit(name=u.name, soft=u.soft, hard=u.hard) for u in spec.ulimits],
        dns=spec.dns, extra_hosts=spec.extra_hosts, shm_size=spec.shm_size,
        mounts=[apb.MountConfig(type=m.type, source=m.source, target=m.target, readonly=m.read_only,
                                volume_nocopy=m.volume_nocopy, tmpfs_size=m.tmpfs_size,
                                tmpfs_mode=m.tmpfs_mode, shareable=m.shareable) for m in spec.mounts],
        log_max_size=spec.log_max_size, log_max_files=spec.log_max_files,
        depends_on=[cpb.Dependency(service=d.service, condition=d.condition) for d in spec.depends_on])
    if spec.healthcheck is not None:
        out.healthcheck.CopyFrom(healthcheck_to_pb(spec.healthcheck))
    # None (the image's) and [] (explicitly nothing) differ: presence says which.
    if spec.command is not None:
        out.command.SetInParent()
        out.command.values.extend(spec.command)
    if spec.entrypoint is not None:
        out.entrypoint.SetInParent()
        out.entrypoint.values.extend(spec.entrypoint)
    return out


def spec_from_pb(m: cpb.ServiceSpec) -> ServiceSpec:
    policy = m.restart_policy
    return ServiceSpec(
        name=m.name, image=m.image,
        command=list(m.command.values) if m.HasField("command") else None,
        entrypoint=list(m.entrypoint.values) if m.HasField("entrypoint") else None,
        env=list(m.env),
        ports=ports_from_pb(m.ports),
        labels=dict(m.labels),
        mode=_member(_MODE_OF, m.mode, "mode"),
        replicas=m.replicas if m.HasField("replicas") else _SPEC.replicas,
        limits=_resources_from_pb(m.limits),
        reservations=_resources_from_pb(m.reservations),
        placement=Placement(constraints=list(m.placement.constraints),
                            preferences=list(m.placement.preferences),
                            max_replicas_per_node=m.placement.max_replicas_per_node),
        restart_policy=RestartPolicy(
            condition=_member(_CONDITION_OF, policy.condition, "restart_policy.condition"),
            delay=policy.delay if policy.HasField("delay") else _SPEC.restart_policy.delay,
            max_attempts=policy.max_attempts, window=policy.window),
        binpack=m.binpack,
        stop_grace_period=(m.stop_grace_period if m.HasField("stop_grace_period")
                           else _SPEC.stop_grace_period),
        storage_size=m.storage_size,
        networks=[NetworkAttachment(name=n.name, aliases=list(n.aliases)) for n in m.networks],
        endpoint_mode=endpoint_mode_from_pb(m.endpoint_mode),
        healthcheck=healthcheck_from_pb(m.healthcheck) if m.HasField("healthcheck") else None,
        update_config=update_config_from_pb(m.update_config, "update_config"),
        rollback_config=update_config_from_pb(m.rollback_config, "rollback_config"),
        rebalance=m.rebalance if m.HasField("rebalance") else True,
        secrets=secret_refs_from_pb(m.secrets),
        configs=secret_refs_from_pb(m.configs),
        container_name=m.container_name, hostname=m.hostname, user=m.user, working_dir=m.working_dir,
        stop_signal=m.stop_signal,
        network_mode=_member(_NETWORK_MODES, m.network_mode, "network_mode"),
        read_only=m.read_only, init=m.init, tty=m.tty, stdin_open=m.stdin_open, privileged=m.privileged,
        cap_add=list(m.cap_add), cap_drop=list(m.cap_drop), devices=list(m.devices),
        sysctls=dict(m.sysctls), ulimits=[Ulimit(name=u.name, soft=u.soft, hard=u.hard) for u in m.ulimits],
        dns=list(m.dns), extra_hosts=list(m.extra_hosts), shm_size=m.shm_size,
        mounts=[_mount_from_pb(x) for x in m.mounts],
        log_max_size=m.log_max_size, log_max_files=m.log_max_files,
        depends_on=[Dependency(service=d.service,
                               condition=_member(_CONDITIONS, d.condition, "depends_on.condition"))
                    for d in m.depends_on],
    )


_NETWORK_MODES = {mode: mode for mode in ("", "host", "none")}
_CONDITIONS = {c: c for c in DEPENDENCY_CONDITIONS}
_MOUNT_TYPES = {t: t for t in ("volume", "bind", "tmpfs")}


def _mount_from_pb(m: Any) -> Mount:
    return Mount(type=_member(_MOUNT_TYPES, m.type, "mounts.type"), target=m.target, source=m.source,
                 read_only=m.readonly, volume_nocopy=m.volume_nocopy, tmpfs_size=m.tmpfs_size,
                 tmpfs_mode=m.tmpfs_mode, shareable=m.shareable)


def update_config_to_pb(c: UpdateConfig) -> cpb.UpdateConfig:
    try:
        action, order = _FAILURE_ACTION[c.failure_action], _ORDER[c.order.replace("-", "_")]
    except KeyError as err:
        raise WireError(f"update config: {err.args[0]!r} has no wire form") from None
    return cpb.UpdateConfig(parallelism=c.parallelism, delay=c.delay, failure_action=action,
                            monitor=c.monitor, max_failure_ratio=c.max_failure_ratio, order=order)


def update_config_from_pb(m: cpb.UpdateConfig, field: str) -> UpdateConfig:
    default = _SPEC.update_config
    return UpdateConfig(
        parallelism=m.parallelism if m.HasField("parallelism") else default.parallelism,
        delay=m.delay,
        failure_action=_member(_FAILURE_ACTION_OF, m.failure_action, f"{field}.failure_action"),
        monitor=m.monitor if m.HasField("monitor") else default.monitor,
        max_failure_ratio=m.max_failure_ratio,
        order=_member(_ORDER_OF, m.order, f"{field}.order").replace("_", "-"))


def healthcheck_to_pb(hc: HealthCheck) -> apb.HealthCheck:
    """A check on the wire: unset fields stay unset (the image's)."""
    out = apb.HealthCheck(test=list(hc.test), disable=hc.disable)
    for name in ("interval", "timeout", "retries", "start_period", "start_interval"):
        value = getattr(hc, name)
        if value is not None:
            setattr(out, name, value)
    if hc.http is not None:
        out.http.CopyFrom(apb.HttpProbe(port=hc.http.port, path=hc.http.path, status=hc.http.status))
    if hc.tcp is not None:
        out.tcp.CopyFrom(apb.TcpProbe(port=hc.tcp.port))
    return out


def healthcheck_from_pb(m: apb.HealthCheck) -> HealthCheck:
    def opt(name: str) -> Any:
        return getattr(m, name) if m.HasField(name) else None

    return HealthCheck(
        test=tuple(m.test), interval=opt("interval"), timeout=opt("timeout"), retries=opt("retries"),
        start_period=opt("start_period"), start_interval=opt("start_interval"),
        http=HttpProbe(port=m.http.port, path=m.http.path, status=m.http.status) if m.http.port else None,
        tcp=TcpProbe(port=m.tcp.port) if m.tcp.port else None, disable=m.disable)


# ---- services, tasks, nodes --------------------------------------------------

def service_to_pb(s: Service) -> cpb.Service:
    out = cpb.Service(
        id=s.id, spec=spec_to_pb(s.spec), created_at=s.created_at, updated_at=s.updated_at,
        version=s.version, vips=[cpb.VirtualIP(network_id=v.network_id, address=v.address) for v in s.vips],
        revision=s.revision, note=s.note,
        history=[cpb.Revision(revision=r.revision, spec=spec_to_pb(r.spec), created_at=r.created_at,
                              note=r.note) for r in s.history])
    u = s.update_status
    if u is not None:
        out.update_status.CopyFrom(cpb.UpdateStatus(
            state=u.state, started_at=u.started_at, completed_at=u.completed_at, message=u.message,
            total=u.total, updated=u.updated, failed=u.failed))
    return out


def service_from_pb(m: cpb.Service) -> Service:
    u = m.update_status
    if m.HasField("update_status") and u.state not in ROLLOUT_STATES:
        raise WireError(f"update_status.state: unknown {u.state!r}")
    return Service(id=m.id, spec=spec_from_pb(m.spec), created_at=m.created_at,
                   updated_at=m.updated_at, version=m.version,
                   vips=[VirtualIP(network_id=v.network_id, address=v.address) for v in m.vips],
                   revision=m.revision or 1, note=m.note,
                   history=[Revision(revision=r.revision, spec=spec_from_pb(r.spec), created_at=r.created_at,
                                     note=r.note) for r in m.history],
                   update_status=UpdateStatus(
                       state=u.state,  # type: ignore[arg-type]
                       started_at=u.started_at, completed_at=u.completed_at, message=u.message,
                       total=u.total, updated=u.updated, failed=list(u.failed))
                   if m.HasField("update_status") else None)


def _status_to_pb(s: TaskStatus) -> cpb.TaskStatus:
    return cpb.TaskStatus(state=_TASK_STATE[s.state], message=s.message, error=s.error,
                          timestamp=s.timestamp, container_id=s.container_id, exit_code=s.exit_code,
                          health=s.health)


def _status_from_pb(m: cpb.TaskStatus) -> TaskStatus:
    return TaskStatus(state=task_state_from_pb(m.state, "status.state"), message=m.message,
                      error=m.error, timestamp=m.timestamp, container_id=m.container_id,
                      exit_code=m.exit_code, health=m.health)


def task_to_pb(t: Task, specs: dict[int, cpb.ServiceSpec] | None = None) -> cpb.Task:
    """``specs`` memoises converted specs by identity, for a batch of tasks that
    share their service's spec object; pass it only while those objects live."""
    if specs is None:
        spec = spec_to_pb(t.spec)
    else:
        spec = specs.get(id(t.spec))  # type: ignore[assignment]
        if spec is None:
            spec = specs[id(t.spec)] = spec_to_pb(t.spec)
    return cpb.Task(id=t.id, service_id=t.service_id, service_name=t.service_name, slot=t.slot,
                    spec=spec, node_id=t.node_id, desired_state=_TASK_STATE[t.desired_state],
                    status=_status_to_pb(t.status), created_at=t.created_at, attempt=t.attempt,
                    version=t.version,
                    networks=[cpb.TaskNetwork(network_id=n.network_id, name=n.name, address=n.address,
                                              aliases=n.aliases) for n in t.networks],
                    data_node=t.data_node)


def task_from_pb(m: cpb.Task) -> Task:
    desired = (task_state_from_pb(m.desired_state, "desired_state") if m.HasField("desired_state")
               else _TASK.desired_state)
    return Task(id=m.id, service_id=m.service_id, service_name=m.service_name, slot=m.slot,
                spec=spec_from_pb(m.spec), node_id=m.node_id, desired_state=desired,
                status=_status_from_pb(m.status), created_at=m.created_at, attempt=m.attempt,
                networks=[TaskNetwork(network_id=n.network_id, name=n.name, address=n.address,
                                      aliases=list(n.aliases)) for n in m.networks],
                version=m.version, data_node=m.data_node)


def node_to_pb(n: Node) -> cpb.Node:
    """The node as clients see it."""
    return cpb.Node(id=n.id, name=n.name, address=n.address, labels=n.labels,
                    resources=cpb.NodeResources(cpus=n.resources.cpus,
                                                memory_bytes=n.resources.memory_bytes),
                    state=_NODE_STATE[n.state], availability=_AVAILABILITY[n.availability],
                    last_heartbeat=n.last_heartbeat, version=n.version, index=n.index,
                    metrics_address=n.metrics_address, ready_since=n.ready_since,
                    data_released=n.data_released)


def node_from_pb(m: cpb.Node) -> Node:
    return Node(id=m.id, name=m.name, address=m.address, labels=dict(m.labels),
                resources=NodeResources(cpus=m.resources.cpus, memory_bytes=m.resources.memory_bytes),
                state=_member(_NODE_STATE_OF, m.state, "state"),
                availability=_member(_AVAILABILITY_OF, m.availability, "availability"),
                last_heartbeat=m.last_heartbeat, index=m.index, version=m.version,
                metrics_address=m.metrics_address, ready_since=m.ready_since,
                data_released=m.data_released)


def network_to_pb(n: Network) -> cpb.Network:
    return cpb.Network(id=n.id, name=n.name, subnet=n.subnet, vni=n.vni, stack=n.stack,
                       labels=n.labels, created_at=n.created_at, version=n.version)


def network_from_pb(m: cpb.Network) -> Network:
    return Network(id=m.id, name=m.name, subnet=m.subnet, vni=m.vni, stack=m.stack,
                   labels=dict(m.labels), created_at=m.created_at, version=m.version)


# ---- task status (node -> control plane) -------------------------------------

def status_update_to_pb(task_id: str, status: TaskStatus) -> cpb.TaskStatusUpdate:
    return cpb.TaskStatusUpdate(task_id=task_id, status=_status_to_pb(status))


def status_update_from_pb(m: cpb.TaskStatusUpdate) -> tuple[str, TaskStatus]:
    return m.task_id, _status_from_pb(m.status)


# ---- events ------------------------------------------------------------------

def event_to_pb(action: str, obj: StoreObject | None = None,
                specs: dict[int, cpb.ServiceSpec] | None = None) -> cpb.Event:
    """An event of ``action`` (one of :data:`ACTIONS`) about ``obj`` (None for
    synced and keepalive); ``specs`` as for :func:`task_to_pb`."""
    if isinstance(obj, Task):
        return cpb.Event(action=_ACTION[action], task=task_to_pb(obj, specs))
    if isinstance(obj, Service):
        return cpb.Event(action=_ACTION[action], service=service_to_pb(obj))
    if isinstance(obj, Node):
        return cpb.Event(action=_ACTION[action], node=node_to_pb(obj))
    if isinstance(obj, Network):
        return cpb.Event(action=_ACTION[action], network=network_to_pb(obj))
    return cpb.Event(action=_ACTION[action])


def event_from_pb(m: cpb.Event) -> tuple[str, StoreObject | None]:
    """The event's action (one of :data:`ACTIONS`) and its object, if it has one."""
    action = _member(_ACTION_OF, m.action, "action")
    kind = m.WhichOneof("object")
    if kind == "task":
        return action, task_from_pb(m.task)
    if kind == "service":
        return action, service_from_pb(m.service)
    if kind == "node":
        return action, node_from_pb(m.node)
    if kind == "network":
        return action, network_from_pb(m.network)
    return action, None
