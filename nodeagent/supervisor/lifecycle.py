"""A container's life in the supervisor: create, launch, run, exit, restart,
remove; and the supervisor's shutdown.

A start launches the container's process and goes on (the runtime's
``launch``); the loop hears when the set-up has ended (the launch's fd) and
the container then runs, or its start failed. An exit (SIGCHLD, reaped here)
drains the output pipes, then finishes the container: its record says how it
ended, the runtime undoes it (its writable layer stays), and its restart
policy brings it back after a back-off, or, with auto-remove, it is deleted.
A removal deletes every trace of it.

A container's stdio (``stdio``): output pipes, an input pipe (``-i``) or a
pty (``-t``); its output goes to its log and to the clients attached to it
(``attach``), their input to its stdin or pty.

Invariants:
- a container's record is saved before its process exists and on every
  change of state (``records``);
- every pid reaped is a container's PID 1 or an exec'd process, looked up in
  ``by_pid`` from the moment it exists: no exit is missed, even mid-launch;
- a failed cleanup is logged and the record still says the container
  exited: a later removal tries again (the runtime's remove is idempotent).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import selectors
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.errors import AgentError, Conflict, InvalidArgument
from nodeagent.logs import LogWriter
from nodeagent.restart import Backoff, RestartPolicy, parse_restart_policy, should_restart
from nodeagent.runtime import Container, Runtime
from nodeagent.runtime.bundle import remove_tree
from nodeagent.runtime.spec import ConsoleSize, ContainerSpec, ExitStatus
from nodeagent.supervisor import records, recovery, stdio
from nodeagent.supervisor.loop import Conn, Loop, log, read_ready
from nodeagent.supervisor.records import (
    CREATED,
    EXITED,
    REMOVING,
    RESTARTING,
    RUNNING,
    Record,
)

# How long an exited container's output pipes may stay open (held by a dying
# grandchild) before the exit is reported anyway.
DRAIN_TIMEOUT = 2.0
# Removed containers' files (see Lifecycle._discard) are deleted by a
# thread of their own (``_Trash``), not by the loop's: deleting files is
# paced by the filesystem's journal (and, mounted with ``discard``, its
# trims): 20-40 ms a container's tree while a node stops and starts
# containers side by side, and on the loop's thread each start waited behind
# the last containers' deletions (a third of a node's supervisor time in a
# 100-task rollout). The thread spends its time in unlink and rmdir, which
# hold no lock of Python's. An ``rm`` process per batch did as well but cost
# a spawn per removal (a millisecond of `orch run --rm`).

# The event that hands a running container's DNS sockets to subscribers
# (see the package docstring).
DNS_SOCKETS = "dns_sockets"


@dataclass
class Live:
    """What exists only while a container's process runs."""

    handle: Container
    writer: LogWriter
    pipes: dict[int, str]  # read fd -> stream name (a tty's master: "stdout")
    exit_status: ExitStatus | None = None
    drain_timer: int = 0
    master: int = -1  # -t: the pty's master (also in pipes)
    input: stdio.Input | None = None  # -i or -t: what goes to its stdin


@dataclass
class Launch:
    """A container whose process is still setting up (see LinuxRuntime.launch)."""

    handle: Container
    fd: int  # readable once the exec happened or the set-up failed
    ends: stdio.Ends  # the supervisor's ends of its stdio
    done: Callable[[AgentError | None], None]


@dataclass
class Exec:
    exec_id: int
    conn: Conn
    container_id: str


