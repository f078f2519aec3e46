"""The gRPC servicer of the node-local API (proto/agent.proto).

A thin edge, in parts composed here into the one servicer gRPC
registers: containers (``containerapi``: each verb one call of the node's
engine, ``agent.engine``), images (``imageapi``: the image store and
image jobs), user-defined networks (``networkapi``), local volumes
(``volumeapi``) and a container's files (``copyapi``: commit, cp); the agent's own
calls (Info, Shutdown) are here. Handlers convert protobuf messages to
plain values and back; errors become gRPC
status codes with the user-facing message as details (``edge``). The
cluster worker reaches containers through the same engine, never through
this servicer.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import grpc

from nodeagent.agent.containerapi import ContainerAPI, to_pb
from nodeagent.agent.copyapi import CopyAPI
from nodeagent.agent.edge import handle_errors
from nodeagent.agent.engine import Engine
from nodeagent.agent.imageapi import ImageAPI
from nodeagent.agent.networkapi import NetworkAPI
from nodeagent.agent.volumeapi import VolumeAPI
from proto import agent_pb2 as pb
from proto import agent_pb2_grpc as pb_grpc

__all__ = ["VERSION", "AgentService", "handle_errors", "to_pb"]

VERSION = "0.1.0"


class AgentService(ContainerAPI, ImageAPI, NetworkAPI, VolumeAPI, CopyAPI, pb_grpc.AgentServicer):
    def __init__(self, engine: Engine, stop_server: Any = None, info: dict[str, Any] | None = None):
        self.engine = engine
        self.state_dir = engine.state_dir
        self.images = engine.images
        self.stop_server = stop_server
        self.info = info or {}
        # Run by a Shutdown that stops the containers, before it does (the
        # worker leaves the cluster first: see Worker.stop).
        self.before_stopping_containers: list[Callable[[], None]] = []

    @handle_errors
    def Info(self, request: pb.InfoRequest, context: grpc.ServicerContext) -> pb.InfoResponse:
        containers = self.engine.containers(all=True)
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
            self.engine.shutdown()
        if self.stop_server is not None:
            # Only once the reply is on its way: stopping the server first
            # could cut the very call that asked for it.
            context.add_callback(self.stop_server)
        return pb.ShutdownResponse()
