"""The container's directory on the host: ``bundle_dir``.

Layout: ``upper/`` and ``work/`` (overlay; none for a read-only rootfs) and
``rootfs/`` (an empty mountpoint on the host: the container's root is
assembled on it inside its own mount namespace only). The generated ``hosts``, ``hostname`` and
``resolv.conf`` are computed here (:func:`etc_files`) but written inside the
container's namespace, in memory (see ``rootfs``). Invariant: :func:`cleanup`
removes exactly what :func:`prepare` made, is idempotent, and leaves the
bundle dir itself (and the caller's logs in it) alone.

A writable layer with a size limit (``rootfs.size_bytes``) has it from
:func:`prepare` on, before the container's first write: a project quota on
``upper/`` and ``work/`` where the state dir's filesystem enforces one
(``quota``), else a filesystem of that size of its own, ``layer.img``
loop-mounted on ``layer/``, with ``upper/`` and ``work/`` inside it
(``loopfs``; the image, once made, is the record of which). :func:`release`
drops the quota or unmounts the layer (its image stays: a stopped
container keeps its layer), and the next :func:`prepare` (a restart) sets
or mounts it again. Every removal ends in :func:`release` or
:func:`cleanup`: ``LinuxRuntime.remove`` calls the one and its teardown
the other, also for what a dead supervisor left. Containers without a
limit never touch either module.
"""

from __future__ import annotations

import contextlib
import errno
import os

from common.errors import AgentError, SetupError
from nodeagent.runtime.spec import EMBEDDED_DNS, ContainerSpec

# The layer's own filesystem (``loopfs.IMAGE``, ``loopfs.MOUNT``), named
# here so that containers without a limit never import loopfs.
LAYER_IMAGE = "layer.img"
LAYER_MOUNT = "layer"
RUNTIME_DIRS: tuple[str, ...] = ("rootfs", "upper", "work", LAYER_MOUNT)
HOST_RESOLV_CONF = "/etc/resolv.conf"
HOST_GATEWAY = "host-gateway"  # an extra host's address: the bridge's gateway (Docker's word)
FS_IOC_GETFLAGS = 0x80086601  # _IOR('f', 1, long)
FS_IOC_SETFLAGS = 0x40086602  # _IOW('f', 2, long)
FS_TOPDIR_FL = 0x00020000


def prepare(spec: ContainerSpec) -> None:
    """The dirs the container needs: a read-only rootfs has no writable layer."""
    os.makedirs(mountpoint(spec), exist_ok=True)
    if spec.rootfs.readonly:
        return
    on_loop = bool(spec.rootfs.size_bytes) and _choose_loop(spec)
    if on_loop:
        mount_layer(spec)
    for path in writable_dirs(spec):
        os.makedirs(path, exist_ok=True)
    if spec.rootfs.size_bytes and not on_loop:
        limit(spec)
    if spec.rootfs.volatile:
        # A volatile overlay leaves work/work/incompat/volatile behind and
        # refuses to mount over it again: clear it for a restart.
        remove_tree(os.path.join(writable_dirs(spec)[1], "work"))


def spread_subdirs(path: str) -> bool:
    """Ask the filesystem to spread ``path``'s subdirectories (the bundles)
    over its allocation groups, as it spreads top-level directories.

    On ext4 this is the Orlov allocator's top-dir hint (``chattr +T``). A
    container's create and removal allocate and free a dozen inodes (bundle,
    upper, work, log, the overlay's own checks at mount). Kept in one group,
    every allocation there has to step over all the inodes freed in the last
    minutes, which ext4 skips when it has no journal: on such a disk an inode
    took over 200 us instead of 50 after a few hundred containers. False (and
    nothing changed) where the filesystem has no such hint."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        flags = bytearray(8)
        fcntl.ioctl(fd, FS_IOC_GETFLAGS, flags, True)
        value = int.from_bytes(flags, "little")
        if not value & FS_TOPDIR_FL:
            fcntl.ioctl(fd, FS_IOC_SETFLAGS, (value | FS_TOPDIR_FL).to_bytes(8, "little"))
        return True
    except OSError:  # ENOTTY, EOPNOTSUPP: tmpfs, overlay, ...
        return False
    finally:
        os.close(fd)


def mountpoint(spec: ContainerSpec) -> str:
    """Where the container's root is assembled, in its own mount namespace."""
    return os.path.join(spec.bundle_dir, "rootfs")


def writable_dirs(spec: ContainerSpec) -> tuple[str, str]:
    """The overlay's ``upper`` and ``work`` dirs: in the bundle dir, or on
    the layer's own filesystem where it has one."""
    base = spec.bundle_dir
    if spec.rootfs.size_bytes and os.path.exists(os.path.join(base, LAYER_IMAGE)):
        base = os.path.join(base, LAYER_MOUNT)
    return os.path.join(base, "upper"), os.path.join(base, "work")


def _choose_loop(spec: ContainerSpec) -> bool:
    """Whether the limited layer goes on a filesystem of its own: it is
    there already (a restart), or project quotas are not enforced here."""
    from nodeagent.runtime import quota  # only containers with a limit need it

    if os.path.exists(os.path.join(spec.bundle_dir, LAYER_IMAGE)):
        return True
    try:
        return not quota.detect(spec.bundle_dir).enforced
    except OSError as err:
        raise SetupError("storage_limit", spec.bundle_dir, str(err), err.errno or 0) from None


