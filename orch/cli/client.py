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
            from orch.cli.h2grpc import RpcError

            try:
                self._channel = self._connect(self.host)
            except RpcError as err:
                raise self.translate(err)
        return self._channel

    def _connect(self, host: str) -> Any:
        """A channel to ``host``: a unix socket (``unix://PATH``) or HOST:PORT."""
        from orch.cli.h2grpc import Channel

        path = socket_path(host)
        if path:
            try:
                posix.stat(path)
                allowed = posix.access(path, posix.W_OK)  # connecting needs write access
            except PermissionError:  # a directory on the way is closed to us
                allowed = False
            except (OSError, ValueError):
                raise CLIError(self.not_running_message())
            if not allowed:
                raise CLIError(f"permission denied: {path} is for root only; run orch as root")
            return Channel(path)
        check_address(host)
        return Channel(host)

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

        if err.code == UNAVAILABLE and (getattr(err, "transport", True) or not err.details):
            return CLIError(self.not_running_message())  # a server that says why is reached
        if err.code == CANCELLED:
            return CLIError("cancelled", 130)
        return CLIError(err.details or f"agent error (gRPC status {err.code})")

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None


def key_values(items: list[str], what: str) -> dict[str, str]:
    """``KEY=VALUE`` items (labels, environment variables) as a dict; a
    CLIError naming ``what`` for one that is not."""
    out = {}
    for item in items:
        k, sep, v = item.partition("=")
        if not sep or not k:
            raise CLIError(f"invalid {what} {item!r}: expected KEY=VALUE")
        out[k] = v
    return out


def check_address(host: str) -> None:
    """A HOST:PORT the CLI can dial, or a one-line error."""
    name, sep, port = host.rpartition(":")
    if not sep or not name or not port.isascii() or not port.isdigit() or not 0 < int(port) < 65536:
        raise CLIError(f"invalid address {host!r}: expected HOST:PORT with a port from 1 to 65535, "
                       "or unix:///PATH")


class Cluster(Agent):
    """A client for the control plane's CLI-facing API.

    ``endpoints``: every replica's address, in order of preference (a
    root-only unix socket, ``unix:///PATH``, needs no certificate; HOST:PORT
    is mutual TLS with ``tls``, over grpcio: ``orch.cli.tlschannel``). A
    replica that cannot be reached, or whose connection breaks before it answers, is skipped for the next: any
    replica serves the API, and every call is safe to make again (writes are
    compare-and-swap on the whole spec).
    """

    SERVICE = "orch.cluster.v1.ClusterAPI"
    MODULE = "proto.cluster_pb2"

    def __init__(self, endpoints: str | list[str], tls: Any = None) -> None:
        self.endpoints = [endpoints] if isinstance(endpoints, str) else list(endpoints)
        super().__init__(self.endpoints[0])
        self.tls = tls  # an orch.cli.tlschannel.CLITLS, for HOST:PORT endpoints
        self._index = 0

    def _connect(self, host: str) -> Any:
        if socket_path(host):
            return super()._connect(host)
        check_address(host)
        if self.tls is None:
            raise CLIError(f"the control plane at {host} takes mutual TLS only: give the CLI a user "
                           "certificate (--tlscacert/--tlscert/--tlskey, $ORCH_TLS_* or $ORCH_CERT_PATH; "
                           "`orch cert issue --user NAME` on a control-plane host makes one)")
        import importlib  # grpcio only on this path: the CLI's fast paths never load it

        return importlib.import_module("orch.cli.tlschannel").TLSChannel(host, self.tls)

    @property
    def channel(self) -> Any:
        from orch.cli.h2grpc import RpcError

        last: RpcError | None = None
        while self._channel is None:
            host = self.endpoints[self._index]
            try:
                self._channel = self._connect(host)
                self.host = host
            except (RpcError, CLIError) as err:
                if isinstance(err, CLIError) and not err.message.startswith("cannot reach"):
                    raise  # a bad address or no permission: the user must act
                last = err if isinstance(err, RpcError) else last
                if not self._skip():
                    raise CLIError(self.not_running_message()) from last
        return self._channel

    def _skip(self) -> bool:
        """Move on to the next endpoint; False when every one has been tried."""
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        self._index += 1
        if self._index < len(self.endpoints):
            return True
        self._index = 0
        return False

    def call_bytes(self, method: str, request: bytes, timeout: float | None = None) -> bytes:
        from orch.cli.h2grpc import RpcError

        while True:
            channel = self.channel
            try:
                return bytes(channel.unary(f"/{self.SERVICE}/{method}", request, timeout))
            except RpcError as err:
                if not (_lost(err) and self._skip()):
                    raise self.translate(err)

    def stream_bytes(self, method: str, request: bytes) -> Any:
        """As ``Agent.stream_bytes``, failing over while nothing has arrived."""
        from orch.cli.h2grpc import RpcError

        while True:
            channel = self.channel
            got = False
            try:
                for data in channel.stream(f"/{self.SERVICE}/{method}", request):
                    got = True
                    yield data
                return
            except RpcError as err:
                if got or not (_lost(err) and self._skip()):
                    raise self.translate(err)

    def translate(self, err: Any) -> CLIError:
        from orch.cli.h2grpc import PERMISSION_DENIED, UNAUTHENTICATED

        if err.code in (UNAUTHENTICATED, PERMISSION_DENIED):
            return CLIError(f"the control plane at {self.host} refused the call: {err.details}")
        if str(err.details).startswith("TLS handshake with"):
            return CLIError(err.details)  # a certificate either side refuses: retrying cannot help
        return super().translate(err)

    def not_running_message(self) -> str:
        where = ", ".join(self.endpoints)
        return (f"cannot reach the control plane at {where}: is the cluster up? "
                "Start one with: orch up")


def _lost(err: Any) -> bool:
    """The connection failed or broke (not a status the server sent)."""
    from orch.cli.h2grpc import UNAVAILABLE

    return bool(err.code == UNAVAILABLE and getattr(err, "transport", True))
