"""The gRPC servicer of the node-local API (proto/agent.proto).

A thin edge: it converts protobuf messages to plain objects, builds specs
(``specbuild``), and forwards container verbs to the supervisor. Errors
become gRPC status codes with the user-facing message as details.
"""

from __future__ import annotations

import os
import selectors
from collections.abc import Callable, Generator, Iterator
from typing import TYPE_CHECKING, Any

import grpc

from common.errors import AgentError, Conflict, InvalidArgument
from nodeagent.agent import specbuild
from nodeagent.agent.events import EventHub
from nodeagent.logs import LogFollower, read_logs
from nodeagent.supervisor import SupervisorClient
from proto import agent_pb2 as pb
from proto import agent_pb2_grpc as pb_grpc

if TYPE_CHECKING:
    from nodeagent.images.job import Progress

VERSION = "0.1.0"

_STATUS = {
    "not_found": grpc.StatusCode.NOT_FOUND,
    "invalid": grpc.StatusCode.INVALID_ARGUMENT,
    "conflict": grpc.StatusCode.ALREADY_EXISTS,
    "precondition": grpc.StatusCode.FAILED_PRECONDITION,
    "setup": grpc.StatusCode.FAILED_PRECONDITION,
    "unavailable": grpc.StatusCode.UNAVAILABLE,
}


def _abort(context: grpc.ServicerContext, err: AgentError) -> None:
    context.abort(_STATUS.get(err.code, grpc.StatusCode.INTERNAL), err.message)


def handle_errors(fn: Any) -> Any:
    """Map AgentError to a gRPC status; works for unary and streaming handlers."""
    import functools
    import inspect

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen_wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            try:
                yield from fn(self, request, context)
            except AgentError as err:
                _abort(context, err)
        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return fn(self, request, context)
        except AgentError as err:
            _abort(context, err)
    return wrapper


def to_pb(rec: dict[str, Any]) -> pb.Container:
    return pb.Container(
        id=rec["id"], name=rec["name"], image=rec["image"], image_id=rec["image_id"],
        command=rec["command"], state=rec["state"], created_at=rec["created_at"],
        started_at=rec["started_at"], finished_at=rec["finished_at"],
        exit_code=rec["exit_code"], signal=rec["signal"], oom_killed=rec["oom_killed"],
        restart_count=rec["restart_count"], pid=rec["pid"], ip_address=rec["ip_address"],
        ports=[pb.PortMapping(**p) for p in rec["ports"]],
        restart_policy=rec["restart_policy"], network=rec["network"], error=rec["error"],
        auto_remove=rec["auto_remove"],
    )


