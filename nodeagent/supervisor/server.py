"""The supervisor's event loop and its operations (see the package docstring).

One thread, one ``selectors`` loop: the listening socket, client connections,
container output pipes and a self-pipe for signals. Timers (stop grace
periods, restart backoff) sit in a heap and bound the loop's wait.

Invariant: nothing a client sends, and nothing a record holds, ends the loop.
Every event it handles and every timer it runs is guarded (an exception is
logged and the loop goes on), and every delay is clamped (:func:`clamp_delay`)
so that no deadline, and no wait handed to ``select``, can overflow.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import functools
import heapq
import itertools
import os
import selectors
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.errors import AgentError, Conflict, FailedPrecondition, InvalidArgument, NotFound
from common.logging import JsonLogger
from nodeagent.logs import LogWriter
from nodeagent.restart import Backoff, RestartPolicy, parse_restart_policy, should_restart
from nodeagent.runtime import Container, Runtime, Stdio
from nodeagent.runtime._libc import malloc_trim
from nodeagent.runtime.bundle import remove_tree, spread_subdirs
from nodeagent.runtime.spec import ContainerSpec, ExitStatus, ProcessSpec
from nodeagent.supervisor import default_max_launching, records, recovery, wire
from nodeagent.supervisor.records import (
    CREATED,
    EXITED,
    REMOVING,
    RESTARTING,
    RUNNING,
    Record,
)

log = JsonLogger("orch.supervisor")

# How long an exited container's output pipes may stay open (held by a dying
# grandchild) before the exit is reported anyway.
DRAIN_TIMEOUT = 2.0

# The longest a timer is set for, and the longest one select() waits. A stop
# timeout of 1e400 s (infinite) or 99999999999999 h means "never" in practice:
# a century is as good, and keeps the deadline a finite float. The loop
# wakes at least hourly and computes its wait again, so select() never gets
# a timeout past what epoll takes (an int of milliseconds).
MAX_TIMER_DELAY = 100 * 365 * 86400.0
MAX_WAIT = 3600.0


def clamp_delay(delay: object) -> float:
    """``delay`` seconds as a timer takes them: 0 for a negative, NaN or
    non-numeric delay (the timer fires at once), at most MAX_TIMER_DELAY."""
    try:
        value = float(delay)  # type: ignore[arg-type]
    except OverflowError:  # an int past any float: as long as it gets
        return MAX_TIMER_DELAY
    except (TypeError, ValueError):
        return 0.0
    if not value > 0:
        return 0.0
    return min(value, MAX_TIMER_DELAY)


@dataclass
class Conn:
    sock: socket.socket
    reader: wire.Reader = field(default_factory=wire.Reader)
    subscribed: bool = False
    events: frozenset[str] | None = None  # what a subscriber wants; None: every event
    closed: bool = False


@dataclass
class Live:
    """What exists only while a container's process runs."""

    handle: Container
    writer: LogWriter
    pipes: dict[int, str]  # read fd -> stream name
    exit_status: ExitStatus | None = None
    drain_timer: int = 0


@dataclass
class Launch:
    """A container whose process is still setting up (see LinuxRuntime.launch)."""

    handle: Container
    fd: int  # readable once the exec happened or the set-up failed
    pipes: dict[int, str]  # its output pipes: read fd -> stream name
    done: Callable[[AgentError | None], None]


@dataclass
class Exec:
    exec_id: int
    conn: Conn
    container_id: str


Reply = Callable[..., None]