class Lifecycle(Loop):
    """The containers' state and its changes (the loop's layer above)."""

    def __init__(self, state_dir: str, runtime: Runtime, network: Any,
                 clock: Callable[[], float], wallclock: Callable[[], float]) -> None:
        super().__init__(clock)
        self.state_dir = Path(state_dir)
        self.containers_dir = self.state_dir / "containers"
        # Directories of removed containers, deleted once the reply and events
        # of the step that removed them are out (see _discard).
        self.trash_dir = self.containers_dir / ".trash"
        self.trash: list[Path] = []
        self.trash_bin = _Trash()
        self.runtime = runtime
        self.network = network
        self.wallclock = wallclock
        self.backoffs: dict[str, Backoff] = {}
        self.records: dict[str, Record] = {}
        self.live: dict[str, Live] = {}
        # pid -> its container's id, an exec, or (a health probe) what hears its wait status
        self.by_pid: dict[int, str | Exec | Callable[[int], None]] = {}
        self.waiters: dict[str, list[Callable[[], None]]] = {}
        self.restart_timers: dict[str, int] = {}
        # Containers being launched, and what waits for every launch to end
        # (a shutdown).
        self.launching: dict[str, Launch] = {}
        self.after_launches: list[Callable[[], None]] = []
        # The public records of containers a dead supervisor left that this
        # one found killed and did not restart (see server, op_ping): their
        # "exited" events went out before any client could listen.
        self.killed: list[dict[str, Any]] = []
        # Clients attached to a container's output, from before its start
        # (`orch run -i/-t`) to its exit; and the window size the first one
        # gave a tty container not yet started, for its pty.
        self.attachments: dict[str, list[stdio.Attachment]] = {}
        self.console_sizes: dict[str, tuple[int, int]] = {}

    def _between_steps(self) -> None:
        self._take_out_trash()

    def _take_out_trash(self) -> None:
        """Hand the trash to its thread."""
        if self.trash:
            self.trash_bin.take(self.trash)
            self.trash = []

    def _create(self, data: dict[str, Any]) -> Record:
        spec = ContainerSpec.from_dict(data["spec"])
        policy = parse_restart_policy(data.get("restart_policy") or "no")
        for rec in self.records.values():
            if rec.name == spec.name:
                raise Conflict(
                    f'container name "{spec.name}" is already in use by {rec.id[:12]}: '
                    "remove that container or choose another name"
                )
        if spec.network.attached and self.network is None:
            raise InvalidArgument("container networking is not available on this node")
        if spec.network.mode == "bridge":
            self._check_ports(spec)
            self.network.ensure(spec.network.bridge)
            lease = self.network.allocate(spec.id, spec.network.bridge)
            lease.ports, lease.dns = spec.network.ports, spec.network.dns
            lease.extra_hosts = spec.network.extra_hosts
            lease.attachments = spec.network.attachments
            spec.network = lease
        rec = Record(
            spec=spec,
            image=data.get("image", ""),
            image_id=data.get("image_id", ""),
            restart_policy=str(policy),
            auto_remove=bool(data.get("auto_remove")),
            config=data.get("config", {}),
            created_at=self.wallclock(),
            healthcheck=data.get("healthcheck") or None,
        )
        records.save(rec)
        # The log exists from the start, so a client can follow it before the
        # container runs (and keep reading it after an auto-remove).
        open(rec.log_path, "ab").close()
        self.records[rec.id] = rec
        self._emit("created", rec.public())
        return rec

    def _check_ports(self, spec: ContainerSpec) -> None:
        wanted = {(p.host_port, p.protocol) for p in spec.network.ports}
        for rec in self.records.values():
            if rec.state not in (RUNNING, RESTARTING, CREATED):
                continue
            for p in rec.spec.network.ports:
                if (p.host_port, p.protocol) in wanted:
                    raise Conflict(
                        f"host port {p.host_port}/{p.protocol} is already published "
                        f"by container {rec.name}"
                    )

    def _start(self, rec: Record, done: Callable[[AgentError | None], None]) -> None:
        """Launch the container's process and go on; ``done`` hears how it
        went once the process runs (None) or its set-up failed (the error)."""
        tty = rec.spec.process.tty
        try:  # out of fds: this start fails, the loop goes on
            ends = stdio.open_stdio(tty, rec.stdin_open)
        except AgentError as failed:
            self._start_failed(rec, failed)
            done(failed)
            return
        spec = rec.spec
        size = self.console_sizes.pop(rec.id, None)
        if tty and size:
            spec = dataclasses.replace(spec, process=dataclasses.replace(
                spec.process, console_size=ConsoleSize(*size)))
        try:
            handle = self.runtime.launch(spec, ends.child)
        except Exception as exc:
            err = exc if isinstance(exc, AgentError) else AgentError(
                f"internal error while starting: {exc}")
            if not isinstance(exc, AgentError):
                log.exception("launch failed", container=rec.name)
            ends.close()
            self._start_failed(rec, err)
            done(err)
            return
        finally:
            ends.close_child()
        launch = Launch(handle, self.runtime.launch_fd(handle), ends, done)
        self.launching[rec.id] = launch
        self.by_pid[handle.pid] = rec.id  # an exit is never missed, even mid-launch
        self.sel.register(launch.fd, selectors.EVENT_READ, functools.partial(self._on_launch, rec.id))

    def _on_launch(self, cid: str, fd: int | None = None) -> None:
        """The launch's fd is readable (or its process is gone): learn how it
        went. An event from an earlier select() about a launch already
        finished (by its process's exit, just before) is stale: ignored."""
        launch = self.launching.get(cid)
        if launch is None or (fd is not None and fd != launch.fd):
            return
        rec = self.records[cid]
        self.sel.unregister(launch.fd)  # before the runtime closes it
        err: AgentError | None = None
        try:
            if not self.runtime.launched(launch.handle):
                self.sel.register(launch.fd, selectors.EVENT_READ,
                                  functools.partial(self._on_launch, cid))
                return
        except AgentError as exc:
            err = exc  # the runtime has undone the container
        except Exception as exc:
            log.exception("launch failed", container=rec.name)
            err = AgentError(f"internal error while starting: {exc}")
            with contextlib.suppress(Exception):
                self.runtime.remove(launch.handle, keep_rootfs=True)
        del self.launching[cid]
        if err is None:
            self._running(rec, launch)
        else:
            self.by_pid.pop(launch.handle.pid, None)
            launch.ends.close()
            self._start_failed(rec, err)
        self._guard(functools.partial(launch.done, err))
        self._launch_ended()

    def _launch_ended(self) -> None:
        """A launch has ended (its container runs, or its start failed).
        Once none is left, what waited for every launch to end runs. The
        operations layer first lets the requests that waited for it go."""
        if not self.launching:
            waiting, self.after_launches = self.after_launches, []
            for fn in waiting:
                self._guard(fn)

    def _start_failed(self, rec: Record, err: AgentError) -> None:
        rec.state, rec.exit_code, rec.error = EXITED, 127, err.message
        rec.finished_at = self.wallclock()
        records.save(rec)

    def _running(self, rec: Record, launch: Launch) -> None:
        handle = launch.handle
        live = Live(handle, LogWriter(rec.log_path), launch.ends.outputs)
        self._connect_input(rec, live, launch.ends)
        self.live[rec.id] = live
        for fd in live.pipes:
            os.set_blocking(fd, False)
            self.sel.register(fd, selectors.EVENT_READ, functools.partial(self._on_pipe, rec.id))
        rec.state, rec.pid, rec.error = RUNNING, handle.pid, ""
        rec.pid_start_time = records.proc_start_time(handle.pid)
        rec.started_at = self.wallclock()
        rec.exit_code = rec.signal = 0
        rec.oom_killed = False
        self._container_running(rec)
        records.save(rec)
        self._emit("started", rec.public())
        self._send_dns_sockets(rec)

    def _connect_input(self, rec: Record, live: Live, ends: stdio.Ends) -> None:
        """A running container's pty master (-t: its output, and where its
        input goes), or its stdin pipe (-i)."""
        if ends.console is not None:
            try:
                live.master = stdio.receive_master(ends)
            except AgentError as err:  # it runs without its terminal: ended, not left so
                log.error("tty not set up", container=rec.name, error=err.message)
                self.runtime.kill(live.handle, signal.SIGKILL)
                return
            live.pipes[live.master] = "stdout"
            try:
                live.input = stdio.Input(os.dup(live.master), pipe=False)
            except OSError as exc:
                log.error("tty input not set up", container=rec.name, error=str(exc))
        elif ends.stdin >= 0:
            live.input = stdio.Input(ends.stdin, pipe=True)
            ends.stdin = -1

    def _send_input(self, cid: str, data: bytes = b"", close: bool = False) -> None:
        """Bytes for a running container's stdin (or pty); ``close``: its end
        (a pipe's write end closes once the bytes before it are written)."""
        live = self.live.get(cid)
        inp = live.input if live is not None else None
        if inp is None:
            return
        inp.add(data)
        inp.closing = inp.closing or close
        self._flush_input(cid)

    def _flush_input(self, cid: str, fd: int | None = None) -> None:
        live = self.live.get(cid)
        inp = live.input if live is not None else None
        if inp is None:
            return
        registered = inp.fd if inp.waiting else -1
        more = inp.flush()
        if more and not inp.waiting:
            self.sel.register(inp.fd, selectors.EVENT_WRITE,
                              functools.partial(self._flush_input, cid))
            inp.waiting = True
        elif not more and inp.waiting:
            self.sel.unregister(registered)
            inp.waiting = False

    def _close_input(self, live: Live) -> None:
        inp, live.input = live.input, None
        if inp is not None:
            if inp.waiting:
                self.sel.unregister(inp.fd)
            inp.close()

    def _detach_all(self, cid: str) -> None:
        """The container's attached clients hear the end of its output."""
        for att in self.attachments.pop(cid, []):
            att.close()

    def _container_running(self, rec: Record) -> None:
        """The container's process runs (its record is saved next): the
        health layer starts its probes."""

    def _container_exited(self, cid: str) -> None:
        """The container's process has exited: the health layer stops its probes."""

    def _exec_reaped(self, cid: str, pid: int) -> None:
        """An exec'd process of ``cid`` was reaped: the runtime forgets it."""
        live = self.live.get(cid)
        if live is not None:
            self.runtime.exec_reaped(live.handle, pid)

    def _send_dns_sockets(self, rec: Record, conn: Conn | None = None) -> None:
        """The ``dns_sockets`` event of a running container (see the package
        docstring), to every subscriber that wants it, or to ``conn``."""
        live = self.live.get(rec.id)
        if live is None or live.exit_status is not None:
            return
        fds = self.runtime.dns_fds(live.handle)
        if not fds:
            return
        net = rec.spec.network
        data = {"id": rec.id, "name": rec.name, "hostname": rec.spec.hostname,
                "labels": rec.spec.labels, "network": net.mode, "bridge": net.bridge,
                "ip_address": net.address,
                # its names on a user-defined network (engine mode), besides its name
                "network_aliases": list(rec.config.get("networkAliases", [])),
                "networks": [{"network_id": a.network_id, "network_name": a.network_name,
                              "address": f"{a.address}/{a.prefixlen}", "aliases": a.aliases,
                              "ifname": a.ifname} for a in net.attachments]}
        if conn is None:
            self._emit(DNS_SOCKETS, data, fds)
        elif conn.subscribed and (conn.events is None or DNS_SOCKETS in conn.events):
            self._send(conn, {"event": DNS_SOCKETS, "data": data}, fds)

    def _signal(self, rec: Record, sig: int) -> None:
        live = self.live.get(rec.id)
        if live is not None and live.exit_status is None:
            with contextlib.suppress(ProcessLookupError):
                self.runtime.kill(live.handle, sig)

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            owner = self.by_pid.pop(pid, None)
            if isinstance(owner, Exec):
                code = os.waitstatus_to_exitcode(status)
                exit_code = 128 - code if code < 0 else code
                self._guard(functools.partial(self._exec_reaped, owner.container_id, pid))
                self._send(owner.conn, {"event": "exec_exit",
                                        "data": {"exec_id": owner.exec_id, "exit_code": exit_code}})
            elif callable(owner):
                self._guard(functools.partial(owner, status))
            elif owner is not None:
                # One exit's failure must not leave the other zombies unread.
                self._guard(functools.partial(self._on_exit, owner, status))

    def _on_exit(self, cid: str, wait_status: int) -> None:
        if cid in self.launching:
            # Gone before its launch was read: the outcome is on the report
            # pipe already (its writer is gone with the process).
            self._on_launch(cid)
            if cid not in self.live:
                return  # the set-up failed, and the launch reported it
        if cid not in self.live:
            log.error("exit of a container not running", container=cid[:12])
            return
        live = self.live[cid]
        live.exit_status = self.runtime.exited(live.handle, wait_status)
        self._guard(functools.partial(self._container_exited, cid))
        if live.pipes:
            self._drain(cid)
        if live.pipes:  # a straggler still holds the pipe: give it a moment
            live.drain_timer = self._after(DRAIN_TIMEOUT, lambda: self._finish(cid))
        else:
            self._finish(cid)

    def _on_pipe(self, cid: str, fd: int) -> None:
        live = self.live.get(cid)
        if live is None:
            return
        self._read_pipe(live, fd)
        if not live.pipes and live.exit_status is not None:
            self._cancel(live.drain_timer)
            self._finish(cid)

    def _read_pipe(self, live: Live, fd: int) -> None:
        while True:
            data = read_ready(fd)
            if data is None:
                return
            if not data:
                self.sel.unregister(fd)
                os.close(fd)
                if fd == live.master:
                    live.master = -1
                live.writer.write(live.pipes.pop(fd), b"")
                return
            stream = live.pipes[fd]
            live.writer.write(stream, data)
            self._to_attached(live.handle.spec.id, stream, data)

    def _to_attached(self, cid: str, stream: str, data: bytes) -> None:
        """A copy of the output for each attached client; those gone are dropped."""
        attached = self.attachments.get(cid)
        if not attached:
            return
        for att in attached:
            att.write(stream, data)
        if any(att.closed for att in attached):
            self.attachments[cid] = [att for att in attached if not att.closed]

    def _drain(self, cid: str) -> None:
        live = self.live[cid]
        for fd in list(live.pipes):
            self._read_pipe(live, fd)

    def _finish(self, cid: str, at_start: bool = False) -> None:
        """The container's process is gone and its output drained. With
        ``at_start``, it is a dead supervisor's container, found by this one
        as it starts: restart policies apply as at a daemon's start."""
        live = self.live.pop(cid)
        for fd in list(live.pipes):
            self.sel.unregister(fd)
            os.close(fd)
        self._close_input(live)
        live.writer.close()
        rec = self.records[cid]
        status = live.exit_status or ExitStatus(255)
        rec.exit_code, rec.signal, rec.oom_killed = (
            status.exit_code, status.signal, status.oom_killed)
        rec.finished_at = self.wallclock()
        removing = rec.state == REMOVING
        rec.state, rec.pid = EXITED, 0
        policy = _policy(rec)
        decide = recovery.restart_at_start if at_start else should_restart
        restart = not removing and decide(
            policy, rec.exit_code, rec.restart_count, rec.stopped_by_user)
        # An auto-remove container is deleted before anyone hears of its
        # exit: `orch run --rm` returns once nothing of it is left, as
        # `docker run --rm` does. Its record is never saved again.
        gone = False
        if not restart:
            if rec.auto_remove:
                try:
                    gone = self._delete(rec, live.handle)
                except Exception:  # kept as an exited record: `orch rm` tries again
                    log.exception("auto-remove failed", container=rec.name)
            if not gone:
                self._undo(rec, live.handle)
        if not gone:
            records.save(rec)
        self._emit("exited", rec.public())
        self._detach_all(cid)  # after the event: a client that hears the end finds the exit
        if gone:
            self._emit("removed", {"id": rec.id, "name": rec.name})
        log.info("container exited", container=rec.name, exit_code=rec.exit_code,
                 signal=rec.signal, oom_killed=rec.oom_killed)
        for fn in self.waiters.pop(cid, []):
            self._guard(fn)
        if restart:
            ran_for = rec.finished_at - rec.started_at
            delay = 0.0 if at_start else self.backoffs.setdefault(cid, Backoff()).next_delay(ran_for)
            rec.state = RESTARTING
            records.save(rec)
            self._undo(rec, live.handle)
            self.restart_timers[cid] = self._after(delay, lambda: self._restart(cid))

    def _undo(self, rec: Record, handle: Container) -> None:
        """The runtime's side of a container that has exited: its processes,
        cgroup and network (the writable layer stays). A failure is logged,
        not raised: the record must still say the container exited, and a
        later removal tries again (the runtime's remove is idempotent)."""
        try:
            self.runtime.remove(handle, keep_rootfs=True)
        except Exception as exc:
            log.error("container cleanup failed", container=rec.name, error=str(exc))

    def _restart(self, cid: str) -> None:
        self.restart_timers.pop(cid, None)
        rec = self.records.get(cid)
        if rec is None or rec.state != RESTARTING:
            return
        rec.restart_count += 1

        def done(err: AgentError | None) -> None:
            if err is not None:
                log.warning("restart failed", container=rec.name, error=err.message)
                self._emit("exited", rec.public())

        if rec.spec.network.mode == "bridge" and self.network is not None:
            try:
                # Gone after a reboot; once per process otherwise.
                self.network.ensure(rec.spec.network.bridge)
            except Exception as exc:
                err = exc if isinstance(exc, AgentError) else AgentError(
                    f"cannot set up the bridge network: {exc}")
                self._start_failed(rec, err)
                done(err)
                return
        self._start(rec, done)

    def _remove(self, rec: Record) -> None:
        """Delete a container that has no process: every trace of it."""
        if self._delete(rec):
            self._emit("removed", {"id": rec.id, "name": rec.name})

    def _delete(self, rec: Record, handle: Container | None = None) -> bool:
        """``_remove`` without the event; False if it was gone already. If
        the runtime cannot undo it, that error is raised and the record
        stays, for another try."""
        if self.records.get(rec.id) is not rec:
            return False
        # The runtime undoes processes, cgroups and network; the directories
        # (its writable layer among them) go with the rest of the bundle.
        self.runtime.remove(handle if handle is not None else Container(rec.spec, 0),
                            keep_rootfs=True)
        del self.records[rec.id]
        self.backoffs.pop(rec.id, None)
        self._detach_all(rec.id)
        self.console_sizes.pop(rec.id, None)
        if rec.spec.network.mode == "bridge" and self.network is not None:
            self.network.release(rec.id, rec.spec.network.bridge)
        self._discard(rec.bundle)
        return True

    def _discard(self, path: Path) -> None:
        """Take a removed container's directory out of the way now; delete it
        after this step's reply and events are sent.

        The container is gone once its processes, mounts, cgroups, addresses
        and record are: its files (a writable layer may be large, and deleting
        files is the slowest part of a removal) are garbage, deleted before
        the next request is read. containerd's snapshotter removes layers
        asynchronously for the same reason.
        """
        target = self.trash_dir / path.name
        try:
            self.trash_dir.mkdir(exist_ok=True)
            os.rename(path, target)
        except FileNotFoundError:
            return
        except OSError:  # e.g. a stale entry of the same name: delete in place
            remove_tree(str(path))
            return
        self.trash.append(target)

    def _empty_trash(self) -> None:
        """All of it now (a supervisor that stops): what its thread has, then the rest."""
        self.trash_bin.drain()
        while self.trash:
            remove_tree(str(self.trash.pop()))

    def _shutdown(self, stop_containers: bool, reply: Callable[..., None]) -> None:
        if self.launching:
            self.after_launches.append(lambda: self._shutdown(stop_containers, reply))
            return
        if not stop_containers:
            self._guard(self._empty_trash)
            self.running = False
            reply(True, None)
            return
        pending = [r for r in self.records.values() if r.id in self.live]
        for rec in list(self.records.values()):
            self._cancel(self.restart_timers.pop(rec.id, 0))
            rec.stopped_by_user = True
        remaining = {r.id for r in pending}

        def finish() -> None:
            # Each step guarded: the supervisor stops and answers whatever fails.
            for rec in list(self.records.values()):
                self._guard(functools.partial(self._remove, rec))
            self._guard(self._empty_trash)
            if self.network is not None:
                self._guard(self.network.teardown)
            self._guard(self.runtime.cleanup)
            self.running = False
            reply(True, None)

        def one_done(cid: str) -> None:
            remaining.discard(cid)
            if not remaining:
                finish()

        if not pending:
            finish()
            return
        for rec in pending:
            rec.state = REMOVING
            self._signal(rec, rec.spec.stop_signal)
            self._after(rec.spec.stop_timeout, functools.partial(self._signal, rec, signal.SIGKILL))
            self.waiters.setdefault(rec.id, []).append(functools.partial(one_done, rec.id))


class _Trash:
    """The thread that deletes removed containers' trees (see the note at
    the top of this module); started with the first of them."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._paths: list[Path] = []
        self._busy = False
        self._thread: threading.Thread | None = None

    def take(self, paths: list[Path]) -> None:
        with self._cond:
            self._paths.extend(paths)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="trash", daemon=True)
                self._thread.start()
            self._cond.notify()

    def drain(self) -> None:
        """Until everything handed over is deleted."""
        with self._cond:
            while self._paths or self._busy:
                self._cond.wait()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._paths:
                    self._cond.wait()
                path, self._busy = self._paths.pop(0), True
            try:
                remove_tree(str(path))
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()


def _policy(rec: Record) -> RestartPolicy:
    """The record's restart policy; "no" if it cannot be read (a record
    from another version): such a container is never restarted by mistake."""
    try:
        return parse_restart_policy(rec.restart_policy)
    except AgentError:
        log.warning("unreadable restart policy", container=rec.name, policy=rec.restart_policy)
        return RestartPolicy("no")
