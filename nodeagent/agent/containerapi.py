"""The container half of the node-local API (proto/agent.proto): run,
create, start, stop, kill, remove, list, inspect, wait, logs, exec, stats,
and the interactive streams, attach and exec -i/-t.

Each handler converts the request to the engine's terms, makes one engine
call (``agent.engine``) and converts the answer back; nothing here knows
the supervisor. Part of :class:`nodeagent.agent.service.AgentService`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import selectors
import struct
import termios
import threading
from collections.abc import Callable, Generator, Iterator
from typing import Any

import grpc

from common.errors import AgentError, InvalidArgument
from nodeagent.agent.edge import handle_errors
from nodeagent.agent.engine import Engine
from nodeagent.logs import LogEntry
from proto import agent_pb2 as pb

__all__ = ["ContainerAPI", "to_pb"]


def to_pb(rec: dict[str, Any]) -> pb.Container:
    return pb.Container(
        id=rec["id"], name=rec["name"], image=rec["image"], image_id=rec["image_id"],
        command=rec["command"], state=rec["state"], created_at=rec["created_at"],
        started_at=rec["started_at"], finished_at=rec["finished_at"],
        exit_code=rec["exit_code"], signal=rec["signal"], oom_killed=rec["oom_killed"],
        restart_count=rec["restart_count"], pid=rec["pid"], ip_address=rec["ip_address"],
        ports=[pb.PortMapping(**p) for p in rec["ports"]],
        restart_policy=rec["restart_policy"], network=rec["network"], error=rec["error"],
        auto_remove=rec["auto_remove"], health=_health(rec.get("health")),
    )


def _health(health: dict[str, Any] | None) -> pb.Health | None:
    """The record's health (``HealthState.to_dict()``); None without a check."""
    if not health:
        return None
    return pb.Health(status=str(health.get("status", "")),
                     failing_streak=int(health.get("failing_streak") or 0),
                     log=[pb.HealthResult(start=float(r.get("start") or 0), end=float(r.get("end") or 0),
                                          exit_code=int(r.get("exit_code") or 0),
                                          output=str(r.get("output") or ""))
                          for r in health.get("log") or ()])


def _line(entry: LogEntry) -> pb.LogLine:
    return pb.LogLine(time=entry.time, stream=entry.stream, line=entry.line)


