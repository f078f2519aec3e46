"""The supervisor's requests: their dispatch, and the operations (``op_*``).

A request names an operation and its arguments (``wire``); :meth:`_dispatch`
calls ``op_<name>(conn, reply, **args)``. A handler answers through
``reply`` at once, or later (a stop answers once the container has exited);
an error it raises is the answer.

Requests and launches: a container's set-up runs while the loop goes on. At
most ``max_launching`` launches run at once; later starts wait their turn in
``start_queue``. A request about a container being launched, or waiting for
its turn to be, is held until the launch has ended (:meth:`_defer`).
"""

from __future__ import annotations

import base64
import collections
import os
import signal
from collections.abc import Callable
from typing import Any

from common.errors import AgentError, Conflict, FailedPrecondition, InvalidArgument, NotFound
from nodeagent.runtime import Runtime
from nodeagent.runtime.spec import ConsoleSize, ProcessSpec
from nodeagent.supervisor import default_max_launching, records, stdio
from nodeagent.supervisor.health import Health
from nodeagent.supervisor.lifecycle import Exec
from nodeagent.supervisor.loop import Conn, log
from nodeagent.supervisor.records import CREATED, EXITED, REMOVING, RESTARTING, RUNNING, Record

Reply = Callable[..., None]


class Operations(Health):
    """The requests' layer, above the health checks' (``health``) and the
    containers' (``lifecycle``)."""

    def __init__(self, state_dir: str, runtime: Runtime, network: Any,
                 clock: Callable[[], float], wallclock: Callable[[], float],
                 max_launching: int) -> None:
        super().__init__(state_dir, runtime, network, clock, wallclock)
        # Requests about a container being launched, held until it has been.
        self.deferred: dict[str, list[tuple[Conn, dict[str, Any]]]] = {}
        # At most this many launches at once; later starts wait their turn
        # here, so the next is ready the moment one ends.
        self.max_launching = max_launching or default_max_launching()
        # (conn, request, the container a "start" names; "" for a run).
        self.start_queue: collections.deque[tuple[Conn, dict[str, Any], str]] = collections.deque()

    # ---- dispatch --------------------------------------------------------

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


    def _launch_ended(self) -> None:
        # A launch slot is free: queued starts take it, then the requests held
        # behind launches that have ended go, before what waits for all of them.
        while self.start_queue and len(self.launching) < self.max_launching:
            conn, msg, _ = self.start_queue.popleft()
            if not conn.closed:
                self._dispatch(conn, msg)
        self._release_deferred()
        super()._launch_ended()

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
        """Push events to this connection: those named, or every one. Every
        running container's ``dns_sockets`` follow the reply, if it wants them."""
        conn.subscribed = True
        conn.events = None if events is None else frozenset(events)
        reply(True, None)
        for cid in list(self.live):
            rec = self.records.get(cid)
            if rec is not None:
                self._send_dns_sockets(rec, conn)

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

    def op_exec(self, conn: Conn, reply: Reply, id: str, process: dict[str, Any],
                stdin: bool = False) -> None:
        """Run a process in the container. Its fds go with the reply: its
        stdout and stderr pipes, then with ``stdin`` its stdin pipe's write
        end; with ``process["tty"]``, its pty's master alone (output, input
        and window size)."""
        rec = self._find(id)
        live = self.live.get(rec.id)
        if rec.state != RUNNING or live is None:
            raise FailedPrecondition(f"container {rec.name} is not running")
        # As the container's own process (runc exec's rule): its capabilities,
        # rlimits (--ulimit), seccomp profile and no_new_privileges.
        own = rec.spec.process
        proc = ProcessSpec(**{**process, "capabilities": tuple(own.capabilities),
                              "rlimits": tuple(own.rlimits), "seccomp": own.seccomp,
                              "no_new_privileges": own.no_new_privileges,
                              "console_size": ConsoleSize.of(process.get("console_size"))})
        ends = stdio.open_stdio(proc.tty, stdin)
        try:
            try:
                pid = self.runtime.exec(live.handle, proc, ends.child)
            finally:
                ends.close_child()
            fds = ([stdio.receive_master(ends)] if proc.tty
                   else [*ends.outputs, *([ends.stdin] if stdin else [])])
        except BaseException:
            ends.close()
            raise
        ex = Exec(next(self._seq), conn, rec.id)
        self.by_pid[pid] = ex
        reply({"exec_id": ex.exec_id, "pid": pid}, None, fds)
        for fd in fds:
            os.close(fd)

    def op_attach(self, conn: Conn, reply: Reply, id: str, rows: int = 0, cols: int = 0) -> None:
        """Attach to a container's output, from now to its process's end:
        the reply carries a stdout and a stderr pipe (see ``stdio``) and
        says whether it has a tty and an open stdin. A container not yet
        started may be attached to (its whole output is then seen); one that
        has exited may not. ``rows``/``cols``: its tty's size."""
        rec = self._find(id)
        if rec.state not in (CREATED, RUNNING, RESTARTING):
            raise FailedPrecondition(
                f"container {rec.name} is not running: start it first, then attach to it")
        att = stdio.Attachment()
        self.attachments.setdefault(rec.id, []).append(att)
        self._resize(rec, rows, cols)
        reply({"id": rec.id, "tty": rec.spec.process.tty, "stdin_open": rec.stdin_open},
              None, att.client_fds)
        for fd in att.client_fds:
            os.close(fd)
        att.client_fds = []

    def op_input(self, conn: Conn, reply: Reply, id: str, data: str = "",
                 close: bool = False) -> None:
        """Bytes (base64) for a running container's stdin or tty; ``close``:
        the end of its stdin (a tty's has none: ignored)."""
        rec = self._find(id)
        live = self.live.get(rec.id)
        if live is None or live.input is None:
            state = "is not running" if live is None else "has no open stdin (create it with -i)"
            raise FailedPrecondition(f"container {rec.name} {state}")
        self._send_input(rec.id, base64.b64decode(data), close)
        reply(True, None)

    def op_resize(self, conn: Conn, reply: Reply, id: str, rows: int, cols: int) -> None:
        """A tty container's window size (its foreground processes hear SIGWINCH)."""
        self._resize(self._find(id), rows, cols)
        reply(True, None)

    def _resize(self, rec: Record, rows: int, cols: int) -> None:
        if not rec.spec.process.tty or rows <= 0 or cols <= 0:
            return
        live = self.live.get(rec.id)
        if live is not None and live.master >= 0:
            try:
                stdio.set_window_size(live.master, int(rows), int(cols))
            except OSError as exc:
                raise InvalidArgument(f"cannot resize the tty to {rows}x{cols}: {exc}") from None
        elif live is None:
            self.console_sizes[rec.id] = (int(rows), int(cols))  # for its start

    def op_shutdown(self, conn: Conn, reply: Reply, stop_containers: bool = True) -> None:
        if not stop_containers and (self.live or self.launching):
            # They would die with this process (their parent-death signal).
            raise FailedPrecondition("containers are running: a supervisor cannot exit without "
                                     "them; stop them first, or shut down with stop_containers")
        self._shutdown(stop_containers, reply)
