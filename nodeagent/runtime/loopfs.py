"""Writable-layer size limits on any Linux with loop devices: a filesystem
of exactly the size, per container.

Role: where the state dir's filesystem enforces no project quotas
(``quota.detect``), a container that asks for a size gets its writable
layer (overlay ``upper`` and ``work``) on an ext4 of that size made for it,
as Docker's devicemapper driver gave each container a thin device of its
own: ``layer.img``, a sparse file in the bundle dir, made with
``mkfs.ext4``, attached to a loop device and mounted on ``layer/`` in the
bundle dir. A write past the size fails with ENOSPC inside the container;
the host file is never larger than the size (its blocks are allocated as
the container writes). ext4's own metadata takes a few percent of it.
:func:`detect` says how this node keeps a limit: project quotas first,
where they are enforced, else this, else why it cannot.

Invariants:
- The image file is the record: a bundle holding ``layer.img`` keeps its
  writable layer in ``layer/`` (``bundle.writable_dirs``). The image is a
  stopped container's layer, kept for its next start; it goes with the
  bundle. It is made under another name and renamed, so a bundle never
  holds a half-made one.
- The loop device is attached with LO_FLAGS_AUTOCLEAR in one call
  (LOOP_CONFIGURE), and nothing but the mount holds it: unmounting
  detaches it, and any failure before the mount, even a SIGKILL, detaches
  it when our fd closes. So no device name is recorded anywhere: what a
  dead supervisor leaves is a mount, which its successor's release
  unmounts (``Supervisor._load`` -> ``LinuxRuntime.remove`` ->
  ``bundle.release``).
- One ext4 instance per image: a loop device already backed by the image
  (its filesystem still mounted in some other mount namespace) is mounted
  again rather than a second device attached; two instances of one ext4
  would corrupt it.
- The mount is made in the supervisor's mount namespace (the host's)
  before the container's init is cloned, so the container's namespace
  starts with a copy for its overlay to use; a container's namespace drops
  its copies of other containers' layers at pivot_root. A mount namespace
  that others create while a layer is mounted (``unshare -m``) holds a
  copy, and with it the device, until it exits, unless the state dir's
  mount is shared (systemd makes "/" shared) and the copy a slave (``ip
  netns exec`` makes one): then the unmount here reaches it too. The file
  is deleted either way; its blocks are freed when the device goes.

Why ioctls rather than ``losetup``: losetup(8) cannot set autoclear (only
``mount -o loop`` does), and attaching first then setting the flag leaves a
device attached for good if the process dies in between. LOOP_CONFIGURE
(Linux 5.8) does both at once, in the supervisor, without a process spawn.
``mkfs.ext4`` is the one helper spawned (vfork+exec, as subprocess does).

mkfs options, measured (``bench/storage_limit.py``, alternating; ms for
mkfs, and what the file holds on the host afterwards, for 8M / 10G / 1T /
10T): the defaults 2.8 / 7.9 / 34 / 350 ms and 1.2 MiB / 68 MiB / 1.0 GiB /
1.1 GiB (mostly the journal); with ``-O ^has_journal -m 0`` (no journal,
no blocks reserved for root) 2.7 / 7.7 / 34 / 244 ms and 160 KiB / 4.2 /
16 / 143 MiB; and ``^resize_inode`` (no room to grow: it never grows) 2.5 /
3.0 / 28 / 233 ms; and ``sparse_super2 -E num_backup_sb=0`` (no backup
superblocks: a scratch filesystem is never repaired) 2.5 / 2.7 / 22 / 141
ms; and ``-G 4096`` (larger flex groups, so fewer descriptors to write) 2.6
/ 2.6 / 9.0 / 60 ms and 92 / 120 / 1136 / 7864 KiB: chosen. The
bytes-per-inode ratio changes neither (inode tables are not written: mkfs
discards the sparse file, which zeroes it, and marks them zeroed, so the
kernel has none to zero after the mount either), so mke2fs's size-based
default is kept: fewer inodes would only let a layer of many small files
run out of inodes while it still has space. Attaching and mounting take
about 1 ms up to 100G (4 ms at 1T, 33 ms at 10T: ext4 reads its group
descriptors), unmounting and detaching about 1 ms. A size beyond what the
state dir's filesystem can hold in one file (16 TiB on ext4) fails at start.

What it adds to a container's start (same VM, 2 cores, quiet; medians of
20, alternating with and without): through the runtime alone (create,
start, wait, remove of ``true``) 4.3 -> 9.9 ms with 8M, 11.1 ms with 10G;
``orch run --rm --network none busybox true`` 16.6 -> 29.4 ms with 8M,
30.7 ms with 10G. About 7 ms of that is the layer (mkfs, mount, and at
removal unmount and delete); the rest is the CLI parsing ``--storage-opt``
(a ``--read-only`` run, which gets no layer, is 6.6 ms slower with the
option too). Containers without a size do none of this.

Errors: :class:`LoopError` (what failed and why, with its errno).
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import struct
import subprocess
from dataclasses import dataclass

from nodeagent.runtime import quota

IMAGE = "layer.img"
MOUNT = "layer"
MIN_SIZE = 1 << 20  # below this, ext4's own metadata leaves a container next to nothing

MKFS_ARGS = ("-q", "-O", "^has_journal,^resize_inode,sparse_super2", "-E", "num_backup_sb=0",
             "-G", "4096", "-m", "0")
TOOL_DIRS = ("/usr/sbin", "/sbin", "/usr/bin", "/bin")
LOOP_CONTROL = "/dev/loop-control"
CONFIGURE_TRIES = 16  # another process may take the free device first (EBUSY)

# <linux/loop.h>
LOOP_CONFIGURE = 0x4C0A
LOOP_CTL_GET_FREE = 0x4C82
LO_FLAGS_AUTOCLEAR = 4
# struct loop_info64 (232 bytes): lo_device, lo_inode, lo_rdevice, lo_offset,
# lo_sizelimit (u64); lo_number, lo_encrypt_type, lo_encrypt_key_size,
# lo_flags (u32); lo_file_name[64], lo_crypt_name[64], lo_encrypt_key[32];
# lo_init[2] (u64).
LOOP_INFO64 = struct.Struct("=5Q4I64s64s32s2Q")
# struct loop_config (304 bytes): fd, block_size (u32), loop_info64, __reserved[8] (u64).
LOOP_CONFIG = struct.Struct(f"=II{LOOP_INFO64.size}s8Q")

# <sys/mount.h>
MS_NOSUID = 2
MS_NODEV = 4
MNT_DETACH = 2


class LoopError(Exception):
    """The layer's filesystem could not be made, attached, mounted or
    unmounted; ``errno`` is the failed call's error number (0: none)."""

    def __init__(self, message: str, err: int | None = 0) -> None:
        super().__init__(message)
        self.errno = err or 0


