"""Connecting to an agent, and turning gRPC failures into one-line errors.

The transport is ``h2grpc`` (a small HTTP/2 gRPC client), imported lazily
with the stubs, so commands that fail early (bad flags, bad quantities) pay
nothing for it.
"""

from __future__ import annotations

# posix rather than os: ``orch run`` starts without site (see scripts/setup),
# and importing os (and with it collections.abc) would cost it about 1.3 ms,
# a twentieth of a whole container start.
import posix

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DEFAULT_HOST = "unix:///run/orch/agent.sock"


class CLIError(Exception):
    """A user-facing failure: printed as one line, then exit with ``code``."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def host_from(arg: str | None) -> str:
    return arg or getenv("ORCH_HOST") or DEFAULT_HOST


def getenv(name: str) -> str | None:
    """``os.environ.get`` (as os decodes it) without importing os."""
    value = posix.environ.get(name.encode())
    return None if value is None else value.decode("utf-8", "surrogateescape")


def exists(path: str) -> bool:
    """``os.path.exists`` without importing os."""
    try:
        posix.stat(path)
    except (OSError, ValueError):
        return False
    return True


def socket_path(host: str) -> str:
    if host.startswith("unix://"):
        return host[len("unix://"):]
    if host.startswith("unix:"):
        return host[len("unix:"):]
    return ""


class Agent:
    """A lazily-connected client for the node-local agent API."""

    SERVICE = "orch.agent.v1.Agent"
    MODULE = "proto.agent_pb2"

    def __init__(self, host: str) -> None:
        self.host = host
        self._channel: Any = None

    @property
    def channel(self) -> Any:
        if self._channel is None:
            from orch.cli.h2grpc import Channel, RpcError

            path = socket_path(self.host)
            if path and not exists(path):
                raise CLIError(self.not_running_message())
            try:
                self._channel = Channel(path or self.host)
            except RpcError as err:
                raise self.translate(err)
        return self._channel

    def not_running_message(self) -> str:
        return (f"cannot reach the orch agent at {self.host}: is it running? "
                "Start it with: orch agent --detach")

    def _reply_type(self, method: str) -> Any:
        """The generated class of ``method``'s reply."""
        import importlib

        pb = importlib.import_module(self.MODULE)
        desc = pb.DESCRIPTOR.services_by_name[self.SERVICE.rsplit(".", 1)[1]].methods_by_name[method]
        from google.protobuf.message_factory import GetMessageClass

        return GetMessageClass(desc.output_type)

    def call(self, method: str, request: Any, timeout: float | None = None) -> Any:
        """A unary call: ``request`` is a message, or already its wire bytes."""
        reply_type = self._reply_type(method)
        data = request if isinstance(request, bytes) else request.SerializeToString()
        return reply_type.FromString(self.call_bytes(method, data, timeout))

    def call_bytes(self, method: str, request: bytes, timeout: float | None = None) -> bytes:
        """A unary call in wire bytes both ways: no protobuf import."""
        from orch.cli.h2grpc import RpcError

        try:
            return bytes(self.channel.unary(f"/{self.SERVICE}/{method}", request, timeout))
        except RpcError as err:
            raise self.translate(err)

    def stream(self, method: str, request: Any) -> Any:
        reply_type = self._reply_type(method)
        for data in self.stream_bytes(method, request.SerializeToString()):
            yield reply_type.FromString(data)

    def stream_bytes(self, method: str, request: bytes) -> Any:
        """A server-streaming call in wire bytes both ways: no protobuf import."""
        from orch.cli.h2grpc import RpcError

        try:
            yield from self.channel.stream(f"/{self.SERVICE}/{method}", request)
        except RpcError as err:
            raise self.translate(err)

    def translate(self, err: Any) -> CLIError:
        from orch.cli.h2grpc import CANCELLED, UNAVAILABLE

        if err.code == UNAVAILABLE:
            return CLIError(self.not_running_message())
        if err.code == CANCELLED:
            return CLIError("cancelled", 130)
        return CLIError(err.details or f"agent error (gRPC status {err.code})")

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None


class Cluster(Agent):
    """A client for the control plane's CLI-facing API (HOST:PORT)."""

    SERVICE = "orch.cluster.v1.ClusterAPI"
    MODULE = "proto.cluster_pb2"

    def not_running_message(self) -> str:
        return (f"cannot reach the control plane at {self.host}: is the cluster up? "
                "Start one with: orch up")
