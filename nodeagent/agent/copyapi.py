"""The files half of the node-local API (proto/agent.proto): commit a
container to an image, copy files out of and into a container (`orch cp`).

Each handler finds the container through the engine (its full record: the
runtime spec says where its layers are) and hands the work to
``images.commit`` or ``agent.copyfs``; both work on running and stopped
containers alike. A copy is a tar stream either way, in chunks of
``copyfs.CHUNK``. Part of :class:`nodeagent.agent.service.AgentService`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc

from common.errors import InvalidArgument
from nodeagent.agent.edge import handle_errors
from nodeagent.agent.engine import Engine
from nodeagent.agent.imageapi import image_pb
from proto import agent_pb2 as pb

__all__ = ["CopyAPI"]


class CopyAPI:
    engine: Engine
    state_dir: str
    images: Any  # the image store (loaded on first use)

    @handle_errors
    def Commit(self, request: pb.CommitRequest, context: grpc.ServicerContext) -> pb.Image:
        from nodeagent.images.commit import commit

        rec = self.engine.get(_container(request.container), full=True)
        image = commit(self.images, rec, self.state_dir, ref=request.ref, message=request.message,
                       author=request.author, changes=list(request.changes))
        return image_pb(image)

    @handle_errors
    def CopyFrom(self, request: pb.CopyFromRequest, context: grpc.ServicerContext) -> Iterator[pb.TarChunk]:
        from nodeagent.agent import copyfs

        rec = self.engine.get(_container(request.container), full=True)
        path = _path(request.path)
        with copyfs.container_root(rec, self.state_dir, write=False) as root:
            for data in copyfs.tar_stream(root, path):
                if not context.is_active():
                    return
                yield pb.TarChunk(data=data)

    @handle_errors
    def CopyTo(self, request_iterator: Iterator[pb.CopyToChunk],
               context: grpc.ServicerContext) -> pb.CopyToResponse:
        from nodeagent.agent import copyfs

        first = next(request_iterator, None)
        if first is None:
            raise InvalidArgument("nothing to copy: the request stream was empty")
        rec = self.engine.get(_container(first.container), full=True)
        path = _path(first.path)
        with copyfs.container_root(rec, self.state_dir, write=True) as root:
            copyfs.extract(root, path, _ChunkReader(first.data, request_iterator))
        return pb.CopyToResponse()


def _container(ref: str) -> str:
    if not ref:
        raise InvalidArgument("no container given")
    return ref


def _path(path: str) -> str:
    """A path in the container: relative ones are from its root, as Docker's."""
    if not path:
        raise InvalidArgument("no path in the container given")
    if "\0" in path:
        raise InvalidArgument(f"invalid path {path!r}: it holds a NUL byte")
    return path if path.startswith("/") else "/" + path


class _ChunkReader:
    """The tar bytes of a CopyTo stream, as a file to read (tarfile's stream mode)."""

    def __init__(self, first: bytes, rest: Iterator[pb.CopyToChunk]) -> None:
        self._buf = bytes(first)
        self._rest = rest

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self._buf) < n:
            chunk = next(self._rest, None)
            if chunk is None:
                break
            self._buf += chunk.data
        if n < 0:
            data, self._buf = self._buf, b""
        else:
            data, self._buf = self._buf[:n], self._buf[n:]
        return data
