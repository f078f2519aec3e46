"""Connecting to an agent, and turning gRPC failures into one-line errors.

grpc is imported lazily: it costs ~100 ms, and commands that fail early
(bad flags, bad quantities) should not pay it.
"""

from __future__ import annotations

import os
from typing import Any

DEFAULT_HOST = "unix:///run/orch/agent.sock"


class CLIError(Exception):
    """A user-facing failure: printed as one line, then exit with ``code``."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def host_from(arg: str | None) -> str:
    return arg or os.environ.get("ORCH_HOST") or DEFAULT_HOST


def socket_path(host: str) -> str:
    if host.startswith("unix://"):
        return host[len("unix://"):]
    if host.startswith("unix:"):
        return host[len("unix:"):]
    return ""


class Agent:
    """A lazily-connected stub for the node-local agent API."""

    def __init__(self, host: str) -> None:
        self.host = host
        self._stub: Any = None
        self._channel: Any = None

    @property
    def stub(self) -> Any:
        if self._stub is None:
            path = socket_path(self.host)
            if path and not os.path.exists(path):
                raise CLIError(self.not_running_message())
            import grpc

            from proto import agent_pb2_grpc

            target = f"unix:{path}" if path else self.host
            self._channel = grpc.insecure_channel(target)
            self._stub = agent_pb2_grpc.AgentStub(self._channel)
        return self._stub

    def not_running_message(self) -> str:
        return (f"cannot reach the orch agent at {self.host}: is it running? "
                "Start it with: orch agent --detach")

    def call(self, method: str, request: Any, timeout: float | None = None) -> Any:
        import grpc

        try:
            return getattr(self.stub, method)(request, timeout=timeout)
        except grpc.RpcError as err:
            raise self.translate(err)

    def stream(self, method: str, request: Any) -> Any:
        import grpc

        try:
            yield from getattr(self.stub, method)(request)
        except grpc.RpcError as err:
            raise self.translate(err)

    def translate(self, err: Any) -> CLIError:
        import grpc

        code = err.code()
        if code == grpc.StatusCode.UNAVAILABLE:
            return CLIError(self.not_running_message())
        if code == grpc.StatusCode.CANCELLED:
            return CLIError("cancelled", 130)
        return CLIError(err.details() or str(code))

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