class AgentService(pb_grpc.AgentServicer):
    def __init__(self, state_dir: str, supervisor: SupervisorClient, events: EventHub,
                 images: Any, stop_server: Any = None, info: dict[str, Any] | None = None):
        self.state_dir = state_dir
        self.sup = supervisor
        self.events = events
        self.images = images
        self.stop_server = stop_server
        self.info = info or {}
        # Run by a Shutdown that stops the containers, before it does (the
        # worker leaves the cluster first: see Worker.stop).
        self.before_stopping_containers: list[Callable[[], None]] = []

    # ---- containers -----------------------------------------------------

    def _record_request(self, cfg: pb.ContainerConfig) -> dict[str, Any]:
        if not cfg.image:
            raise InvalidArgument("no image given")
        image = self.images.get(cfg.image)
        spec, extra = specbuild.build(cfg, image, self.images.lower_dirs(image), self.state_dir,
                                      self.info.get("default_pids_limit", 0))
        from google.protobuf.json_format import MessageToDict

        return {"spec": spec.to_dict(), "config": MessageToDict(cfg), **extra}

    @handle_errors
    def Create(self, request: pb.ContainerConfig, context: grpc.ServicerContext) -> pb.Container:
        return to_pb(self.sup.call("create", record=self._record_request(request)))

    @handle_errors
    def Run(self, request: pb.RunRequest, context: grpc.ServicerContext) -> Iterator[pb.RunEvent]:
        if not request.attach:
            yield pb.RunEvent(started=to_pb(self.sup.call("run", record=self._record_request(
                request.config))))
            return
        rec = self.sup.call("create", record=self._record_request(request.config))
        cid = rec["id"]
        # Opened before the start: the follower holds the file, so even an
        # auto-removed container's last lines are read.
        follower = LogFollower(rec["log_path"], tail=None)
        try:
            try:
                rec = self.sup.call("start", id=cid)
            except AgentError:
                if request.config.auto_remove:
                    self.sup.call("remove", id=cid, force=True)
                raise
            yield pb.RunEvent(started=to_pb(rec))
            while context.is_active():
                seen = self.events.generation
                final = self.events.exited(cid)
                for entry in follower.poll():
                    yield pb.RunEvent(log=pb.LogLine(time=entry.time, stream=entry.stream,
                                                     line=entry.line))
                if final is not None:
                    self.events.forget(cid)
                    yield pb.RunEvent(exited=to_pb(final))
                    return
                self.events.wait_change(0.05, since=seen)
        finally:
            follower.close()

    @handle_errors
    def Start(self, request: pb.ContainerRef, context: grpc.ServicerContext) -> pb.Container:
        return to_pb(self.sup.call("start", id=request.id))

    @handle_errors
    def Stop(self, request: pb.StopRequest, context: grpc.ServicerContext) -> pb.Container:
        timeout = request.timeout if request.HasField("timeout") else None
        return to_pb(self.sup.call("stop", id=request.id, timeout=timeout))

    @handle_errors
    def Kill(self, request: pb.KillRequest, context: grpc.ServicerContext) -> pb.Container:
        sig = specbuild.parse_signal(request.signal or "SIGKILL", "signal")
        return to_pb(self.sup.call("kill", id=request.id, signal=sig))

    @handle_errors
    def Remove(self, request: pb.RemoveRequest, context: grpc.ServicerContext) -> pb.RemoveResponse:
        res = self.sup.call("remove", id=request.id, force=request.force)
        self.events.forget(res["id"])
        return pb.RemoveResponse(id=res["id"])

    @handle_errors
    def List(self, request: pb.ListRequest, context: grpc.ServicerContext) -> pb.ListResponse:
        return pb.ListResponse(containers=[to_pb(r) for r in self.sup.call("list", all=request.all)])

    @handle_errors
    def Inspect(self, request: pb.ContainerRef, context: grpc.ServicerContext) -> pb.ContainerDetails:
        from nodeagent.agent.details import container_details

        rec = self.sup.call("get", id=request.id, full=True)
        return container_details(rec, to_pb(rec))

    @handle_errors
    def Wait(self, request: pb.ContainerRef, context: grpc.ServicerContext) -> pb.Container:
        return to_pb(self.sup.call("wait", id=request.id))

    @handle_errors
    def Logs(self, request: pb.LogsRequest, context: grpc.ServicerContext) -> Iterator[pb.LogLine]:
        rec = self.sup.call("get", id=request.id)
        tail = request.tail if request.HasField("tail") else None
        if not request.follow:
            for entry in read_logs(rec["log_path"], tail=tail):
                yield pb.LogLine(time=entry.time, stream=entry.stream, line=entry.line)
            return
        follower = LogFollower(rec["log_path"], tail=tail)
        try:
            # Like `docker logs -f`: follow until the container stops.
            running = rec["state"] in ("running", "restarting")
            while context.is_active():
                stopped = not running or self._stopped(rec["id"])
                for entry in follower.poll():
                    yield pb.LogLine(time=entry.time, stream=entry.stream, line=entry.line)
                if stopped:
                    return
                self.events.wait_change(0.1)
        finally:
            follower.close()

    def _stopped(self, cid: str) -> bool:
        final = self.events.exited(cid)
        return final is not None and final["state"] == "exited"

    @handle_errors
    def Exec(self, request: pb.ExecRequest, context: grpc.ServicerContext) -> Iterator[pb.ExecOutput]:
        if not request.command:
            raise InvalidArgument("no command given to exec")
        rec = self.sup.call("get", id=request.id, full=True)
        proc = rec["spec"]["process"]
        process = {
            "args": list(request.command),
            "env": specbuild.merge_env(proc["env"], list(request.env)),
            "cwd": request.workdir if request.HasField("workdir") else proc["cwd"],
            "user": specbuild.check_user(request.user) if request.HasField("user") else proc["user"],
        }
        result, fds = self.sup.call_fds("exec", id=request.id, process=process)
        yield from self._pump_exec(fds)
        code = self.events.wait_exec(int(result["exec_id"]), timeout=30.0)
        yield pb.ExecOutput(exit_code=255 if code is None else code)

    def _pump_exec(self, fds: list[int]) -> Iterator[pb.ExecOutput]:
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

    @handle_errors
    def Stats(self, request: pb.ContainerRef, context: grpc.ServicerContext) -> pb.StatsResponse:
        rec = self.sup.call("get", id=request.id)
        stats = self.sup.call("stats", id=request.id)
        return pb.StatsResponse(id=rec["id"], **{k: (v or 0) for k, v in stats.items()})

    # ---- images ---------------------------------------------------------

    @handle_errors
    def ImportImage(self, request: pb.ImportImageRequest, context: grpc.ServicerContext) -> pb.Image:
        from nodeagent.images.job import run_job

        if not os.path.exists(request.source):
            raise InvalidArgument(f"{request.source}: no such file or directory")
        return self._image_pb(self.images.get(
            run_job(self.state_dir, "import", request.source, request.ref)))

    @handle_errors
    def ListImages(self, request: pb.ListImagesRequest,
                   context: grpc.ServicerContext) -> pb.ListImagesResponse:
        return pb.ListImagesResponse(images=[self._image_pb(i) for i in self.images.list()])

    @handle_errors
    def InspectImage(self, request: pb.ImageRef, context: grpc.ServicerContext) -> pb.ImageDetails:
        from nodeagent.agent.details import image_details

        return image_details(self.images.get(request.ref))

    @handle_errors
    def RemoveImage(self, request: pb.RemoveImageRequest,
                    context: grpc.ServicerContext) -> pb.RemoveImageResponse:
        image = self.images.get(request.ref)
        users = [c["name"] for c in self.sup.call("list", all=True) if c["image_id"] == image.id]
        if users and not request.force:
            raise Conflict(f"image {request.ref} is used by container(s) {', '.join(users)}: "
                           "remove them first, or use -f")
        return pb.RemoveImageResponse(removed=self.images.remove(request.ref))

    @handle_errors
    def PruneImages(self, request: pb.PruneImagesRequest,
                    context: grpc.ServicerContext) -> pb.RemoveImageResponse:
        in_use = {c["image_id"] for c in self.sup.call("list", all=True)}
        removed = self.images.prune(in_use=in_use)
        return pb.RemoveImageResponse(removed=removed)

    @handle_errors
    def DiskUsage(self, request: pb.DiskUsageRequest,
                  context: grpc.ServicerContext) -> pb.DiskUsageResponse:
        from nodeagent.agent.details import disk_usage

        return disk_usage(self.images.disk_usage())

    @handle_errors
    def Build(self, request: pb.BuildRequest, context: grpc.ServicerContext) -> Iterator[pb.BuildEvent]:
        import subprocess
        import sys

        if not os.path.isdir(request.context):
            raise InvalidArgument(f"build context {request.context}: not a directory")
        cmd = [sys.executable, "-m", "nodeagent.images.build", "--state-dir", self.state_dir]
        if request.containerfile:
            cmd += ["-f", request.containerfile]
        if request.tag:
            cmd += ["-t", request.tag]
        for key, value in request.build_args.items():
            cmd += ["--build-arg", f"{key}={value}"]
        if request.target:
            cmd += ["--target", request.target]
        if request.no_cache:
            cmd.append("--no-cache")
        cmd.append(request.context)
        # The builder forks containers for RUN steps, so it is its own
        # single-threaded process, started by exec (never a fork of this one).
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, text=True)
        last = ""
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                last = line.rstrip("\n") or last
                yield pb.BuildEvent(line=line.rstrip("\n"))
        finally:
            if proc.poll() is None and not context.is_active():
                proc.kill()
            code = proc.wait()
        if code != 0:
            raise InvalidArgument(last or f"build failed (exit {code})")
        ref = request.tag or next((w for w in last.split() if w.startswith("sha256:")), "")
        yield pb.BuildEvent(image=self._image_pb(self.images.get(ref)))

    @staticmethod
    def _transfer(job: Generator[Progress, None, str]) -> Iterator[pb.TransferEvent]:
        """Stream a push or pull job's progress, then its result."""
        while True:
            try:
                kind, digest, done, total = next(job)
            except StopIteration as finished:
                yield pb.TransferEvent(kind="done", result=finished.value)
                return
            yield pb.TransferEvent(kind=kind, digest=digest, done=done, total=total)

    @handle_errors
    def Push(self, request: pb.PushRequest, context: grpc.ServicerContext) -> Iterator[pb.TransferEvent]:
        from nodeagent.images.job import follow_job

        yield from self._transfer(follow_job(self.state_dir, "push", request.ref,
                                             request.remote or request.ref,
                                             registry_ca=request.registry_ca))

    @handle_errors
    def Pull(self, request: pb.PullRequest, context: grpc.ServicerContext) -> Iterator[pb.TransferEvent]:
        from nodeagent.images.job import follow_job

        yield from self._transfer(follow_job(self.state_dir, "pull", request.remote,
                                             registry_ca=request.registry_ca))

    @handle_errors
    def Login(self, request: pb.LoginRequest, context: grpc.ServicerContext) -> pb.LoginResponse:
        from nodeagent.images.job import run_job

        run_job(self.state_dir, "login", request.registry, request.username, stdin=request.password,
                registry_ca=request.registry_ca)
        return pb.LoginResponse()

    @staticmethod
    def _image_pb(image: Any) -> pb.Image:
        return pb.Image(id=image.id, repo_tags=image.repo_tags,
                        manifest_digest=image.manifest_digest, created=image.created,
                        size=image.size, repo_digests=image.repo_digests)

    # ---- agent ----------------------------------------------------------

    @handle_errors
    def Info(self, request: pb.InfoRequest, context: grpc.ServicerContext) -> pb.InfoResponse:
        containers = self.sup.call("list", all=True)
        return pb.InfoResponse(
            version=VERSION, state_dir=self.state_dir,
            containers=len(containers),
            running=sum(1 for c in containers if c["state"] == "running"),
            images=self.images.count(), agent_pid=os.getpid(),
            storage_limit=self._storage_limit(), **self.info)

    def _storage_limit(self) -> str:
        """How a writable-layer size limit is kept here (a project quota, or a
        loop-mounted filesystem per container), asked anew each time (the
        state dir may be remounted while the agent runs)."""
        from nodeagent.runtime import loopfs

        try:
            return loopfs.detect(os.path.join(self.state_dir, "containers")).describe()
        except OSError as err:
            return f"not enforced: cannot inspect {self.state_dir}: {err.strerror}"

    @handle_errors
    def Shutdown(self, request: pb.ShutdownRequest,
                 context: grpc.ServicerContext) -> pb.ShutdownResponse:
        if request.stop_containers:
            for hook in self.before_stopping_containers:
                hook()
            self.sup.call("shutdown", stop_containers=True)
        if self.stop_server is not None:
            # Only once the reply is on its way: stopping the server first
            # could cut the very call that asked for it.
            context.add_callback(self.stop_server)
        return pb.ShutdownResponse()
