"""The supervisor process: its start, its loop, its end (see the package docstring).

:meth:`Supervisor.serve` picks up what a previous supervisor left (its
containers died with it: ``recovery``), listens on ``RUN/supervisor.sock``,
writes ``RUN/supervisor.pid``, and runs the loop until a shutdown (a request,
or SIGTERM/SIGINT, which stop every container first).

The layers the class stacks, each in its module: ``loop`` (selectors, timers,
connections), ``lifecycle`` (the containers), ``ops`` (the requests).
"""

from __future__ import annotations

import contextlib
import functools
import os
import selectors
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common.errors import NotFound
from nodeagent.logs import LogWriter
from nodeagent.runtime import Container, Runtime
from nodeagent.runtime._libc import malloc_trim
from nodeagent.runtime.bundle import remove_tree, spread_subdirs
from nodeagent.runtime.spec import ExitStatus
from nodeagent.supervisor import records, recovery
from nodeagent.supervisor.lifecycle import Live
from nodeagent.supervisor.loop import log
from nodeagent.supervisor.ops import Operations
from nodeagent.supervisor.records import EXITED, REMOVING, RESTARTING, RUNNING, Record

__all__ = ["Supervisor", "log"]


class Supervisor(Operations):
    """The whole supervisor: the loop, its containers and its requests, with
    ``network`` the node's bridge network (None: no bridge networking)."""

    def __init__(
        self,
        state_dir: str,
        run_dir: str,
        runtime: Runtime,
        network: Any = None,
        clock: Callable[[], float] = time.monotonic,
        wallclock: Callable[[], float] = time.time,
        max_launching: int = 0,
    ) -> None:
        super().__init__(state_dir, runtime, network, clock, wallclock, max_launching)
        self.run_dir = Path(run_dir)
        self.socket_path = self.run_dir / "supervisor.sock"

    def serve(self) -> None:
        self.containers_dir.mkdir(parents=True, exist_ok=True)
        spread_subdirs(str(self.containers_dir))
        self.run_dir.mkdir(parents=True, exist_ok=True)
        remove_tree(str(self.trash_dir))  # left by a supervisor that stopped mid-way
        self._load(recovery.previous_pid(str(self.run_dir / "supervisor.pid")))
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: None)
        self.sel.register(wake_r, selectors.EVENT_READ, self._on_signal)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        listener.bind(str(self.socket_path))
        os.chmod(self.socket_path, 0o600)
        listener.listen(64)
        self.sel.register(listener, selectors.EVENT_READ, lambda _fd: self._accept(listener))
        pid_file = self.run_dir / "supervisor.pid"
        pid_file.write_text(str(os.getpid()))
        log.info("supervisor ready", pid=os.getpid(), containers=len(self.records),
                 killed=len(self.killed))
        malloc_trim()  # start-up's peak (imports, records) is not needed again
        self._guard(self._reap)  # anything that exited while nobody watched
        self._run()
        listener.close()
        for path in (self.socket_path, pid_file):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        log.info("supervisor stopped")

    def _on_signal(self, wake_r: int) -> None:
        try:
            data = os.read(wake_r, 512)
        except BlockingIOError:
            return
        if signal.SIGTERM in data or signal.SIGINT in data:
            self._shutdown(stop_containers=True, reply=lambda *_: None)
        self._reap()

    # ---- a dead supervisor's containers (see recovery) ------------------

    def _load(self, previous_pid: int = 0) -> None:
        """Pick up the records a previous supervisor left (``previous_pid``:
        its pid, if known). Its containers died with it, or die here; each is
        torn down as a normal exit is and recorded as killed, and restart
        policies are applied as Docker's daemon applies them at start."""
        loaded = records.load_all(self.containers_dir)
        for rec in loaded:
            self.records[rec.id] = rec
        error = recovery.killed_error(previous_pid)
        for rec in loaded:
            self._guard(functools.partial(self._recover, rec, error))

    def _recover(self, rec: Record, error: str) -> None:
        if rec.state == RUNNING:
            try:
                self._reclaim(rec, error)
            except Exception as exc:
                # Whatever failed, the record must not stay "running" with a
                # dead pid; a removal tries the cleanup again.
                log.exception("recovering a container failed", container=rec.name)
                self.live.pop(rec.id, None)
                rec.state, rec.pid = EXITED, 0
                rec.exit_code, rec.signal = recovery.KILLED_EXIT, recovery.KILLED_SIGNAL
                rec.error = f"{error} (its cleanup failed: {exc})"
                rec.finished_at = self.wallclock()
                records.save(rec)
                self.killed.append(rec.public())
        elif rec.state == RESTARTING:
            # Between two runs: the previous supervisor had decided to
            # restart it. A relaunch it had under way may have left a cgroup.
            self._undo(rec, self._leftovers(rec) or Container(rec.spec, 0))
            self.restart_timers[rec.id] = self._after(0, functools.partial(self._restart, rec.id))
        elif rec.state == REMOVING:
            self._remove(rec)  # the removal asked for, finished
        else:
            # Created or exited: a start under way when the previous
            # supervisor died may have left a process and a cgroup.
            handle = self._leftovers(rec)
            if handle is not None:
                log.warning("removing what an interrupted start left", container=rec.name)
                self._undo(rec, handle)

    def _leftovers(self, rec: Record) -> Container | None:
        """A handle on what is left of ``rec``'s container in the runtime
        (its cgroup, and what runs in it), to remove; None if nothing is."""
        try:
            return self.runtime.adopt(rec.spec, 0)
        except NotFound:
            return None

    def _reclaim(self, rec: Record, error: str) -> None:
        """A container that was running under the previous supervisor: kill
        what is left of it (its PID 1 may have outlived the supervisor:
        exec'ing a set-user-ID binary clears the parent-death signal), then
        finish it as a normal exit, killed by SIGKILL."""
        handle: Container | None = None
        if rec.pid and rec.pid_start_time and records.proc_start_time(rec.pid) == rec.pid_start_time:
            with contextlib.suppress(NotFound):
                handle = self.runtime.adopt(rec.spec, rec.pid)
        outlived = handle is not None
        if handle is None:
            handle = self._leftovers(rec) or Container(rec.spec, 0)
        rec.error = error
        self.live[rec.id] = Live(handle, LogWriter(rec.log_path), {},
                                 ExitStatus(recovery.KILLED_EXIT, recovery.KILLED_SIGNAL))
        log.warning("container killed: its supervisor died", container=rec.name,
                    previous_pid=rec.pid, outlived_its_supervisor=outlived)
        self._finish(rec.id, at_start=True)
        if rec.state == EXITED:  # not restarting: clients hear of it (see op_ping)
            self.killed.append(rec.public())
