"""Back to the host's mount namespace, for an agent started in another one.

``ip netns exec NODE orch agent ...`` runs the agent in a mount namespace of
its own, where /sys is a new sysfs (for the network namespace's devices):
the host's cgroup hierarchies under /sys/fs/cgroup are hidden there, and the
agent would find "no usable cgroup hierarchy". An agent needs the host's
mounts (cgroups, its state dir, /run/netns) and only its node's *network*
namespace, so it joins init's mount namespace again, keeping the network
namespace it was started in (what ``nsenter --net`` gives the agents that
``orch up`` starts).

Invariants:
- Call it first thing, before the process has a second thread: the kernel
  refuses setns(CLONE_NEWNS) to a process sharing its filesystem attributes
  with another thread (EINVAL). Python 3.11 has no os.setns: ctypes.
- The working directory is kept (setns moves it to the namespace's root).
- Nothing happens when the process is already in init's mount namespace, or
  cannot see it. Where init's namespace files are closed even to root (some
  VMs' init protects itself), kthreadd's stand in: a kernel thread is always
  in the initial mount namespace, init's own.
"""

from __future__ import annotations

import os

__all__ = ["HostNamespaceError", "enter_host_mounts"]

CLONE_NEWNS = 0x00020000


class HostNamespaceError(Exception):
    """The process is in another mount namespace and cannot join the host's."""


def _same(a: str, b: str) -> bool | None:
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return None
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def host_mnt() -> str | None:
    """A path to the host's mount namespace that this process can open."""
    try:
        os.stat("/proc/1/ns/mnt")
        return "/proc/1/ns/mnt"
    except OSError:
        pass
    try:
        with open("/proc/2/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # kthreadd: pid 2, parent 0, in the initial pid namespace only.
    if stat.startswith(b"2 (kthreadd) ") and stat[stat.rindex(b")") + 2:].split()[1] == b"0":
        return "/proc/2/ns/mnt"
    return None


def enter_host_mounts() -> bool:
    """Join the host's mount namespace if this process is in another one;
    True if it did. HostNamespaceError if it is in another one and cannot."""
    target = host_mnt()
    if target is None or _same("/proc/self/ns/mnt", target) is not False:
        return False
    threads = len(os.listdir("/proc/self/task"))
    if threads > 1:
        raise HostNamespaceError(f"cannot join the host's mount namespace: {threads} threads already run")
    import ctypes

    try:
        cwd: str | None = os.getcwd()
    except OSError:
        cwd = None
    try:
        fd = os.open(target, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as err:
        raise HostNamespaceError(f"cannot join the host's mount namespace: {target}: {err.strerror}")
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.setns(fd, CLONE_NEWNS) != 0:
            raise HostNamespaceError(f"cannot join the host's mount namespace: setns({target}): "
                                     f"{os.strerror(ctypes.get_errno())}")
    finally:
        os.close(fd)
    try:
        os.chdir(cwd or "/")
    except OSError:  # not there in the host's mounts
        os.chdir("/")
    return True
