"""The worker's executor: a task's container, through the node's engine.

swarmkit's ``agent/exec`` shape, cut to what a thread-based worker needs:
``Executor.controller(task)`` gives a :class:`Controller` that drives one
task's container; the worker decides what should run, the controller how.

    Task --container_request (the one adapter)--> ContainerConfig
         --Engine.record--> supervisor record --Engine--> supervisor

Taken from swarmkit: ``Executor`` with ``describe`` (the node's resources
for its registration), ``configure`` (what the control plane tells the node
about itself; here the ports fenced off from containers) and ``controller``;
a ``Controller`` with ``prepare`` (everything a start needs: the image here,
pulled on demand, and the container's record built and checked, so that
the start only launches), ``start``, ``shutdown`` (stop signal, then SIGKILL
after the task's grace period), ``terminate`` (SIGKILL now) and ``remove``.

Left out: ``Wait``. A container's exit reaches the worker as a supervisor
event (``Worker.on_event``), not through a call blocked per task: a node
runs hundreds of tasks, and a thread each would cost more than the tasks'
bookkeeping. ``start`` does not block either: the supervisor creates and
starts the container in one call and answers the callback when its launch
ends, so a few launches are out at once. ``Update``: a task's spec never
changes under it (a new spec is a new task).

Invariant: :func:`container_request` is the only place a ``Task`` becomes a
container request (the spec's container settings, Compose's service keys,
map one to one onto the request's fields); everything else about the container (image lookup,
checks, node defaults such as the pids limit) is the engine's, as for
`orch run`.

Secrets and configs: ``prepare`` puts the task's files on a tmpfs of their
own (``runtime.secretfs``, under the agent's run dir) from the values its
assignment brought (:func:`task_files`), and adds the bind mounts to the
container's spec; the request and the spec name paths only, so nothing the
engine or the supervisor saves holds a value. The tmpfs goes when the
container is removed, when its start fails, and when it exits
(``Executor.release``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

# json_format (the engine records each request with it) and the registry
# check load with the worker, not on a node's first task.
from google.protobuf import json_format  # noqa: F401

import registry.reference  # noqa: F401
from common.errors import AgentError, NotFound
from model.objects import ServiceSpec, Task
from model.wire import healthcheck_to_pb
from nodeagent.runtime.secretfs import SecretFile, SecretFiles
from nodeagent.runtime.spec import as_plain
from proto import agent_pb2 as pb

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger

    from nodeagent.agent.engine import Engine, StartDone

__all__ = ["DEFAULT_STOP_GRACE", "SERVICE_LABEL", "TASK_LABEL", "Controller", "Executor",
           "NodeDescription", "TaskController", "TaskExecutor", "container_request", "task_files"]

TASK_LABEL = "orch.task"
SERVICE_LABEL = "orch.service"
# The grace period of a container found on the node whose task is no longer
# known (assigned no more, or from before an agent restart): Docker's default.
DEFAULT_STOP_GRACE = 10.0


def container_request(task: Task) -> pb.ContainerConfig:
    """The engine request for ``task``: its spec's values, pids 0 = the node's default.
    Only ``mode: host`` ports are the container's to publish (on its node); an
    ingress port is the routing mesh's, on every node. Its overlay networks
    come with the addresses the control plane gave the task, in order."""
    spec = task.spec
    cfg = pb.ContainerConfig(
        image=spec.image, name=spec.container_name or task.name, env=spec.env,
        ports=[pb.PortMapping(host_port=p.published, container_port=p.target, protocol=p.protocol)
               for p in spec.ports if p.mode == "host"],
        networks=[pb.NetworkAttachmentConfig(network_id=n.network_id, network_name=n.name,
                                             address=n.address, aliases=n.aliases)
                  for n in task.networks],
        memory_bytes=spec.limits.memory_bytes, cpus=spec.limits.cpus, pids_limit=spec.limits.pids,
        restart_policy="no", network=spec.network_mode or "bridge",
        labels={**spec.labels, TASK_LABEL: task.id, SERVICE_LABEL: task.service_name},
        # A hostname label may not end in '.' or '-', where a cut can fall.
        stop_timeout=spec.stop_grace_period, hostname=spec.hostname or task.name[:63].rstrip(".-"),
        storage_size_bytes=spec.storage_size,
        volatile_rootfs=True,  # a task's container runs once; a new task replaces it
        **_container_settings(spec),
    )
    if spec.command is not None:
        cfg.command.values.extend(spec.command)
    if spec.entrypoint is not None:
        cfg.entrypoint.values.extend(spec.entrypoint)
    if spec.healthcheck is not None:  # else the image's HEALTHCHECK, as the engine merges it
        cfg.healthcheck.CopyFrom(healthcheck_to_pb(spec.healthcheck))
    return cfg


def _container_settings(spec: ServiceSpec) -> dict[str, Any]:
    """The spec's container settings (Compose's keys) as the request's fields, each as `orch run`
    sets it: mounts in order, capabilities, limits, /etc files, the terminal, log rotation."""
    unset_is_the_images = {"workdir": spec.working_dir, "user": spec.user}  # optional: set only when given
    return dict(
        **{key: value for key, value in unset_is_the_images.items() if value},
        stop_signal=spec.stop_signal, read_only=spec.read_only,
        init=spec.init, tty=spec.tty, stdin_open=spec.stdin_open, privileged=spec.privileged,
        cap_add=spec.cap_add, cap_drop=spec.cap_drop, devices=spec.devices, sysctls=spec.sysctls,
        ulimits=[pb.Ulimit(name=u.name, soft=u.soft, hard=u.hard) for u in spec.ulimits],
        dns=spec.dns, extra_hosts=spec.extra_hosts, shm_size=spec.shm_size,
        mounts=[pb.MountConfig(type=m.type, source=m.source, target=m.target, readonly=m.read_only,
                               tmpfs_size=m.tmpfs_size, tmpfs_mode=m.tmpfs_mode,
                               volume_nocopy=m.volume_nocopy) for m in spec.mounts],
        log_max_size=spec.log_max_size, log_max_files=spec.log_max_files,
    )


def task_files(task: Task, payloads: Mapping[str, bytes]) -> list[SecretFile]:
    """The task's secrets and configs as files, each value from ``payloads``
    (by version id, as the assignment brought them); NotFound naming the
    first whose value did not come (the task is then rejected)."""
    out = []
    for kind, refs in (("secret", task.spec.secrets), ("config", task.spec.configs)):
        for ref in refs:
            data = payloads.get(ref.secret_id) if ref.secret_id else None
            if data is None:
                raise NotFound(f"{kind} {ref.source} (version {ref.secret_id or 'none'}) did not come with "
                               "the task: the control plane could not send it (see its log)")
            out.append(SecretFile(target=ref.target, data=data, uid=ref.uid, gid=ref.gid, mode=ref.mode))
    return out


@dataclass(frozen=True)
class NodeDescription:
    """What a node registers with: its resources."""

    cpus: float
    memory_bytes: int


class Controller(Protocol):
    """One task's container. ``prepare`` and the stop verbs block; ``start`` does not."""

    task_id: str
    container_id: str

    def prepare(self) -> None: ...
    def start(self, done: StartDone) -> None: ...
    def shutdown(self) -> None: ...
    def terminate(self) -> None: ...
    def remove(self) -> None: ...