class ContainerAPI:
    engine: Engine

    @handle_errors
    def Create(self, request: pb.ContainerConfig, context: grpc.ServicerContext) -> pb.Container:
        return to_pb(self.engine.create(request))

    @handle_errors
    def Run(self, request: pb.RunRequest, context: grpc.ServicerContext) -> Iterator[pb.RunEvent]:
        if not request.attach:
            yield pb.RunEvent(started=to_pb(self.engine.run(request.config)))
            return
        for kind, value in self.engine.run_attached(request.config, context.is_active):
            if kind == "started":
                yield pb.RunEvent(started=to_pb(value))
            elif kind == "log":
                yield pb.RunEvent(log=_line(value))
            else:
                yield pb.RunEvent(exited=to_pb(value))

    @handle_errors
    def Start(self, request: pb.ContainerRef, context: grpc.ServicerContext) -> pb.Container:
        return to_pb(self.engine.start(request.id))

    @handle_errors
    def Stop(self, request: pb.StopRequest, context: grpc.ServicerContext) -> pb.Container:
        timeout = request.timeout if request.HasField("timeout") else None
        return to_pb(self.engine.stop(request.id, timeout=timeout))

    @handle_errors
    def Kill(self, request: pb.KillRequest, context: grpc.ServicerContext) -> pb.Container:
        return to_pb(self.engine.kill(request.id, request.signal))

    @handle_errors
    def Remove(self, request: pb.RemoveRequest, context: grpc.ServicerContext) -> pb.RemoveResponse:
        return pb.RemoveResponse(id=self.engine.remove(request.id, force=request.force,
                                                       volumes=request.volumes))

    @handle_errors
    def List(self, request: pb.ListRequest, context: grpc.ServicerContext) -> pb.ListResponse:
        return pb.ListResponse(containers=[to_pb(r) for r in self.engine.containers(all=request.all)])

    @handle_errors
    def Inspect(self, request: pb.ContainerRef, context: grpc.ServicerContext) -> pb.ContainerDetails:
        from nodeagent.agent.details import container_details

        rec = self.engine.get(request.id, full=True)
        return container_details(rec, to_pb(rec))

    @handle_errors
    def Wait(self, request: pb.ContainerRef, context: grpc.ServicerContext) -> pb.Container:
        return to_pb(self.engine.wait(request.id))

    @handle_errors
    def Logs(self, request: pb.LogsRequest, context: grpc.ServicerContext) -> Iterator[pb.LogLine]:
        for batch in self.LogBatches(request, context):
            yield from batch.lines

    @handle_errors
    def LogBatches(self, request: pb.LogsRequest, context: grpc.ServicerContext) -> Iterator[pb.LogBatch]:
        tail = request.tail if request.HasField("tail") else None
        for entries in self.engine.logs(request.id, tail, request.follow, context.is_active,
                                        request.since, request.until):
            yield pb.LogBatch(lines=[_line(e) for e in entries])

    @handle_errors
    def Exec(self, request: pb.ExecRequest, context: grpc.ServicerContext) -> Iterator[pb.ExecOutput]:
        exec_id, fds = self.engine.exec(
            request.id, list(request.command), list(request.env),
            workdir=request.workdir if request.HasField("workdir") else None,
            user=request.user if request.HasField("user") else None)
        yield from _pump_exec(fds)
        code = self.engine.exec_exit(exec_id, timeout=30.0)
        yield pb.ExecOutput(exit_code=255 if code is None else code)

    @handle_errors
    def Attach(self, request_iterator: Iterator[pb.AttachInput],
               context: grpc.ServicerContext) -> Iterator[pb.ExecOutput]:
        """A container's output as it comes, until its process ends; then its
        exit code. The first answer, an empty stdout, says the client is
        attached (`orch run -i/-t` starts the container then). Input goes to
        its stdin or tty. The client detaches by ending the stream."""
        req = _first(request_iterator, "attach").attach
        info, fds = self.engine.attach(req.id, (req.size.rows, req.size.cols))
        cid = info["id"]
        engine = self.engine

        def forward(msg: pb.AttachInput) -> None:
            kind = msg.WhichOneof("input")
            if kind == "resize":
                engine.resize(cid, msg.resize.rows, msg.resize.cols)
            elif kind == "stdin" and req.stdin:
                engine.send_input(cid, msg.stdin)
            elif kind == "stdin_close" and req.stdin:
                engine.send_input(cid, b"", close=True)

        _forward_input(request_iterator, forward, lambda: None)
        yield pb.ExecOutput(stdout=b"")
        ended = yield from _pump(fds, ("stdout", "stderr"), context.is_active)
        if ended:
            code = self.engine.exit_code(cid, timeout=30.0)
            yield pb.ExecOutput(exit_code=255 if code is None else code)

    @handle_errors
    def ExecAttach(self, request_iterator: Iterator[pb.AttachInput],
                   context: grpc.ServicerContext) -> Iterator[pb.ExecOutput]:
        """exec with stdin (``stdin``) and a pty (``tty``): an empty stdout
        once it runs, its output (a tty's as stdout) until it ends, then its
        exit code; input, the end of its stdin and window sizes from the
        stream. A client that ends the stream hangs its tty up."""
        req = _first(request_iterator, "exec").exec
        exec_id, fds = self.engine.exec(
            req.id, list(req.command), list(req.env),
            workdir=req.workdir if req.HasField("workdir") else None,
            user=req.user if req.HasField("user") else None,
            tty=req.tty, stdin=req.stdin, size=(req.size.rows, req.size.cols))
        try:
            master = fds[0] if req.tty else -1
            sink = os.dup(master) if req.tty else (fds.pop() if req.stdin else -1)
        except OSError:
            for fd in fds:
                os.close(fd)
            raise
        _forward_input(request_iterator, *_exec_input(sink, req.tty))
        yield pb.ExecOutput(stdout=b"")  # it runs: the client may send input
        ended = yield from _pump(fds, ("stdout",) if req.tty else ("stdout", "stderr"),
                                 context.is_active)
        if ended:
            code = self.engine.exec_exit(exec_id, timeout=30.0)
            yield pb.ExecOutput(exit_code=255 if code is None else code)

    @handle_errors
    def Stats(self, request: pb.ContainerRef, context: grpc.ServicerContext) -> pb.StatsResponse:
        cid, figures = self.engine.stats(request.id)
        return pb.StatsResponse(id=cid, **{k: (v or 0) for k, v in figures.items()})

    @handle_errors
    def StatsAll(self, request: pb.StatsAllRequest, context: grpc.ServicerContext) -> pb.StatsAllResponse:
        return pb.StatsAllResponse(stats=[
            pb.StatsResponse(id=cid, **{k: (v or 0) for k, v in figures.items()})
            for cid, figures in self.engine.stats_all(list(request.ids))])