# ---- where a bundle keeps it --------------------------------------------------------------

def image_path(bundle_dir: str) -> str:
    return os.path.join(bundle_dir, IMAGE)


def mount_dir(bundle_dir: str) -> str:
    return os.path.join(bundle_dir, MOUNT)


def mounted(bundle_dir: str) -> bool:
    return os.path.ismount(mount_dir(bundle_dir))


# ---- what this node can do ----------------------------------------------------------------

def problem() -> str | None:
    """Why this node cannot make loop filesystems, or None if it can."""
    if _kernel() < (5, 8):
        return f"this kernel ({os.uname().release}) is older than Linux 5.8 (LOOP_CONFIGURE)"
    try:
        if not stat.S_ISCHR(os.stat(LOOP_CONTROL).st_mode):
            return f"{LOOP_CONTROL} is not a character device"
    except OSError:
        return f"there is no {LOOP_CONTROL} (load the loop module: modprobe loop)"
    if _tool("mkfs.ext4") is None:
        return "mkfs.ext4 is not installed (Debian: apt-get install e2fsprogs)"
    return None


@dataclass(frozen=True)
class Support:
    """How this node holds a writable layer to a size: ``mechanism`` is
    ``"quota"`` (the state dir's project quotas), ``"loop"`` (this module)
    or ``""`` (neither; ``loop_problem`` and the quota's reason say why)."""

    quota: quota.Support
    loop_problem: str | None

    @property
    def mechanism(self) -> str:
        if self.quota.enforced:
            return "quota"
        return "" if self.loop_problem else "loop"

    @property
    def enforced(self) -> bool:
        return bool(self.mechanism)

    def describe(self) -> str:
        """The node's answer to "how is a storage size limit enforced here?"."""
        if self.mechanism == "quota":
            return self.quota.describe()
        if self.mechanism == "loop":
            return (f"loop-mounted ext4 per container (project quotas are not available: "
                    f"{self.quota.reason()})")
        return f"not enforced: {self.reason()}"

    def reason(self) -> str:
        return f"{self.quota.reason()}; and no loop filesystem: {self.loop_problem}"

    def refusal(self, size_bytes: int) -> str:
        """The error for a container that asks for a limit this node cannot keep."""
        return (f"storage size limit ({size_bytes} bytes) cannot be enforced on this node: "
                f"{self.reason()}. To enable it, {quota.FIX}; or make loop devices and "
                f"mkfs.ext4 available")