def mount_layer(spec: ContainerSpec) -> None:
    """Make (once) and mount the layer's filesystem of ``rootfs.size_bytes``;
    a SetupError, with nothing left mounted or attached, where it fails."""
    from nodeagent.runtime import loopfs

    try:
        loopfs.make(spec.bundle_dir, spec.rootfs.size_bytes)
        loopfs.mount(spec.bundle_dir)
    except (loopfs.LoopError, OSError) as err:
        raise SetupError("storage_loop", loopfs.image_path(spec.bundle_dir), str(err),
                         getattr(err, "errno", 0) or 0) from None


def limit(spec: ContainerSpec) -> None:
    """Hold the writable layer to ``rootfs.size_bytes`` with a project quota;
    a SetupError where this node cannot, so the container never runs
    without its limit."""
    from nodeagent.runtime import quota

    upper = writable_dirs(spec)[0]
    try:
        quota.apply_limit(writable_dirs(spec), spec.rootfs.size_bytes, seed=spec.id)
    except (quota.QuotaError, OSError) as err:
        raise SetupError("storage_quota", upper, str(err), getattr(err, "errno", 0) or 0) from None


def release(spec: ContainerSpec) -> None:
    """Drop the writable layer's size limit, if it has one: unmount its
    filesystem (the loop device goes with it; the image stays), or clear
    its project quota. An unmount that fails is raised (the removal is tried
    again); a quota left behind is harmless: it belongs to a project id no
    file carries once the layer is deleted, and ``quota`` hands such an id
    out again."""
    if not spec.rootfs.size_bytes or spec.rootfs.readonly:
        return
    if (os.path.exists(os.path.join(spec.bundle_dir, LAYER_IMAGE))
            or os.path.ismount(os.path.join(spec.bundle_dir, LAYER_MOUNT))):
        from nodeagent.runtime import loopfs

        try:
            loopfs.unmount(spec.bundle_dir)
        except loopfs.LoopError as err:
            raise AgentError(f"cannot unmount the writable layer of container "
                             f"{spec.id[:12]}: {err}") from None
        return
    from nodeagent.runtime import quota

    with contextlib.suppress(quota.QuotaError, OSError):
        quota.clear_limit(writable_dirs(spec)[0])


def cleanup(spec: ContainerSpec) -> None:
    release(spec)
    for name in RUNTIME_DIRS:
        remove_tree(os.path.join(spec.bundle_dir, name))
    if spec.rootfs.size_bytes:
        for name in (LAYER_IMAGE, LAYER_IMAGE + ".new"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(spec.bundle_dir, name))


def remove_tree(path: str) -> None:
    """``rm -rf path``, ignoring errors like ``shutil.rmtree(ignore_errors=True)``.

    For the trees of containers that no longer run (nothing writes to them
    meanwhile): ``rmdir`` first, then a plain walk with ``scandir``, which
    takes a third of the system calls of shutil's fd-based walk. Symlinks
    are removed, never followed. Anything unexpected is left to shutil."""
    try:
        os.rmdir(path)  # most are empty: the mountpoint, an unused upper dir
        return
    except FileNotFoundError:
        return
    except OSError as err:
        if err.errno != errno.ENOTEMPTY:
            _rmtree(path)
            return
    try:
        with os.scandir(path) as it:
            entries = list(it)
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                remove_tree(entry.path)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
        os.rmdir(path)
    except OSError:
        _rmtree(path)


def _rmtree(path: str) -> None:
    import shutil  # rarely needed, and it loads lzma, bz2 and zlib

    shutil.rmtree(path, ignore_errors=True)


def etc_files(spec: ContainerSpec) -> dict[str, str]:
    """The generated /etc files' contents, by name."""
    return {"hosts": hosts_file(spec), "hostname": spec.hostname + "\n",
            "resolv.conf": resolv_conf(spec)}


def hosts_file(spec: ContainerSpec) -> str:
    lines = [
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
    ]
    net = spec.network
    if net.mode == "bridge" and net.address:
        lines.append(f"{net.address}\t{spec.hostname}")
    elif net.attachments:
        lines.append(f"{net.attachments[0].address}\t{spec.hostname}")
    else:
        lines.append(f"127.0.1.1\t{spec.hostname}")
    # --add-host NAME:host-gateway: the node's address on the container's bridge.
    lines.extend(f"{net.gateway if ip == HOST_GATEWAY else ip}\t{name}" for name, ip in net.extra_hosts
                 if ip != HOST_GATEWAY or net.gateway)
    return "\n".join(lines) + "\n"


def resolv_conf(spec: ContainerSpec) -> str:
    """Explicit DNS servers win. Otherwise a container with a network of its
    own (bridge mode, overlay networks) asks the node's DNS server, at
    127.0.0.11 in its own namespace (``netns``), with ``ndots:0`` (a name is
    tried as given first: service names have no dots); host networking keeps
    the host's file; ``--network none`` has no resolver."""
    net = spec.network
    if net.dns:
        return "".join(f"nameserver {ip}\n" for ip in net.dns)
    if net.attached:
        return f"nameserver {EMBEDDED_DNS}\noptions ndots:0\n"
    if net.mode != "host":
        return ""
    try:
        with open(HOST_RESOLV_CONF) as f:
            return f.read()
    except OSError:
        return ""