class Executor(Protocol):
    def describe(self) -> NodeDescription: ...
    def configure(self, protected_ports: list[int]) -> None: ...
    def task_containers(self) -> list[dict[str, Any]]: ...
    def controller(self, task: Task, logger: FilteringBoundLogger,
                   payloads: Mapping[str, bytes] | None = None) -> Controller: ...
    def found(self, task_id: str, container_id: str, logger: FilteringBoundLogger,
              task: Task | None = None) -> Controller: ...
    def release(self, task_id: str) -> None: ...
    def prune(self, keep: set[str]) -> None: ...


class TaskController:
    """A task's container through the engine. Made for a task to start
    (:meth:`TaskExecutor.controller`), or for a container the node already
    has (:meth:`TaskExecutor.found`), whose task may no longer be known."""

    def __init__(self, engine: Engine, task_id: str, task: Task | None, container_id: str,
                 logger: FilteringBoundLogger, files: SecretFiles | None = None,
                 payloads: Mapping[str, bytes] | None = None) -> None:
        self.engine = engine
        self.task_id = task_id
        self.task = task
        self.container_id = container_id
        self.log = logger  # bound with node, service and task; the engine adds the container
        self.files = files  # where the task's secrets and configs go (None: it has none to make)
        self._payloads = dict(payloads or {})  # their values, until prepare has made the files
        self._record: dict[str, Any] | None = None

    def prepare(self) -> None:
        """The image here (a registry image is pulled on demand) and the
        container's record built and checked: a bad value is
        ``InvalidArgument``, a missing image ``NotFound``."""
        assert self.task is not None, "only a task's own controller prepares"
        cfg = container_request(self.task)
        cfg.image = self.engine.pulled(self.task.spec.image)
        record = self.engine.record(cfg)
        files = task_files(self.task, self._payloads)
        self._payloads = {}  # the values live on in the tmpfs only
        if files:
            if self.files is None:
                raise NotFound("this node has no place for a task's secrets and configs")
            mounts = self.files.make(self.task_id, files)
            # After the spec's own (volumes, binds, tmpfs), which the engine has put there.
            record["spec"]["mounts"] = [*record["spec"].get("mounts", []), *(as_plain(m) for m in mounts)]
        self._record = record

    def start(self, done: StartDone) -> None:
        """Create and start the prepared container without waiting:
        ``done(record, error)`` hears the supervisor's answer (on its reader
        thread, before any later event of the container)."""
        assert self._record is not None, "start before prepare"

        def answered(rec: dict[str, Any] | None, err: Any) -> None:
            if rec is not None:
                self.container_id = rec["id"]
            elif self.files is not None:
                self.files.release(self.task_id)  # no container came: its files go now
            done(rec, err)

        try:
            self.engine.run_async(self._record, answered, self.log)
        except AgentError:
            self.release()
            raise

    def shutdown(self) -> None:
        """The stop signal, then SIGKILL after the task's grace period;
        returns once the container has exited."""
        grace = self.task.spec.stop_grace_period if self.task is not None else DEFAULT_STOP_GRACE
        self.engine.stop(self.container_id, timeout=grace, logger=self.log)

    def terminate(self) -> None:
        self.engine.kill(self.container_id, "SIGKILL")

    def remove(self) -> None:
        """Remove the container, killing it first if it still runs; then its
        task's secrets and configs (their tmpfs), whatever the removal said."""
        try:
            self.engine.remove(self.container_id, force=True, logger=self.log)
        finally:
            self.release()

    def release(self) -> None:
        """Drop the task's secrets and configs (their tmpfs), if it has any here."""
        if self.files is not None:
            self.files.release(self.task_id)


