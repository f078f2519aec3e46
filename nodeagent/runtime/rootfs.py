"""The container's filesystem, built inside its own mount namespace.

Built by the container's PID 1 (``orch-init/rootfs.c``) before pivot_root,
from the :class:`RootfsPlan` made here. ``/`` is made rprivate first; then a small
*staging* tmpfs goes on ``bundle/rootfs``::

    staging/init/{proc,sys,dev,etc/hosts,etc/hostname,etc/resolv.conf}
                          empty mountpoints: the overlay's topmost lower layer
    staging/{hosts,hostname,resolv.conf}
                          the generated files, bound over the mountpoints
    staging/root          where the overlay is mounted, and pivoted into

then the overlay (init layer over the image's layers, writable ``upper``),
/proc, /sys, /dev (the OCI default devices, ``pts``, ``shm``), the /etc
binds, the spec's bind mounts (``ContainerSpec.mounts``: a cluster task's
secrets and configs, read-only, each on a mountpoint made in the init
layer: its parent directories and an empty file there, so nothing of the
image's, not even a symlink, lies on its path), pivot_root, masked and
read-only paths.

Why staging: the mountpoints and generated files are the same kind of thing
every time, and making them on the container's disk (copying up ``/etc`` to
create ``/etc/hosts``, writing three files beside it, and removing all of it
again) was a dozen metadata operations per container on the disk's slow
path. In the staging tmpfs they cost microseconds, and they vanish with the
mount namespace: nothing to clean up. The init layer plays the part of
Docker's per-container ``-init`` layer.

Invariant: none of these mounts is visible on (or propagates to) the host,
and they all vanish with the namespace when the container's last process
exits.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from nodeagent.runtime.spec import Mount


@dataclass
class RootfsPlan:
    staging: str  # host path of the staging tmpfs's mountpoint, bundle/rootfs
    overlay_data: str  # from overlay_options(staging, ...)
    readonly: bool
    hostname: str
    etc_files: dict[str, str]  # "hosts", "hostname", "resolv.conf" -> content
    masked_paths: tuple[str, ...]
    readonly_paths: tuple[str, ...]
    mounts: tuple[Mount, ...] = ()  # bound after /dev and /etc, before pivot_root


def overlay_options(staging: str, lower_dirs: list[str], writable: tuple[str, str] | None,
                    volatile: bool = False) -> str:
    """Mount options for the container's overlay: the staging init layer on
    top of the image's layers. ``writable`` is the (upper, work) pair;
    without it (a read-only rootfs) the overlay has no writable layer at all,
    so it needs nothing on disk.
    ``volatile`` skips every sync of the upper layer, including the one at
    unmount that makes a container's exit and cleanup wait on the disk."""
    opts = "lowerdir=" + ":".join([os.path.join(staging, "init"), *lower_dirs])
    if writable is None:
        return opts
    opts += f",upperdir={writable[0]},workdir={writable[1]}"
    return opts + ",volatile" if volatile else opts
