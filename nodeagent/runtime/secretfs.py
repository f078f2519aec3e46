"""A task's secrets and configs on its node: in memory, never on the disk.

Each task granted files gets a tmpfs of its own at ``<root>/<task id>``
(``root`` is under the agent's run dir, not its state dir), mode 0700,
sized to its files, mounted without set-id, devices or exec. Each file is
written there with the owner and mode its grant asks, the tmpfs is made
read-only, and each file is bound read-only into the container at its
target (``ContainerSpec.mounts``, which ``orch-init`` binds on mountpoints
of its init layer): in ``/proc/<pid>/mounts`` of the container each shows
as a ``tmpfs``. The container's spec, which the supervisor saves, holds the
paths only.

``release`` unmounts (lazily: a container still running keeps its view
until it exits) and removes the directory; it is idempotent, and what the
worker calls when the task's container is gone (or never started).
``prune`` releases every task's tmpfs but those it is told to keep: what an
agent that died left behind.

Errors are ``SetupError`` (step ``secret_files``) naming the task's
directory, never a file's content; nothing is left mounted after one.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass

from common.errors import SetupError
from nodeagent.runtime import _libc
from nodeagent.runtime.bundle import remove_tree
from nodeagent.runtime.spec import Mount

__all__ = ["SecretFile", "SecretFiles"]

_PAGE = 4096
_TASK_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 0x2, 0x4, 0x8, 0x20


@dataclass(frozen=True)
class SecretFile:
    """One file of a task: its value, where it goes in the container, and how it is owned."""

    target: str  # absolute, checked (model.secrets.resolve_target)
    data: bytes
    uid: int = 0
    gid: int = 0
    mode: int = 0o444

    def __repr__(self) -> str:  # never the value
        return f"SecretFile(target={self.target!r}, size={len(self.data)}, uid={self.uid}, gid={self.gid}, " \
               f"mode={self.mode:#o})"


class SecretFiles:
    """The tmpfs of each task's files under ``root``."""

    def __init__(self, root: str) -> None:
        self.root = root

    def path(self, task_id: str) -> str:
        if not _TASK_ID.fullmatch(task_id):
            raise SetupError("secret_files", task_id, "not a task id")
        return os.path.join(self.root, task_id)

    def make(self, task_id: str, files: list[SecretFile]) -> list[Mount]:
        """The task's files on a tmpfs of their own; the mounts that bind them in."""
        path = self.path(task_id)
        self.release(task_id)  # a start that failed half-way left it
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        size = sum(-(-len(f.data) // _PAGE) * _PAGE for f in files) + _PAGE * (len(files) + 1)
        try:
            os.mkdir(path, 0o700)
            flags = MS_NOSUID | MS_NODEV | MS_NOEXEC
            _libc.mount("tmpfs", path, "tmpfs", flags, f"mode=0700,size={size},nr_inodes={len(files) + 8}")
            mounts = [self._write(path, str(i), f) for i, f in enumerate(files)]
            _libc.mount(None, path, None, flags | MS_REMOUNT | _libc.MS_RDONLY, None)
        except OSError as err:
            self.release(task_id)
            raise SetupError("secret_files", path, err.strerror or str(err), err.errno or 0) from None
        return mounts

    @staticmethod
    def _write(directory: str, name: str, file: SecretFile) -> Mount:
        target = os.path.join(directory, name)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            view = memoryview(file.data)
            while view:
                view = view[os.write(fd, view):]
            os.fchown(fd, file.uid, file.gid)
            os.fchmod(fd, file.mode)
        finally:
            os.close(fd)
        return Mount(source=target, target=file.target, readonly=True)

    def release(self, task_id: str) -> None:
        """Unmount the task's tmpfs, if it has one, and remove its directory."""
        path = self.path(task_id)
        if os.path.ismount(path):
            with contextlib.suppress(OSError):
                _libc.umount2(path, _libc.MNT_DETACH)
        if os.path.ismount(path):
            return  # still there: never delete through a mount
        remove_tree(path)

    def tasks(self) -> list[str]:
        """The tasks that have a directory here."""
        try:
            return sorted(name for name in os.listdir(self.root) if _TASK_ID.fullmatch(name))
        except FileNotFoundError:
            return []

    def prune(self, keep: set[str]) -> list[str]:
        """Release every task's files but ``keep``'s; the tasks released."""
        gone = [tid for tid in self.tasks() if tid not in keep]
        for tid in gone:
            self.release(tid)
        return gone