class TaskExecutor:
    """Controllers for this node's tasks, and the node's side of its registration."""

    def __init__(self, engine: Engine, secrets_dir: str = "") -> None:
        self.engine = engine
        # Tasks' secrets and configs, each task's on a tmpfs here: under the
        # agent's run dir (beside its supervisor's socket), not its state dir.
        socket = getattr(engine.sup, "socket_path", "")
        self.files = SecretFiles(secrets_dir or os.path.join(
            os.path.dirname(socket) if socket else os.path.join(engine.state_dir, "run"), "secrets"))

    def describe(self) -> NodeDescription:
        return NodeDescription(cpus=float(os.cpu_count() or 1), memory_bytes=_memory_bytes())

    def configure(self, protected_ports: list[int]) -> None:
        """Fence these ports (the node API's, the control plane's, etcd's)
        off from containers: before any task starts."""
        self.engine.protect(protected_ports)

    def task_containers(self) -> list[dict[str, Any]]:
        """The supervisor's records of the node's task containers (running or not)."""
        return [rec for rec in self.engine.containers(all=True) if rec.get("labels", {}).get(TASK_LABEL)]

    def controller(self, task: Task, logger: FilteringBoundLogger,
                   payloads: Mapping[str, bytes] | None = None) -> TaskController:
        return TaskController(self.engine, task.id, task, "", logger, self.files, payloads)

    def found(self, task_id: str, container_id: str, logger: FilteringBoundLogger,
              task: Task | None = None) -> TaskController:
        return TaskController(self.engine, task_id, task, container_id, logger, self.files)

    def release(self, task_id: str) -> None:
        """Drop a task's secrets and configs: its container has exited (or is gone)."""
        self.files.release(task_id)

    def prune(self, keep: set[str]) -> None:
        """Drop the secrets and configs of every task but ``keep`` (those with a
        container here): what an agent before this one left."""
        self.files.prune(keep)


def _memory_bytes() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