class Supervisor:
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
        self.state_dir = Path(state_dir)
        self.containers_dir = self.state_dir / "containers"
        # Directories of removed containers, deleted once the reply and events
        # of the step that removed them are out (see _discard).
        self.trash_dir = self.containers_dir / ".trash"
        self.trash: list[Path] = []
        self.run_dir = Path(run_dir)
        self.socket_path = self.run_dir / "supervisor.sock"
        self.runtime = runtime
        self.network = network
        self.clock = clock
        self.wallclock = wallclock
        self.backoffs: dict[str, Backoff] = {}
        self.records: dict[str, Record] = {}
        self.live: dict[str, Live] = {}
        self.by_pid: dict[int, str | Exec] = {}
        self.waiters: dict[str, list[Callable[[], None]]] = {}
        self.timers: list[tuple[float, int, Callable[[], None]]] = []
        self.cancelled: set[int] = set()
        self.restart_timers: dict[str, int] = {}
        # Containers being launched, the requests about them that wait for
        # the launch to end, and what waits for every launch to end (shutdown).
        self.launching: dict[str, Launch] = {}
        self.deferred: dict[str, list[tuple[Conn, dict[str, Any]]]] = {}
        self.after_launches: list[Callable[[], None]] = []
        # At most this many launches at once; later starts wait their turn
        # here, so the next is ready the moment one ends.
        self.max_launching = max_launching or default_max_launching()
        # (conn, request, the container a "start" names; "" for a run).
        self.start_queue: collections.deque[tuple[Conn, dict[str, Any], str]] = collections.deque()
        self._seq = itertools.count(1)
        self.sel = selectors.DefaultSelector()
        self.conns: list[Conn] = []
        self.running = True
        # The public records of containers a dead supervisor left that this
        # one found killed and did not restart (see _load, op_ping): their
        # "exited" events went out before any client could listen.
        self.killed: list[dict[str, Any]] = []

    # ---- lifecycle -------------------------------------------------------

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
        self.sel.register(wake_r, selectors.EVENT_READ, ("signal", None))
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        listener.bind(str(self.socket_path))
        os.chmod(self.socket_path, 0o600)
        listener.listen(64)
        self.sel.register(listener, selectors.EVENT_READ, ("listen", None))
        pid_file = self.run_dir / "supervisor.pid"
        pid_file.write_text(str(os.getpid()))
        log.info("supervisor ready", pid=os.getpid(), containers=len(self.records),
                 killed=len(self.killed))
        malloc_trim()  # start-up's peak (imports, records) is not needed again
        self._guard(self._reap)  # anything that exited while nobody watched
        while self.running:
            try:
                ready = self.sel.select(self._next_timeout())
            except Exception:
                log.exception("select failed")
                ready = []
            for key, _ in ready:
                self._guard(functools.partial(self._on_ready, key, wake_r, listener))
            self._guard(self._run_timers)
            self._guard(self._empty_trash)
        listener.close()
        for path in (self.socket_path, pid_file):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        log.info("supervisor stopped")

    def _on_ready(self, key: selectors.SelectorKey, wake_r: int, listener: socket.socket) -> None:
        kind, obj = key.data
        if kind == "signal":
            self._on_signal(wake_r)
        elif kind == "listen":
            self._accept(listener)
        elif kind == "conn":
            self._on_conn(obj)
        elif kind == "pipe":
            self._on_pipe(key.fd, obj)
        elif kind == "launch":
            self._on_launch(obj, key.fd)

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

    def _on_signal(self, wake_r: int) -> None:
        try:
            data = os.read(wake_r, 512)
        except BlockingIOError:
            return
        if signal.SIGTERM in data or signal.SIGINT in data:
            self._shutdown(stop_containers=True, reply=lambda *_: None)
        self._reap()

    # ---- timers ----------------------------------------------------------

    def _after(self, delay: float, fn: Callable[[], None]) -> int:
        seq = next(self._seq)
        heapq.heappush(self.timers, (self.clock() + clamp_delay(delay), seq, fn))
        return seq

    def _cancel(self, seq: int) -> None:
        if seq:
            self.cancelled.add(seq)

    def _next_timeout(self) -> float:
        """How long select() may wait: until the next timer, at most MAX_WAIT."""
        if not self.timers:
            return MAX_WAIT
        wait = self.timers[0][0] - self.clock()
        return min(MAX_WAIT, wait) if wait > 0 else 0.0

    def _run_timers(self) -> None:
        now = self.clock()
        while self.timers and self.timers[0][0] <= now:
            _, seq, fn = heapq.heappop(self.timers)
            if seq in self.cancelled:
                self.cancelled.discard(seq)
                continue
            self._guard(fn)

    def _guard(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception:
            log.exception("supervisor task failed")

    # ---- connections -----------------------------------------------------

    def _accept(self, listener: socket.socket) -> None:
        sock, _ = listener.accept()
        sock.setblocking(True)
        conn = Conn(sock)
        self.conns.append(conn)
        self.sel.register(sock, selectors.EVENT_READ, ("conn", conn))

    def _close(self, conn: Conn) -> None:
        if conn.closed:
            return
        conn.closed = True
        self.sel.unregister(conn.sock)
        conn.sock.close()
        self.conns.remove(conn)

    def _send(self, conn: Conn, msg: dict[str, Any], fds: list[int] | None = None) -> None:
        if conn.closed:
            return
        try:
            wire.send(conn.sock, msg, fds)
        except OSError:
            self._close(conn)

    def _emit(self, event: str, data: dict[str, Any]) -> None:
        for conn in list(self.conns):
            if conn.subscribed and (conn.events is None or event in conn.events):
                self._send(conn, {"event": event, "data": data})

    def _on_conn(self, conn: Conn) -> None:
        try:
            msgs = wire.recv(conn.sock, conn.reader)
        except OSError:
            msgs = None
        if msgs is None:
            self._close(conn)
            return
        for msg, fds in msgs:
            for fd in fds:
                os.close(fd)
            self._dispatch(conn, msg)

    def _dispatch(self, conn: Conn, msg: dict[str, Any]) -> None:
        rid = msg.get("rid")
        answered = False

        def reply(result: Any, error: AgentError | None = None, fds: list[int] | None = None) -> None:
            nonlocal answered
            if answered:
                return
            answered = True
            if error is not None:
                self._send(conn, {"rid": rid, "ok": False, "error": error.to_dict()})
            else:
                self._send(conn, {"rid": rid, "ok": True, "result": result}, fds)

        if (self.launching or self.start_queue) and self._defer(conn, msg):
            return
        if msg.get("op") in ("run", "start") and len(self.launching) >= self.max_launching:
            self.start_queue.append((conn, msg, self._started_id(msg)))
            return
        handler = getattr(self, "op_" + str(msg.get("op")), None)
        if handler is None:
            reply(None, InvalidArgument(f"unknown supervisor operation {msg.get('op')!r}"))
            return
        try:
            handler(conn, reply, **msg.get("args", {}))
        except AgentError as err:
            reply(None, err)
        except Exception as err:
            log.exception("operation failed", op=msg.get("op"))
            reply(None, AgentError(f"internal error in {msg.get('op')}: {err}"))

    def _defer(self, conn: Conn, msg: dict[str, Any]) -> bool:
        """Hold a request about a container being launched, or waiting for its
        turn to be, until the launch has ended: every operation sees a
        container either not yet started, or running, or failed to start, and
        none overtakes the start. (A shutdown waits for every launch: see
        _shutdown.)"""
        ref = msg.get("args", {}).get("id")
        if not isinstance(ref, str):
            return False
        try:
            cid = self._find(ref).id
        except AgentError:
            return False
        if not self._starting(cid):
            return False
        self.deferred.setdefault(cid, []).append((conn, msg))
        return True

    def _started_id(self, msg: dict[str, Any]) -> str:
        """The id of the container a "start" request names ("" for a run, or
        a name that matches none: its handler will say so)."""
        if msg.get("op") != "start":
            return ""
        try:
            return self._find(str(msg.get("args", {}).get("id"))).id
        except AgentError:
            return ""

    def _starting(self, cid: str) -> bool:
        """Being launched, or a start for it waits in the queue."""
        return cid in self.launching or any(queued == cid for _, _, queued in self.start_queue)

    def _release_deferred(self) -> None:
        for cid in [c for c in self.deferred if not self._starting(c)]:
            for conn, msg in self.deferred.pop(cid):
                if not conn.closed:
                    self._dispatch(conn, msg)

    # ---- lookups ---------------------------------------------------------

    def _find(self, ref: str) -> Record:
        if ref in self.records:
            return self.records[ref]
        for rec in self.records.values():
            if rec.name == ref:
                return rec
        matches = [r for r in self.records.values() if ref and r.id.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise InvalidArgument(f"container id prefix {ref!r} is ambiguous; give more characters")
        raise NotFound(f"no such container: {ref}")

    def _when_exited(self, rec: Record, fn: Callable[[], None]) -> None:
        if rec.state in (RUNNING, REMOVING) and rec.id in self.live:
            self.waiters.setdefault(rec.id, []).append(fn)
        else:
            fn()

    # ---- operations ------------------------------------------------------

    def op_ping(self, conn: Conn, reply: Reply) -> None:
        """This supervisor, and the containers it found killed with the one
        before it (their records as they were then: exited with the error)."""
        reply({"pid": os.getpid(), "containers": len(self.records), "killed": self.killed}, None)

    def op_protect(self, conn: Conn, reply: Reply, ports: list[int]) -> None:
        """Fence orch's TCP ports off from every container (nftables); they
        cannot be published either. The agent says which on every connect."""
        if self.network is None:
            raise FailedPrecondition("this supervisor has no bridge network")
        self.network.protect([int(p) for p in ports])
        reply(sorted(self.network.protected), None)

    def op_subscribe(self, conn: Conn, reply: Reply, events: list[str] | None = None) -> None:
        """Push events to this connection: those named, or every one."""
        conn.subscribed = True
        conn.events = None if events is None else frozenset(events)
        reply(True, None)

    def op_list(self, conn: Conn, reply: Reply, all: bool = False) -> None:
        recs = [r for r in self.records.values() if all or r.state in (RUNNING, RESTARTING)]
        recs.sort(key=lambda r: r.created_at, reverse=True)
        reply([r.public() for r in recs], None)

    def op_get(self, conn: Conn, reply: Reply, id: str, full: bool = False) -> None:
        rec = self._find(id)
        reply(rec.to_dict() | rec.public() if full else rec.public(), None)

    def op_create(self, conn: Conn, reply: Reply, record: dict[str, Any]) -> None:
        reply(self._create(record).public(), None)

    def op_run(self, conn: Conn, reply: Reply, record: dict[str, Any]) -> None:
        rec = self._create(record)

        def done(err: AgentError | None) -> None:
            if err is not None and rec.auto_remove:
                self._remove(rec)
            reply(None if err else rec.public(), err)

        self._start(rec, done)

    def op_start(self, conn: Conn, reply: Reply, id: str) -> None:
        rec = self._find(id)
        if rec.state == RUNNING:
            reply(rec.public(), None)
            return
        if rec.state == REMOVING:
            raise FailedPrecondition(f"container {rec.name} is being removed")
        self._cancel(self.restart_timers.pop(rec.id, 0))
        rec.stopped_by_user = False
        self._start(rec, lambda err: reply(None if err else rec.public(), err))

    def op_stop(self, conn: Conn, reply: Reply, id: str, timeout: float | None = None) -> None:
        rec = self._find(id)
        rec.stopped_by_user = True
        if rec.state == RESTARTING:
            self._cancel(self.restart_timers.pop(rec.id, 0))
            rec.state = EXITED
            records.save(rec)
        live = self.live.get(rec.id)
        if rec.state == RUNNING and live is not None:
            records.save(rec)
            grace = rec.spec.stop_timeout if timeout is None else timeout
            self._signal(rec, rec.spec.stop_signal)
            timer = self._after(grace, lambda: self._signal(rec, signal.SIGKILL))
            self.waiters.setdefault(rec.id, []).append(lambda: self._cancel(timer))
        self._when_exited(rec, lambda: reply(rec.public(), None))

    def op_kill(self, conn: Conn, reply: Reply, id: str, signal: int = 9) -> None:
        rec = self._find(id)
        if rec.state != RUNNING:
            raise FailedPrecondition(f"container {rec.name} is not running")
        self._signal(rec, signal)
        reply(rec.public(), None)

    def op_wait(self, conn: Conn, reply: Reply, id: str) -> None:
        rec = self._find(id)
        self._when_exited(rec, lambda: reply(rec.public(), None))

    def op_remove(self, conn: Conn, reply: Reply, id: str, force: bool = False) -> None:
        rec = self._find(id)
        if rec.state == RUNNING and not force:
            raise Conflict(
                f"container {rec.name} is running: stop it first, or remove it with -f"
            )
        self._cancel(self.restart_timers.pop(rec.id, 0))
        rec.stopped_by_user = True
        if rec.state == RUNNING:
            rec.state = REMOVING
            records.save(rec)
            self._signal(rec, signal.SIGKILL)

        def removed() -> None:
            try:
                self._remove(rec)
            except Exception as exc:  # the record stays: a later remove tries again
                log.exception("remove failed", container=rec.name)
                reply(None, exc if isinstance(exc, AgentError)
                      else AgentError(f"internal error while removing {rec.name}: {exc}"))
                return
            reply({"id": rec.id}, None)

        self._when_exited(rec, removed)

    def op_stats(self, conn: Conn, reply: Reply, id: str) -> None:
        rec = self._find(id)
        live = self.live.get(rec.id)
        if rec.state != RUNNING or live is None:
            raise FailedPrecondition(f"container {rec.name} is not running")
        reply(vars(self.runtime.stats(live.handle)), None)

    def op_exec(self, conn: Conn, reply: Reply, id: str, process: dict[str, Any]) -> None:
        rec = self._find(id)
        live = self.live.get(rec.id)
        if rec.state != RUNNING or live is None:
            raise FailedPrecondition(f"container {rec.name} is not running")
        proc = ProcessSpec(**{**process, "capabilities": tuple(rec.spec.process.capabilities)})
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        try:
            pid = self.runtime.exec(live.handle, proc, Stdio(stdout=out_w, stderr=err_w))
        except BaseException:
            os.close(out_r)
            os.close(err_r)
            raise
        finally:
            os.close(out_w)
            os.close(err_w)
        ex = Exec(next(self._seq), conn, rec.id)
        self.by_pid[pid] = ex
        reply({"exec_id": ex.exec_id, "pid": pid}, None, [out_r, err_r])
        os.close(out_r)
        os.close(err_r)

    def op_shutdown(self, conn: Conn, reply: Reply, stop_containers: bool = True) -> None:
        if not stop_containers and (self.live or self.launching):
            # They would die with this process (their parent-death signal).
            raise FailedPrecondition("containers are running: a supervisor cannot exit without "
                                     "them; stop them first, or shut down with stop_containers")
        self._shutdown(stop_containers, reply)

    # ---- container lifecycle --------------------------------------------

    def _create(self, data: dict[str, Any]) -> Record:
        spec = ContainerSpec.from_dict(data["spec"])
        policy = parse_restart_policy(data.get("restart_policy") or "no")
        for rec in self.records.values():
            if rec.name == spec.name:
                raise Conflict(
                    f'container name "{spec.name}" is already in use by {rec.id[:12]}: '
                    "remove that container or choose another name"
                )
        if spec.network.mode == "bridge":
            if self.network is None:
                raise InvalidArgument("bridge networking is not available on this node")
            self._check_ports(spec)
            self.network.ensure()
            lease = self.network.allocate(spec.id)
            lease.ports, lease.dns = spec.network.ports, spec.network.dns
            lease.extra_hosts = spec.network.extra_hosts
            spec.network = lease
        rec = Record(
            spec=spec,
            image=data.get("image", ""),
            image_id=data.get("image_id", ""),
            restart_policy=str(policy),
            auto_remove=bool(data.get("auto_remove")),
            config=data.get("config", {}),
            created_at=self.wallclock(),
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
        pipes: list[int] = []
        try:
            for _ in range(2):
                pipes.extend(os.pipe2(os.O_CLOEXEC))
        except OSError as exc:  # out of fds: this start fails, the loop goes on
            for fd in pipes:
                os.close(fd)
            failed = AgentError(f"cannot create the container's output pipes: {exc}")
            self._start_failed(rec, failed)
            done(failed)
            return
        out_r, out_w, err_r, err_w = pipes
        try:
            handle = self.runtime.launch(rec.spec, Stdio(stdout=out_w, stderr=err_w))
        except Exception as exc:
            err = exc if isinstance(exc, AgentError) else AgentError(
                f"internal error while starting: {exc}")
            if not isinstance(exc, AgentError):
                log.exception("launch failed", container=rec.name)
            os.close(out_r)
            os.close(err_r)
            self._start_failed(rec, err)
            done(err)
            return
        finally:
            os.close(out_w)
            os.close(err_w)
        launch = Launch(handle, self.runtime.launch_fd(handle),
                        {out_r: "stdout", err_r: "stderr"}, done)
        self.launching[rec.id] = launch
        self.by_pid[handle.pid] = rec.id  # an exit is never missed, even mid-launch
        self.sel.register(launch.fd, selectors.EVENT_READ, ("launch", rec.id))

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
                self.sel.register(launch.fd, selectors.EVENT_READ, ("launch", cid))
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
            for pipe_fd in launch.pipes:
                os.close(pipe_fd)
            self._start_failed(rec, err)
        self._guard(functools.partial(launch.done, err))
        while self.start_queue and len(self.launching) < self.max_launching:
            conn, msg, _ = self.start_queue.popleft()
            if not conn.closed:
                self._dispatch(conn, msg)
        self._release_deferred()
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
        live = Live(handle, LogWriter(rec.log_path), launch.pipes)
        self.live[rec.id] = live
        for fd in live.pipes:
            os.set_blocking(fd, False)
            self.sel.register(fd, selectors.EVENT_READ, ("pipe", rec.id))
        rec.state, rec.pid, rec.error = RUNNING, handle.pid, ""
        rec.pid_start_time = records.proc_start_time(handle.pid)
        rec.started_at = self.wallclock()
        rec.exit_code = rec.signal = 0
        rec.oom_killed = False
        records.save(rec)
        self._emit("started", rec.public())

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
                self._send(owner.conn, {"event": "exec_exit",
                                        "data": {"exec_id": owner.exec_id, "exit_code": exit_code}})
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
        if live.pipes:
            self._drain(cid)
        if live.pipes:  # a straggler still holds the pipe: give it a moment
            live.drain_timer = self._after(DRAIN_TIMEOUT, lambda: self._finish(cid))
        else:
            self._finish(cid)

    def _on_pipe(self, fd: int, cid: str) -> None:
        live = self.live.get(cid)
        if live is None:
            return
        self._read_pipe(live, fd)
        if not live.pipes and live.exit_status is not None:
            self._cancel(live.drain_timer)
            self._finish(cid)

    def _read_pipe(self, live: Live, fd: int) -> None:
        while True:
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                return
            except OSError as err:
                if err.errno != errno.EIO:
                    raise
                data = b""
            if not data:
                self.sel.unregister(fd)
                os.close(fd)
                live.writer.write(live.pipes.pop(fd), b"")
                return
            live.writer.write(live.pipes[fd], data)

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
                self.network.ensure()  # gone after a reboot; once per process otherwise
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
        if rec.spec.network.mode == "bridge" and self.network is not None:
            self.network.release(rec.id)
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
        while self.trash:
            remove_tree(str(self.trash.pop()))

    def _shutdown(self, stop_containers: bool, reply: Callable[..., None]) -> None:
        if self.launching:
            self.after_launches.append(lambda: self._shutdown(stop_containers, reply))
            return
        if not stop_containers:
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


def _policy(rec: Record) -> RestartPolicy:
    """The record's restart policy; "no" if it cannot be read (a record
    from another version): such a container is never restarted by mistake."""
    try:
        return parse_restart_policy(rec.restart_policy)
    except AgentError:
        log.warning("unreadable restart policy", container=rec.name, policy=rec.restart_policy)
        return RestartPolicy("no")
