"""The image half of the node-local API (proto/agent.proto): import, list,
inspect, remove, prune, disk use, build, push, pull, login.

The image store answers the quick ones; build, push, pull and login run as
jobs in processes of their own (``nodeagent.images.job``, the builder).
Whether an image is in use is the engine's list of containers. Part of
:class:`nodeagent.agent.service.AgentService`.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any

import grpc

from common.errors import Conflict, InvalidArgument
from nodeagent.agent.edge import handle_errors
from nodeagent.agent.engine import Engine
from proto import agent_pb2 as pb

if TYPE_CHECKING:
    from nodeagent.images.job import Progress

__all__ = ["ImageAPI"]


class ImageAPI:
    engine: Engine
    state_dir: str
    images: Any  # the image store (loaded on first use)

    @handle_errors
    def ImportImage(self, request: pb.ImportImageRequest, context: grpc.ServicerContext) -> pb.Image:
        from nodeagent.images.job import run_job

        if not os.path.exists(request.source):
            raise InvalidArgument(f"{request.source}: no such file or directory")
        return image_pb(self.images.get(run_job(self.state_dir, "import", request.source, request.ref)))

    @handle_errors
    def ListImages(self, request: pb.ListImagesRequest,
                   context: grpc.ServicerContext) -> pb.ListImagesResponse:
        return pb.ListImagesResponse(images=[image_pb(i) for i in self.images.list()])

    @handle_errors
    def InspectImage(self, request: pb.ImageRef, context: grpc.ServicerContext) -> pb.ImageDetails:
        from nodeagent.agent.details import image_details

        return image_details(self.images.get(request.ref))

    @handle_errors
    def RemoveImage(self, request: pb.RemoveImageRequest,
                    context: grpc.ServicerContext) -> pb.RemoveImageResponse:
        image = self.images.get(request.ref)
        users = [c["name"] for c in self.engine.containers(all=True) if c["image_id"] == image.id]
        if users and not request.force:
            raise Conflict(f"image {request.ref} is used by container(s) {', '.join(users)}: "
                           "remove them first, or use -f")
        return pb.RemoveImageResponse(removed=self.images.remove(request.ref))

    @handle_errors
    def PruneImages(self, request: pb.PruneImagesRequest,
                    context: grpc.ServicerContext) -> pb.RemoveImageResponse:
        in_use = {c["image_id"] for c in self.engine.containers(all=True)}
        return pb.RemoveImageResponse(removed=self.images.prune(in_use=in_use))

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
                                stdin=subprocess.DEVNULL)
        last = ""
        try:
            assert proc.stdout is not None
            for text in _whole_lines(proc.stdout.fileno()):
                last = next((ln for ln in reversed(text.splitlines()) if ln.strip()), last)
                yield pb.BuildEvent(lines=text)
        finally:
            if proc.poll() is None and not context.is_active():
                proc.kill()
            code = proc.wait()
        if code != 0:
            raise InvalidArgument(last or f"build failed (exit {code})")
        ref = request.tag or next((w for w in last.split() if w.startswith("sha256:")), "")
        yield pb.BuildEvent(image=image_pb(self.images.get(ref)))

    @handle_errors
    def Push(self, request: pb.PushRequest, context: grpc.ServicerContext) -> Iterator[pb.TransferEvent]:
        from nodeagent.images.job import follow_job

        yield from _transfer(follow_job(self.state_dir, "push", request.ref, request.remote or request.ref,
                                        registry_ca=request.registry_ca))

    @handle_errors
    def Pull(self, request: pb.PullRequest, context: grpc.ServicerContext) -> Iterator[pb.TransferEvent]:
        from nodeagent.images import pullstats
        from nodeagent.images.job import follow_job

        with pullstats.counting():
            yield from _transfer(follow_job(self.state_dir, "pull", request.remote,
                                            registry_ca=request.registry_ca))

    @handle_errors
    def Login(self, request: pb.LoginRequest, context: grpc.ServicerContext) -> pb.LoginResponse:
        from nodeagent.images.job import run_job

        run_job(self.state_dir, "login", request.registry, request.username, stdin=request.password,
                registry_ca=request.registry_ca)
        return pb.LoginResponse()


def _transfer(job: Generator[Progress, None, str]) -> Iterator[pb.TransferEvent]:
    """Stream a push or pull job's progress, then its result."""
    while True:
        try:
            kind, digest, done, total = next(job)
        except StopIteration as finished:
            yield pb.TransferEvent(kind="done", result=finished.value)
            return
        yield pb.TransferEvent(kind=kind, digest=digest, done=done, total=total)


def image_pb(image: Any) -> pb.Image:
    return pb.Image(id=image.id, repo_tags=image.repo_tags, manifest_digest=image.manifest_digest,
                    created=image.created, size=image.size, repo_digests=image.repo_digests)


def _whole_lines(fd: int) -> Iterator[str]:
    """What a pipe carries, as runs of whole lines (each ending in a newline;
    a last unfinished line gets one), one run per read of up to 256 KiB."""
    pending = b""
    while chunk := os.read(fd, 256 << 10):
        pending += chunk
        cut = pending.rfind(b"\n") + 1
        if cut:
            yield pending[:cut].decode("utf-8", "replace")
            pending = pending[cut:]
    if pending:
        yield pending.decode("utf-8", "replace") + "\n"
