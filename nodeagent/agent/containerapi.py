"""The container half of the node-local API (proto/agent.proto): run,
create, start, stop, kill, remove, list, inspect, wait, logs, exec, stats.

Each handler converts the request to the engine's terms, makes one engine
call (``agent.engine``) and converts the answer back; nothing here knows
the supervisor. Part of :class:`nodeagent.agent.service.AgentService`.
"""

from __future__ import annotations

import os
import selectors
from collections.abc import Iterator
from typing import Any

import grpc

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
        return pb.RemoveResponse(id=self.engine.remove(request.id, force=request.force))

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
