"""FakeRuntime: the Runtime seam without the kernel, for tests of callers and
scale simulation. Records every call in ``calls``; processes are simulated:
a container "runs" after start until killed/stopped or until the test sets
its exit with :meth:`FakeRuntime.set_exit` (or ``exit_codes`` before start).
"""

from __future__ import annotations

import itertools
import os
import signal
import time
from dataclasses import dataclass, field
from typing import Any

from common.errors import Conflict, FailedPrecondition, NotFound, SetupError
from nodeagent.runtime.api import Container, Stdio
from nodeagent.runtime.spec import ContainerSpec, ExitStatus, ProcessSpec


@dataclass
class _FakeProc:
    started: bool = False
    status: ExitStatus | None = None
    execs: list[int] = field(default_factory=list)


class FakeRuntime:
    def __init__(self, clock: Any = time.time) -> None:
        self.calls: list[tuple[str, str]] = []  # (verb, container id)
        self.exit_codes: dict[str, int] = {}  # id -> code the process "exits" with at start
        self.fail_create: dict[str, SetupError] = {}  # id -> error create raises
        self.ignore_stop_signal: set[str] = set()  # ids whose PID 1 ignores stop_signal
        self.procs: dict[str, _FakeProc] = {}
        self._pids = itertools.count(10_000)
        self._launch_fds: dict[str, int] = {}
        self._clock = clock

    def _rec(self, verb: str, container_id: str) -> None:
        self.calls.append((verb, container_id))

    def _get(self, container: Container) -> _FakeProc:
        proc = self.procs.get(container.spec.id)
        if proc is None:
            raise NotFound(f"container {container.spec.id[:12]} is not known to the runtime")
        return proc

    def create(self, spec: ContainerSpec, stdio: Stdio) -> Container:
        self._rec("create", spec.id)
        if spec.id in self.procs:
            raise Conflict(f"container {spec.id[:12]} already exists in this runtime")
        if spec.id in self.fail_create:
            raise self.fail_create[spec.id]
        self.procs[spec.id] = _FakeProc()
        return Container(spec, next(self._pids), self._clock())

    def start(self, container: Container) -> None:
        self._rec("start", container.spec.id)
        proc = self._get(container)
        if proc.started:
            raise FailedPrecondition(f"container {container.spec.id[:12]} was already started")
        proc.started = True
        if container.spec.id in self.exit_codes:
            proc.status = ExitStatus(self.exit_codes[container.spec.id])

    def launch(self, spec: ContainerSpec, stdio: Stdio) -> Container:
        """create + start; the launch reads as done at once (its fd is at EOF)."""
        container = self.create(spec, stdio)
        self.start(container)
        r, w = os.pipe2(os.O_CLOEXEC)
        os.close(w)
        self._launch_fds[spec.id] = r
        return container

    def launch_fd(self, container: Container) -> int:
        fd = self._launch_fds.get(container.spec.id)
        if fd is None:
            raise FailedPrecondition(f"container {container.spec.id[:12]} is not being launched")
        return fd

    def launched(self, container: Container) -> bool:
        os.close(self.launch_fd(container))
        del self._launch_fds[container.spec.id]
        return True

    def set_exit(self, container: Container, exit_code: int, sig: int = 0,
                 oom_killed: bool = False) -> None:
        """Make the simulated process exit now."""
        self._get(container).status = ExitStatus(exit_code, sig, oom_killed)

    def running(self, container: Container) -> bool:
        proc = self._get(container)
        return proc.started and proc.status is None

    def wait(self, container: Container, timeout: float | None = None) -> ExitStatus | None:
        self._rec("wait", container.spec.id)
        proc = self._get(container)
        if proc.status is None and timeout is None:
            raise FailedPrecondition("FakeRuntime.wait would block forever: set an exit first")
        return proc.status

    def exited(self, container: Container, wait_status: int) -> ExitStatus:
        self._rec("exited", container.spec.id)
        proc = self._get(container)
        proc.status = ExitStatus.from_wait_status(wait_status)
        return proc.status

    def kill(self, container: Container, sig: int) -> None:
        self._rec("kill", container.spec.id)
        proc = self._get(container)
        if proc.status is not None:
            return
        ignored = (container.spec.id in self.ignore_stop_signal
                   and sig == container.spec.stop_signal)
        if not ignored:
            proc.status = ExitStatus(128 + sig, sig)

    def stop(self, container: Container, timeout: float | None = None) -> ExitStatus:
        self._rec("stop", container.spec.id)
        proc = self._get(container)
        if proc.status is None:
            self.kill(container, container.spec.stop_signal)
        if proc.status is None:
            self.kill(container, signal.SIGKILL)
        assert proc.status is not None
        return proc.status

    def remove(self, container: Container, keep_rootfs: bool = False) -> None:
        self._rec("remove", container.spec.id)
        self.procs.pop(container.spec.id, None)

    def exec(self, container: Container, process: ProcessSpec, stdio: Stdio) -> int:
        self._rec("exec", container.spec.id)
        proc = self._get(container)
        if not proc.started or proc.status is not None:
            raise FailedPrecondition(f"container {container.spec.id[:12]} is not running")
        pid = next(self._pids)
        proc.execs.append(pid)
        return pid

    def kill_exec(self, container: Container, pid: int, sig: int) -> None:
        self._rec("kill_exec", container.spec.id)

    def exec_reaped(self, container: Container, pid: int) -> None:
        self._rec("exec_reaped", container.spec.id)
        proc = self.procs.get(container.spec.id)
        if proc is not None and pid in proc.execs:
            proc.execs.remove(pid)

    def dns_fds(self, container: Container) -> list[int]:
        return []  # no namespaces: nothing to resolve in

    def stats(self, container: Container) -> Any:
        from nodeagent.runtime.cgroups import CgroupStats

        self._rec("stats", container.spec.id)
        self._get(container)
        return CgroupStats(memory_usage_bytes=0, memory_limit_bytes=container.spec.resources
                           .memory_bytes, cpu_usage_ns=0, cpu_nr_periods=0, cpu_nr_throttled=0,
                           cpu_throttled_ns=0, pids_current=1, pids_limit=container.spec
                           .resources.pids_limit, oom_kills=0)

    def cleanup(self) -> None:
        self._rec("cleanup", "")

    def adopt(self, spec: ContainerSpec, pid: int) -> Container:
        self._rec("adopt", spec.id)
        self.procs.setdefault(spec.id, _FakeProc(started=True))
        return Container(spec, pid, self._clock())
