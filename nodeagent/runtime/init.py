"""The container's birth: one spawn of ``orch-init`` and PID 1's checklist.

The runtime R posix_spawns ``orch-init init`` (``orch-init/main.c``; see ``native``)
with this plan. That process opens a pidfd for R, whose pid the plan names,
and checks R is still its parent (step ``watch_runtime``); it clones C onto R
(``CLONE_PARENT``) straight into new mount, uts, ipc, pid and (unless host
networking) net namespaces, reports ``P<pid>`` and exits. C is R's child and
PID 1 of its pid namespace, and runs PID 1's checklist, whose step names a
SetupError reports:

    close_fds, join_cgroup, cgroup_namespace, make_root_private,
    wait_network, configure_network (loopback_up, disable_ipv6,
    eth0_address, eth0_netmask, eth0_up, default_route; then each overlay
    interface, whose failures are ``configure_network`` with the interface
    in their args), mount_staging,
    mount_rootfs, mount_proc, mount_sysfs, mount_dev, bind_etc_files, bind_mounts,
    sethostname, pivot_root, masked_paths, readonly_paths, readonly_rootfs,
    then the process checklist (see ``process``), and last ``parent_death``.

The plan's sysctls (namespaced ones, ``specbuild`` checked) are written
right after ``configure_network``, in C's own namespaces (step ``sysctl``);
its devices are made in /dev after the default ones (``mount_dev``),
/dev/shm is a tmpfs of ``shm_size`` bytes (64 MiB by default), and /sys
is read-write for a privileged container (``sysfs_rw``), as Docker's.

With ``reaper`` (``--init``) C does not exec the process itself: it forks
a child that does (step ``init_fork``; C resumes once the child has
exec'd or failed, as with vfork), and stays PID 1: it forwards every
signal it can catch to the child, reaps every zombie of the namespace, and
exits with the child's status (128+N for a death by signal N).

C moves *itself* into the container's cgroup first (``0`` into each
hierarchy's ``tasks`` on v1, ``cgroup.procs`` on v2; see
:meth:`~nodeagent.runtime.cgroups.Cgroup.self_join_files`), then unshares its
cgroup namespace, whose root is thus the container's group. So everything C
does, and everything of the container's, is accounted to the container. In
bridge mode, and with overlay networks, C waits for R's ``N`` (veths
attached, DNS sockets made) before configuring them: the plan's ``link``
entries, ``ethK ADDRESS PREFIXLEN`` each, in the order of the networks.

Then C reports ``R`` and blocks until R sends ``S``, then execs (a launch,
``start_now``, execs at once: R learns of it from EOF alone). Any failure
is reported on the close-on-exec report pipe and C ``_exit(127)``s: the exec
never happens after a failed step.

A container dies with its runtime: its output pipes and its exit status
belong to R, and nothing else could collect them. Just before the exec,
after every credential change (each clears the setting), C sets
``PR_SET_PDEATHSIG`` to SIGKILL and then polls R's pidfd and the report pipe
(R holds its read end until the exec): if R died before the prctl took
effect, no signal would come, so C exits instead of running unowned
(``parent_death``). A process that later execs a set-user-ID binary
loses the setting; the supervisor that replaces a dead one kills what is
left in the container's cgroup.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from nodeagent.network.inside import container_side
from nodeagent.runtime import _libc, native, process
from nodeagent.runtime.native import Entry
from nodeagent.runtime.process import ProcessPlan
from nodeagent.runtime.rootfs import RootfsPlan
from nodeagent.runtime.spec import NAMESPACES, Device, NetworkConfig


@dataclass
class InitPlan:
    unshare_flags: int
    rootfs: RootfsPlan
    process: ProcessPlan
    network: NetworkConfig  # the report fd is the process plan's
    control_fd: int  # read end, runtime -> child
    cgroup_files: list[str]  # written with "0" by C to join its cgroup
    runtime_pid: int  # R, whose death C follows (0: no check that it is alive)
    start_now: bool = False  # launch: exec right after setup, no R/S handshake
    reaper: bool = False  # --init: C stays PID 1, forks the process, reaps, forwards signals
    sysfs_rw: bool = False  # --privileged: /sys read-write, as Docker mounts it
    sysctls: dict[str, str] = field(default_factory=dict)  # "net.ipv4.ip_forward" -> "1"
    devices: tuple[Device, ...] = ()
    shm_size: int = 0  # bytes; 0: 64 MiB


def unshare_flags(network_mode: str) -> int:
    """Namespaces C is cloned into: every one but cgroup (C unshares that once
    it has joined its group) and, with host networking, net."""
    flags = 0
    for name in NAMESPACES:
        if name == "cgroup" or (name == "net" and network_mode == "host"):
            continue
        flags |= _libc.NAMESPACE_FLAGS[name]
    return flags


def entries(plan: InitPlan) -> Iterator[Entry]:
    """The plan as ``orch-init`` entries (see ``native``)."""
    yield "flags", plan.unshare_flags
    yield "runtime", plan.runtime_pid
    yield "control", plan.control_fd
    yield "start_now", int(plan.start_now)
    yield "cgroupns", int("cgroup" in NAMESPACES)
    for path in plan.cgroup_files:
        yield "cgfile", path
    yield from container_side(plan.network)
    for att in plan.network.attachments:
        yield "link", f"{att.ifname} {att.address} {att.prefixlen}"
    rootfs = plan.rootfs
    yield "staging", rootfs.staging
    yield "overlay", rootfs.overlay_data
    yield "readonly", int(rootfs.readonly)
    yield "hostname", rootfs.hostname
    for name, content in rootfs.etc_files.items():
        yield "etc", f"{name}={content}"
    for mount in rootfs.mounts:
        # Tab-separated: a target holds no control characters (model.secrets), a source is the node's.
        # A fourth field says how (none: a secret's bind), a fifth a tmpfs's mount data.
        entry = f"{mount.source}\t{mount.target}\t{'ro' if mount.readonly else 'rw'}"
        if mount.type == "tmpfs":
            entry += f"\ttmpfs\t{mount.options}"
        elif "rbind" in mount.options.split(","):
            entry += "\trbind"
        yield "bind", entry
    for path in rootfs.masked_paths:
        yield "masked", path
    for path in rootfs.readonly_paths:
        yield "ro", path
    yield from host_entries(plan)
    yield from process.entries(plan.process)


DEFAULT_SHM_SIZE = 64 << 20


def host_entries(plan: InitPlan) -> Iterator[Entry]:
    """``--init``, sysctls, devices, /sys and the size of /dev/shm (tab-separated
    fields: a sysctl name or a device path holds no tab, ``specbuild``
    checked)."""
    if plan.reaper:
        yield "reaper", 1
    if plan.sysfs_rw:
        yield "sysfs_rw", 1
    for key, value in plan.sysctls.items():
        yield "sysctl", f"/proc/sys/{key.replace('.', '/')}\t{value}"
    for d in plan.devices:
        yield "device", f"{d.path}\t{d.kind}\t{d.major}\t{d.minor}\t{d.file_mode}\t{d.uid}\t{d.gid}"
    yield "shmsize", plan.shm_size or DEFAULT_SHM_SIZE


def spawn(plan: InitPlan) -> int:
    """Spawn ``orch-init init`` and return its pid; it reports C's pid on the
    report pipe (``P<pid>``), then exits. SetupError if the spawn fails."""
    return native.spawn("init", entries(plan), [plan.control_fd, *process.fds(plan.process)])