def detect(path: str) -> Support:
    """How a limit is kept for containers under ``path`` (the state dir's
    ``containers/``; it need not exist yet)."""
    support = quota.detect(path)
    return Support(support, None if support.enforced else problem())


# ---- a container's layer ------------------------------------------------------------------

def make(bundle_dir: str, size_bytes: int, mkfs_args: tuple[str, ...] = MKFS_ARGS) -> None:
    """The bundle's ``layer.img``: a sparse file of ``size_bytes`` holding an
    empty ext4. Nothing is done if it exists (a restart keeps its layer)."""
    image = image_path(bundle_dir)
    if os.path.exists(image):
        return
    if size_bytes < MIN_SIZE:
        raise LoopError(f"size {size_bytes} is below the minimum of {MIN_SIZE} bytes")
    mkfs = _tool("mkfs.ext4")
    if mkfs is None:
        raise LoopError("mkfs.ext4 is not installed (Debian: apt-get install e2fsprogs)",
                        errno.ENOENT)
    new = image + ".new"
    try:
        fd = os.open(new, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.ftruncate(fd, size_bytes)
        finally:
            os.close(fd)
        done = subprocess.run([mkfs, *mkfs_args, new], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if done.returncode != 0:
            raise LoopError(f"{mkfs} {' '.join(mkfs_args)} {new}: "
                            f"{_last_line(done.stderr) or f'exit status {done.returncode}'}")
        os.rename(new, image)
    except OSError as err:
        _unlink(new)
        if err.errno == errno.EFBIG:
            raise LoopError(f"{new}: the state dir's filesystem cannot hold a file of "
                            f"{size_bytes} bytes", err.errno) from err
        raise LoopError(f"{new}: {err.strerror}", err.errno) from err
    except BaseException:
        _unlink(new)
        raise


def mount(bundle_dir: str) -> None:
    """Mount the bundle's image on ``layer/`` (a loop device with
    autoclear). Idempotent: an image already mounted there stays."""
    image, target = image_path(bundle_dir), mount_dir(bundle_dir)
    os.makedirs(target, exist_ok=True)
    if os.path.ismount(target):
        return
    existing = attached_device(image)
    if existing:  # its filesystem lives on elsewhere: one instance of it only
        _mount(existing, target)
        return
    device, fd = _attach(image)
    try:
        _mount(device, target)
    finally:
        os.close(fd)  # the mount holds the device now; on failure, this detaches it


def unmount(bundle_dir: str) -> bool:
    """Unmount ``layer/`` if it is a mount (lazily: a user still inside does
    not keep it here); the loop device goes with its last user. Returns
    whether anything was mounted."""
    target = mount_dir(bundle_dir)
    if not os.path.ismount(target):
        return False
    from nodeagent.runtime import _libc

    try:
        _libc.umount2(target, MNT_DETACH)
    except OSError as err:
        raise LoopError(f"umount2({target}, MNT_DETACH): {_strerror(err)}", err.errno) from err
    return True


def remove(bundle_dir: str) -> None:
    """Unmount the layer and delete its mountpoint and image."""
    unmount(bundle_dir)
    for path in (image_path(bundle_dir), image_path(bundle_dir) + ".new"):
        _unlink(path)
    try:
        os.rmdir(mount_dir(bundle_dir))
    except FileNotFoundError:
        pass
    except OSError as err:
        raise LoopError(f"rmdir({mount_dir(bundle_dir)}): {err.strerror}", err.errno) from err


# ---- loop devices ---------------------------------------------------------------------------

def attached_device(image: str) -> str | None:
    """The loop device backed by ``image`` (as the kernel names its file),
    if one is attached."""
    image = os.path.realpath(image)
    return next((dev for dev, backing in backing_files().items() if backing == image), None)


def backing_files() -> dict[str, str]:
    """Every attached loop device (/dev/loopN) and the file behind it, from
    sysfs (a file deleted since ends in " (deleted)")."""
    found = {}
    try:
        names = os.listdir("/sys/block")
    except OSError:
        return {}
    for name in names:
        if not name.startswith("loop"):
            continue
        try:
            with open(f"/sys/block/{name}/loop/backing_file") as f:
                found[f"/dev/{name}"] = f.read().rstrip("\n")
        except OSError:  # not attached
            continue
    return found


def _attach(image: str) -> tuple[str, int]:
    """A free loop device configured on ``image`` with autoclear, and an
    open fd of it (closing the last fd of an unmounted one detaches it)."""
    try:
        backing = os.open(image, os.O_RDWR | os.O_CLOEXEC)
    except OSError as err:
        raise LoopError(f"open({image}): {err.strerror}", err.errno) from err
    try:
        info = LOOP_INFO64.pack(0, 0, 0, 0, 0, 0, 0, 0, LO_FLAGS_AUTOCLEAR,
                                os.fsencode(image)[:63], b"", b"", 0, 0)
        config = LOOP_CONFIG.pack(backing, 0, info, *([0] * 8))
        ctl = _open(LOOP_CONTROL, os.O_RDWR)
        try:
            for _ in range(CONFIGURE_TRIES):
                device = _free_device(ctl)
                fd = _open(device, os.O_RDWR)
                try:
                    fcntl.ioctl(fd, LOOP_CONFIGURE, config)
                    return device, fd
                except OSError as err:
                    os.close(fd)
                    if err.errno != errno.EBUSY:  # EBUSY: another process took it first
                        raise LoopError(f"ioctl({device}, LOOP_CONFIGURE, {image}): "
                                        f"{_loop_strerror(err.errno)}", err.errno) from err
            raise LoopError(f"no free loop device after {CONFIGURE_TRIES} tries", errno.EBUSY)
        finally:
            os.close(ctl)
    finally:
        os.close(backing)  # the device keeps its own reference to the file


def _free_device(ctl: int) -> str:
    try:
        return f"/dev/loop{fcntl.ioctl(ctl, LOOP_CTL_GET_FREE)}"
    except OSError as err:
        raise LoopError(f"ioctl({LOOP_CONTROL}, LOOP_CTL_GET_FREE): {err.strerror}",
                        err.errno) from err


def _mount(device: str, target: str) -> None:
    """nosuid and nodev: this is the host's view of files a container wrote.
    The container sees them through its overlay, whose own flags apply (its
    device nodes work; set-user-ID does nothing under no_new_privs anyway)."""
    from nodeagent.runtime import _libc

    try:
        _libc.mount(device, target, "ext4", MS_NOSUID | MS_NODEV)
    except OSError as err:
        raise LoopError(f"mount({device}, {target}, ext4): {_strerror(err)}", err.errno) from err


def _open(path: str, flags: int) -> int:
    try:
        return os.open(path, flags | os.O_CLOEXEC)
    except OSError as err:
        raise LoopError(f"open({path}): {err.strerror}", err.errno) from err


def _strerror(err: OSError) -> str:
    return os.strerror(err.errno) if err.errno else str(err)


def _loop_strerror(err: int | None) -> str:
    if err == errno.EINVAL or err == errno.ENOTTY:
        return f"{os.strerror(err)} (LOOP_CONFIGURE needs Linux 5.8)"
    return os.strerror(err or 0)


def _kernel() -> tuple[int, int]:
    try:
        major, minor = os.uname().release.split(".")[:2]
        return int(major), int(minor.split("-")[0])
    except ValueError:
        return (0, 0)


def _tool(name: str) -> str | None:
    """``name`` on PATH or in the usual sbin dirs (a service's PATH may lack them)."""
    dirs = [*os.environ.get("PATH", "").split(os.pathsep), *TOOL_DIRS]
    for d in dirs:
        path = os.path.join(d, name)
        if d and os.access(path, os.X_OK):
            return path
    return None


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


__all__ = ["IMAGE", "MIN_SIZE", "MOUNT", "LoopError", "Support", "attached_device",
           "backing_files", "detect", "image_path", "make", "mount", "mount_dir", "mounted",
           "problem", "remove", "unmount"]