def _pump_exec(fds: list[int]) -> Iterator[pb.ExecOutput]:
    """The exec's stdout and stderr as they come, until both end; closes them."""
    sel = selectors.DefaultSelector()
    names = dict(zip(fds, ("stdout", "stderr"), strict=False))
    try:
        for fd in fds:
            sel.register(fd, selectors.EVENT_READ)
        while names:
            for key, _ in sel.select():
                data = os.read(key.fd, 65536)
                if not data:
                    sel.unregister(key.fd)
                    names.pop(key.fd)
                    continue
                if names[key.fd] == "stdout":
                    yield pb.ExecOutput(stdout=data)
                else:
                    yield pb.ExecOutput(stderr=data)
    finally:
        sel.close()
        for fd in fds:
            os.close(fd)


# How often a stream with no output checks that its client is still there.
_IDLE_CHECK = 0.5


def _first(request_iterator: Iterator[pb.AttachInput], kind: str) -> pb.AttachInput:
    msg = next(request_iterator, None)
    if msg is None or msg.WhichOneof("input") != kind:
        raise InvalidArgument(f"the stream's first message must be {kind!r}")
    return msg


def _forward_input(request_iterator: Iterator[pb.AttachInput],
                   forward: Callable[[pb.AttachInput], None], done: Callable[[], None]) -> None:
    """Hand each further message of the stream to ``forward``, on a thread
    of its own, until the stream ends; then ``done()``. A message that
    cannot be delivered (the process has ended) is dropped."""
    def run() -> None:
        try:
            for msg in request_iterator:
                try:
                    forward(msg)
                except (AgentError, OSError):
                    pass
        except grpc.RpcError:
            pass  # the call ended
        finally:
            done()

    threading.Thread(target=run, name="attach-input", daemon=True).start()


def _exec_input(sink: int, tty: bool) -> tuple[Callable[[pb.AttachInput], None], Callable[[], None]]:
    """An exec's input: its stdin pipe or (a dup of) its pty master,
    ``sink``, owned by the input thread (-1: none)."""
    state = {"fd": sink}

    def close() -> None:
        fd, state["fd"] = state["fd"], -1
        if fd >= 0:
            os.close(fd)

    def forward(msg: pb.AttachInput) -> None:
        kind, fd = msg.WhichOneof("input"), state["fd"]
        if fd < 0:
            return
        if kind == "stdin":
            _write_all(fd, msg.stdin)
        elif kind == "resize" and tty and msg.resize.rows and msg.resize.cols:
            fcntl.ioctl(fd, termios.TIOCSWINSZ,
                        struct.pack("HHHH", msg.resize.rows, msg.resize.cols, 0, 0))
        elif kind == "stdin_close" and not tty:
            close()

    return forward, close


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _pump(fds: list[int], names: tuple[str, ...],
          active: Callable[[], bool]) -> Generator[pb.ExecOutput, None, bool]:
    """Output from ``fds`` (named by ``names``, in order) as it comes, until
    every one has ended (True) or the client has gone (False); closes them.
    A pty's master ends with EIO once its last slave has closed."""
    sel = selectors.DefaultSelector()
    streams = dict(zip(fds, names, strict=False))
    try:
        for fd in streams:
            sel.register(fd, selectors.EVENT_READ)
        while streams:
            ready = sel.select(_IDLE_CHECK)
            if not ready and not active():
                return False
            for key, _ in ready:
                try:
                    data = os.read(key.fd, 65536)
                except OSError as err:
                    if err.errno != errno.EIO:
                        raise
                    data = b""
                if not data:
                    sel.unregister(key.fd)
                    streams.pop(key.fd)
                elif streams[key.fd] == "stdout":
                    yield pb.ExecOutput(stdout=data)
                else:
                    yield pb.ExecOutput(stderr=data)
        return True
    finally:
        sel.close()
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
