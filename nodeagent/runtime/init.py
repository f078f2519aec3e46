"""The container's birth: one clone and PID 1's setup checklist.

Parent P (the runtime's caller) clones C straight into new mount, uts, ipc,
pid and (unless host networking) net namespaces: C is PID 1 of its pid
namespace and runs :data:`INIT_STEPS`. One clone instead of unshare-then-fork
saves a second copy of P's address space per container.

C moves *itself* into the container's cgroup first (``0`` into each
hierarchy's ``tasks`` on v1, ``cgroup.procs`` on v2; see
:func:`nodeagent.runtime.cgroups.join_self`), then unshares its cgroup
namespace, whose root is thus the container's group. So everything C does,
and everything of the container's, is accounted to the container. In bridge
mode C waits for P's ``N`` (veth attached) before configuring it.

Then C reports ``R`` and blocks until P sends ``S``, then execs (a launch,
``start_now``, execs at once: P learns of it from EOF alone). Any failure
is reported on the close-on-exec report pipe and the child ``_exit(127)``s:
the exec never happens after a failed step. Nothing here imports or spawns
after the clone; the plan is built in P.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from nodeagent.runtime import _libc, channel, process, rootfs
from nodeagent.runtime.cgroups import join_self
from nodeagent.runtime.process import ProcessPlan, run_steps
from nodeagent.runtime.rootfs import RootfsPlan
from nodeagent.runtime.spec import NAMESPACES


@dataclass
class InitPlan:
    unshare_flags: int
    rootfs: RootfsPlan
    process: ProcessPlan
    configure_network: Callable[[], None] | None  # packed in P (network.inside)
    wait_for_network: bool
    report_fd: int  # write end, child -> parent
    control_fd: int  # read end, parent -> child
    cgroup_files: list[str]  # written with "0" by C to join its cgroup
    start_now: bool = False  # launch: exec right after setup, no R/S handshake


def unshare_flags(network_mode: str) -> int:
    """Namespaces C is cloned into: every one but cgroup (C unshares that once
    it has joined its group) and, with host networking, net."""
    flags = 0
    for name in NAMESPACES:
        if name == "cgroup" or (name == "net" and network_mode == "host"):
            continue
        flags |= _libc.NAMESPACE_FLAGS[name]
    return flags


def spawn(plan: InitPlan) -> int:
    """Clone C (in P) and return its pid. OSError if the clone itself fails."""
    pid = _libc.clone_process(plan.unshare_flags)
    if pid == 0:
        try:
            _container_init(plan)
        finally:
            os._exit(channel.EXIT_SETUP_FAILED)
    return pid


def close_inherited(plan: InitPlan) -> None:
    """Close every fd P had except ours and stdio: other containers' pipes
    must not be held open by this one."""
    keep = {0, 1, 2, plan.report_fd, plan.control_fd}
    keep.update(fd for fd in plan.process.stdio if fd is not None)
    low = 0
    for fd in sorted(keep):
        if fd > low:
            os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 1 << 20)


# --- PID 1's checklist ---------------------------------------------------------

def join_cgroup(plan: InitPlan) -> None:
    join_self(plan.cgroup_files)


def make_root_private(plan: InitPlan) -> None:
    rootfs.make_root_private(plan.rootfs)


def wait_network(plan: InitPlan) -> None:
    if plan.wait_for_network:
        _expect(plan.control_fd, b"N")


def configure_network(plan: InitPlan) -> None:
    if plan.configure_network is not None:
        plan.configure_network()


def enter_cgroup_namespace(plan: InitPlan) -> None:
    if "cgroup" in NAMESPACES:
        _libc.unshare(_libc.CLONE_NEWCGROUP)


def _rootfs_step(fn: Callable[[RootfsPlan], None]) -> Callable[[InitPlan], None]:
    return lambda plan: fn(plan.rootfs)


def _process_step(fn: Callable[[ProcessPlan], None]) -> Callable[[InitPlan], None]:
    return lambda plan: fn(plan.process)


INIT_STEPS: tuple[tuple[str, Callable[[InitPlan], None]], ...] = (
    ("close_fds", close_inherited),
    ("join_cgroup", join_cgroup),
    ("cgroup_namespace", enter_cgroup_namespace),
    ("make_root_private", make_root_private),
    ("wait_network", wait_network),
    ("configure_network", configure_network),
    ("mount_staging", _rootfs_step(rootfs.mount_staging)),
    ("mount_rootfs", _rootfs_step(rootfs.mount_overlay)),
    ("mount_proc", _rootfs_step(rootfs.mount_proc)),
    ("mount_sysfs", _rootfs_step(rootfs.mount_sysfs)),
    ("mount_dev", _rootfs_step(rootfs.mount_dev)),
    ("bind_etc_files", _rootfs_step(rootfs.bind_etc_files)),
    ("sethostname", _rootfs_step(rootfs.set_hostname)),
    ("pivot_root", _rootfs_step(rootfs.pivot)),
    ("masked_paths", _rootfs_step(rootfs.mask_paths)),
    ("readonly_paths", _rootfs_step(rootfs.readonly_paths)),
    ("readonly_rootfs", _rootfs_step(rootfs.readonly_rootfs)),
    *((name, _process_step(fn)) for name, fn in process.FINALIZE_STEPS),
)


def _container_init(plan: InitPlan) -> None:
    run_steps(INIT_STEPS, plan, plan.report_fd)
    if not plan.start_now:
        try:
            channel.send(plan.report_fd, b"R")
            _expect(plan.control_fd, b"S")
        except BaseException as exc:
            channel.fail(plan.report_fd, "wait_start", exc)
    process.exec_process(plan.process)


def _expect(fd: int, message: bytes) -> None:
    got = os.read(fd, 1)
    if got != message:
        # EOF: the runtime went away or gave up on this container; never exec.
        raise OSError(0, f"expected {message!r} from the runtime, got {got!r}")
