"""The runtime's public surface: the :class:`Runtime` seam and its handles.

A :class:`Container` is a plain handle (spec + host pid); the implementation
keeps whatever else it needs. ``pid`` is 0 until create() has finished.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from nodeagent.runtime.spec import ContainerSpec, ExitStatus, ProcessSpec

if TYPE_CHECKING:
    from nodeagent.runtime.cgroups import CgroupStats


@dataclass
class Stdio:
    """File descriptors the process gets as 0/1/2; None means /dev/null."""

    stdin: int | None = None
    stdout: int | None = None
    stderr: int | None = None


@dataclass
class Container:
    spec: ContainerSpec
    pid: int = 0  # host pid of the container's PID 1
    created_at: float = 0.0


class Runtime(Protocol):
    def create(self, spec: ContainerSpec, stdio: Stdio) -> Container: ...
    def start(self, container: Container) -> None: ...
    def launch(self, spec: ContainerSpec, stdio: Stdio) -> Container:
        """create + start without waiting: poll :meth:`launched` whenever
        :meth:`launch_fd` is readable; it is True once the process runs, and
        raises (everything undone) if its set-up failed."""
        ...
    def launch_fd(self, container: Container) -> int: ...
    def launched(self, container: Container) -> bool: ...
    def wait(self, container: Container, timeout: float | None = None) -> ExitStatus | None: ...
    def exited(self, container: Container, wait_status: int) -> ExitStatus: ...
    def kill(self, container: Container, sig: int) -> None: ...
    def stop(self, container: Container, timeout: float | None = None) -> ExitStatus: ...
    def remove(self, container: Container, keep_rootfs: bool = False) -> None:
        """Undo create: process, cgroup, network. ``keep_rootfs`` keeps the
        container's writable layer (a restart reuses it)."""
        ...
    def exec(self, container: Container, process: ProcessSpec, stdio: Stdio) -> int: ...
    def kill_exec(self, container: Container, pid: int, sig: int) -> None:
        """Signal an exec'd process not yet reaped, and the processes it
        started (a timed-out health probe leaves nothing behind)."""
        ...
    def exec_reaped(self, container: Container, pid: int) -> None:
        """The caller reaped an exec'd process: the runtime forgets it."""
        ...
    def stats(self, container: Container) -> CgroupStats: ...
    def dns_fds(self, container: Container) -> list[int]:
        """The container's DNS sockets (UDP, then listening TCP, bound to
        127.0.0.11:53 in its network namespace), still the runtime's; []
        for a container without a network of its own."""
        ...
    def adopt(self, spec: ContainerSpec, pid: int) -> Container: ...
    def cleanup(self) -> None:
        """Remove node-wide leftovers (the cgroup parent) once no container exists."""
        ...
