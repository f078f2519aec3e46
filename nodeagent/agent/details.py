"""The agent's objects in detail, as typed messages: what `orch inspect`,
`orch image inspect` and `orch system df` show.

The gRPC edge for them: the supervisor's record of a container (its runtime
spec included), the image store's :class:`Image` and its disk-use rows become
``ContainerDetails``, ``ImageDetails`` and ``DiskUsageResponse``
(proto/agent.proto). Field names follow the Python objects, so a client
turning a message back into a dict shows the shape those objects have.

The spec's host options (``devices``, ``sysctls``, ``shm_size``, ``init``,
``privileged``) have no ``RuntimeSpec`` fields: the request (``config``)
shows them as given, and their effects show in the spec (capabilities,
seccomp, rlimits, masked and read-only paths, DNS and extra hosts).
"""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format

from model.health import HealthCheck, from_image_config
from model.wire import healthcheck_to_pb
from nodeagent.images.model import Image
from nodeagent.runtime.spec import ContainerSpec, Mount
from proto import agent_pb2 as pb

__all__ = ["container_details", "disk_usage", "image_details"]


def container_details(rec: dict[str, Any], container: pb.Container) -> pb.ContainerDetails:
    """``rec``: the supervisor's full record (``get`` with ``full``); ``container``: its summary."""
    return pb.ContainerDetails(
        container=container, config=_config(rec.get("config") or {}),
        spec=runtime_spec(ContainerSpec.from_dict(rec["spec"])), labels=rec.get("labels") or {},
        log_path=rec.get("log_path", ""), stopped_by_user=bool(rec.get("stopped_by_user")),
        pid_start_time=int(rec.get("pid_start_time") or 0),
        healthcheck=_healthcheck(HealthCheck.from_dict(rec.get("healthcheck"))))


def _healthcheck(check: HealthCheck | None) -> pb.HealthCheck | None:
    return healthcheck_to_pb(check) if check is not None else None


def _config(recorded: dict[str, Any]) -> pb.ContainerConfig:
    """The request as recorded (``MessageToDict`` of a ContainerConfig); a field
    this version does not know is left out rather than failing the inspect."""
    return json_format.ParseDict(recorded, pb.ContainerConfig(), ignore_unknown_fields=True)


def runtime_spec(spec: ContainerSpec) -> pb.RuntimeSpec:
    proc, net, res = spec.process, spec.network, spec.resources
    resources = pb.RuntimeResources()
    if res.memory_bytes is not None:
        resources.memory_bytes = res.memory_bytes
    if res.cpus is not None:
        resources.cpus = res.cpus
    if res.pids_limit is not None:
        resources.pids_limit = res.pids_limit
    return pb.RuntimeSpec(
        id=spec.id, name=spec.name, hostname=spec.hostname, bundle_dir=spec.bundle_dir,
        rootfs=pb.RootfsSpec(lower_dirs=spec.rootfs.lower_dirs, readonly=spec.rootfs.readonly,
                             volatile=spec.rootfs.volatile, size_bytes=spec.rootfs.size_bytes),
        process=pb.ProcessSpec(
            args=proc.args, env=proc.env, cwd=proc.cwd, user=proc.user,
            capabilities=proc.capabilities, no_new_privileges=proc.no_new_privileges,
            seccomp=proc.seccomp,
            rlimits=[pb.Rlimit(name=r.name, soft=r.soft, hard=r.hard) for r in proc.rlimits],
            tty=proc.tty, console_size=pb.WindowSize(rows=proc.console_size[0], cols=proc.console_size[1])),
        resources=resources,
        network=pb.NetworkSpec(
            mode=net.mode, bridge=net.bridge, address=net.address, prefixlen=net.prefixlen,
            gateway=net.gateway, host_veth=net.host_veth,
            ports=[pb.PortMapping(host_port=p.host_port, container_port=p.container_port,
                                  protocol=p.protocol, host_ip=p.host_ip) for p in net.ports],
            dns=net.dns, extra_hosts=[pb.HostEntry(name=name, ip=ip) for name, ip in net.extra_hosts],
            attachments=[pb.OverlayAttachment(**vars(a)) for a in net.attachments]),
        cgroup_name=spec.cgroup_name, masked_paths=spec.masked_paths,
        readonly_paths=spec.readonly_paths, stop_signal=spec.stop_signal,
        stop_timeout=spec.stop_timeout, labels=spec.labels,
        mounts=[_mount(m) for m in spec.mounts],
        devices=[pb.DeviceNode(**vars(d)) for d in spec.devices], sysctls=spec.sysctls,
        shm_size=spec.shm_size, init=spec.init, privileged=spec.privileged)


def _mount(m: Mount) -> pb.BindMount:
    """As Docker shows a mount: a tmpfs has no source; a bind's type is left unset."""
    return pb.BindMount(source="" if m.type == "tmpfs" else m.source, target=m.target,
                        readonly=m.readonly, type="" if m.type == "bind" else m.type,
                        volume=m.volume, options=m.options)


def image_details(image: Image) -> pb.ImageDetails:
    c = image.config
    return pb.ImageDetails(
        id=image.id, repo_tags=image.repo_tags, manifest_digest=image.manifest_digest,
        created=image.created, size=image.size,
        config=pb.ImageConfig(cmd=c.cmd, entrypoint=c.entrypoint, env=c.env, working_dir=c.working_dir,
                              user=c.user, stop_signal=c.stop_signal, exposed_ports=c.exposed_ports,
                              labels=c.labels,
                              healthcheck=_healthcheck(from_image_config({"Healthcheck": c.healthcheck}))),
        diff_ids=image.diff_ids, layer_digests=image.layer_digests, unpacked_size=image.unpacked_size,
        repo_digests=image.repo_digests)


def disk_usage(rows: list[dict[str, Any]]) -> pb.DiskUsageResponse:
    """The image store's ``disk_usage()`` rows: one per image, then the "total" row with ``disk``."""
    *images, total = rows
    return pb.DiskUsageResponse(images=[_usage(row) for row in images], total=_usage(total),
                                disk=int(total.get("disk", 0)))


def _usage(row: dict[str, Any]) -> pb.ImageUsage:
    return pb.ImageUsage(ref=row["ref"], refs=row["refs"], id=row["id"], logical_size=row["logical_size"],
                         shared=row["shared"], unique=row["unique"])
