"""Interactive streams: ``orch run -i/-t``, ``orch exec -i/-t`` (engine
and cluster) and ``orch attach``, as Docker's.

One bidirectional call carries a session (the agent's ``Attach`` or
``ExecAttach``, the control plane's ``ExecAttach``): this side sends the
first message (what to attach to, with the terminal's size), then stdin as
it is read, the size again on every SIGWINCH, and the end of stdin; the
other side sends the output, then the exit code, which becomes the
command's.

With ``-t`` the local terminal is put in raw mode for the session and
restored on every way out (:class:`RawTerminal`): every key, Ctrl-C (0x03)
included, goes to the container's pty, whose line discipline makes it a
SIGINT for its foreground processes. Ctrl-P Ctrl-Q detaches from a
container (``attach``, ``run -it``): it keeps running (:class:`DetachKeys`).

These calls stream both ways, which ``h2grpc`` does not do: grpcio carries
them. This module is loaded only for them, never on ``orch run``'s quick path.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import sys
import termios
import threading
import tty
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

import grpc

from orch.cli.client import Agent, CLIError, socket_path
from proto import agent_pb2 as pb

__all__ = ["DetachKeys", "RawTerminal", "attach", "exec_cluster", "exec_engine", "run"]

# Docker's default detach keys: Ctrl-P, Ctrl-Q.
DETACH_KEYS = b"\x10\x11"
READ_SIZE = 65536
NOT_A_TTY = "the input device is not a TTY: leave -t out, or run from a terminal"


class RawTerminal:
    """The terminal on ``fd`` in raw mode while in the ``with`` block, as it
    was afterwards, whatever ends the block. SIGTERM and SIGHUP end it too
    (as SystemExit) rather than leaving the terminal raw."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.saved: list[Any] | None = None
        self.handlers: dict[int, Any] = {}

    def __enter__(self) -> RawTerminal:
        self.saved = termios.tcgetattr(self.fd)
        for sig in (signal.SIGTERM, signal.SIGHUP):
            self.handlers[sig] = signal.signal(sig, _exit_on_signal)
        tty.setraw(self.fd, termios.TCSANOW)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.saved is not None:
            with contextlib.suppress(termios.error):
                termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)
        for sig, handler in self.handlers.items():
            signal.signal(sig, handler)


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def window_size(fd: int) -> pb.WindowSize | None:
    try:
        size = os.get_terminal_size(fd)
    except OSError:
        return None
    return pb.WindowSize(rows=size.lines, cols=size.columns)


# Docker's names of the control characters ``ctrl-X`` may name, beyond ctrl-a..z.
_CTRL_SYMBOLS = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}


def parse_detach_keys(spec: str) -> bytes:
    """Docker's ``--detach-keys``: comma-separated keys, each one character
    or ``ctrl-X`` (X one of a-z @ [ \\ ] ^ _), e.g. ``ctrl-x,x``; "" is
    the default, Ctrl-P Ctrl-Q. ValueError naming the key otherwise."""
    if not spec:
        return DETACH_KEYS
    out = bytearray()
    for key in spec.split(","):
        if len(key) == 1 and key.isascii():
            out.append(ord(key))
            continue
        name = key.lower()
        rest = name[len("ctrl-"):] if name.startswith("ctrl-") else ""
        if len(rest) == 1 and "a" <= rest <= "z":
            out.append(ord(rest) - ord("a") + 1)
        elif len(rest) == 1 and rest in _CTRL_SYMBOLS:
            out.append(_CTRL_SYMBOLS[rest])
        else:
            raise ValueError(f"invalid detach key {key!r}: one character or ctrl-X "
                             "(X one of a-z @ [ \\ ] ^ _), comma-separated, e.g. ctrl-x,x")
    return bytes(out)


class DetachKeys:
    """Finds the detach sequence in what is typed: :meth:`feed` returns
    the bytes to send on and whether the sequence was typed. A partial
    sequence is held until the next byte shows whether it goes on; one
    that breaks off is sent as typed."""

    def __init__(self, keys: bytes = DETACH_KEYS) -> None:
        self.keys = keys
        self.held = b""

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        out = bytearray()
        for byte in data:
            self.held += bytes((byte,))
            if self.held == self.keys:
                self.held = b""
                return bytes(out), True
            # Keep the longest tail that may still begin the sequence
            # (ctrl-p,ctrl-p,ctrl-q typed after one more ctrl-p).
            while self.held and not self.keys.startswith(self.held):
                out.append(self.held[0])
                self.held = self.held[1:]
        return bytes(out), False


class Session:
    """One interactive call: its requests from a queue, its output to this
    process's stdout and stderr. ``message(kind, value)`` makes a request of
    the call's type (``stdin``, ``resize``, ``stdin_close``)."""

    def __init__(self, message: Callable[[str, Any], Any], tty: bool, stdin: bool,
                 detach: bool, detach_keys: bytes = DETACH_KEYS) -> None:
        self.message = message
        self.tty = tty
        self.stdin = stdin
        self.keys = DetachKeys(detach_keys) if detach else None
        self.requests: queue.Queue[Any] = queue.Queue()
        self.call: Any = None
        self.detached = False

    def _requests(self, first: Any) -> Iterator[Any]:
        yield first
        while (item := self.requests.get()) is not None:
            yield item

    def run(self, start: Callable[[Iterator[Any]], Any], first: Any,
            attached: Callable[[], None] | None = None) -> int:
        """Make the call (``start(requests)``) and relay until it ends: the
        exit code it sends (0 once detached). ``attached`` runs on the first
        answer, before stdin is read (``run`` starts the container then)."""
        raw = RawTerminal(0) if self.tty and self.stdin else contextlib.nullcontext()
        old_winch = None
        with raw:
            try:
                if self.tty:
                    old_winch = signal.signal(signal.SIGWINCH, self._resized)
                self.call = start(self._requests(first))
                return self._relay(attached)
            finally:
                self.requests.put(None)
                if old_winch is not None:
                    signal.signal(signal.SIGWINCH, old_winch)
                if self.call is not None:
                    self.call.cancel()

    def _relay(self, attached: Callable[[], None] | None) -> int:
        first = True
        out, err = sys.stdout.buffer, sys.stderr.buffer
        try:
            for reply in self.call:
                if first:
                    first = False
                    if attached is not None:
                        attached()
                    if self.stdin:
                        threading.Thread(target=self._read_stdin, name="stdin", daemon=True).start()
                kind = reply.WhichOneof("output")
                if kind == "stdout":
                    out.write(reply.stdout)
                    out.flush()
                elif kind == "stderr":
                    err.write(reply.stderr)
                    err.flush()
                elif kind == "exit_code":
                    return int(reply.exit_code)
        except grpc.RpcError as exc:
            if self.detached:
                return self._detach()
            raise _error(exc) from None
        if self.detached:
            return self._detach()
        raise CLIError("the stream ended before the process exited", 125)

    @staticmethod
    def _detach() -> int:
        sys.stderr.write("\r\n")  # the prompt after this starts on a line of its own
        return 0

    def _resized(self, signum: int, frame: FrameType | None) -> None:
        size = window_size(0) or window_size(1)
        if size is not None:
            self.requests.put(self.message("resize", size))

    def _read_stdin(self) -> None:
        """Stdin to the call as it comes; its end as ``stdin_close``. The
        detach keys end the call instead."""
        while True:
            try:
                data = os.read(0, READ_SIZE)
            except OSError:
                data = b""
            if not data:
                self.requests.put(self.message("stdin_close", True))
                return
            if self.keys is not None:
                data, detach = self.keys.feed(data)
                if detach:
                    self.detached = True
                    if data:
                        self.requests.put(self.message("stdin", data))
                    self.call.cancel()
                    return
            if data:
                self.requests.put(self.message("stdin", data))


def _error(exc: grpc.RpcError) -> CLIError:
    call: Any = exc
    code = call.code() if hasattr(call, "code") else grpc.StatusCode.UNKNOWN
    details = str(call.details() or "") if hasattr(call, "details") else str(exc)
    if code is grpc.StatusCode.UNAVAILABLE and not details.startswith(("no such", "container")):
        return CLIError(f"lost the connection: {' '.join(details.split()) or 'unavailable'}")
    if code is grpc.StatusCode.CANCELLED:
        return CLIError("cancelled", 130)
    return CLIError(" ".join(details.split()) or f"error (gRPC status {code.name})")


def _check_terminal(tty: bool, stdin: bool) -> None:
    if tty and stdin and not os.isatty(0):
        raise CLIError(NOT_A_TTY)


def _channel(client: Agent) -> grpc.Channel:
    """A grpcio channel to where ``client`` points: its unix socket, its
    TCP address, or (a control plane over TCP) its mutual-TLS channel."""
    path = socket_path(client.host)
    if path:
        client.channel  # noqa: B018 - checks the socket is there, with the CLI's message
        return grpc.insecure_channel("unix:" + path)
    chan = client.channel
    opened = getattr(chan, "_open", None)  # orch.cli.tlschannel.TLSChannel
    if opened is not None:
        channel: grpc.Channel = opened()
        return channel
    return grpc.insecure_channel(client.host)


def _message(kind: str, value: Any) -> pb.AttachInput:
    return pb.AttachInput(**{kind: value})


def _stream(client: Agent, method: str, request_type: Any) -> Callable[[Iterator[Any]], Any]:
    channel = _channel(client)
    return channel.stream_stream(f"/{client.SERVICE}/{method}",
                                 request_serializer=request_type.SerializeToString,
                                 response_deserializer=pb.ExecOutput.FromString)


# ---- the commands ----------------------------------------------------------------

def run(values: dict[str, Any], agent: Agent) -> int:
    """``orch run -i/-t``: create, attach, start (once attached: no output
    is missed), relay; the container's exit code. With ``--rm`` it is gone
    by then."""
    from orch.cli import runcmd

    use_tty, use_stdin = bool(values.get("tty")), bool(values.get("interactive"))
    keys = _detach_keys(values.get("detach_keys") or "")
    _check_terminal(use_tty, use_stdin)
    if values["rm"] and values["restart"] not in ("no", ""):
        raise CLIError("--rm and --restart cannot be used together")
    try:
        created = agent.call("Create", runcmd.encode_config(runcmd.config_fields(values)))
    except CLIError as err:
        raise CLIError(err.message, 125) from None
    cid = created.id

    def start() -> None:
        try:
            agent.call("Start", pb.ContainerRef(id=cid))
        except CLIError as err:
            if values["rm"]:
                with contextlib.suppress(CLIError):
                    agent.call("Remove", pb.RemoveRequest(id=cid, force=True))
            raise _start_error(err) from None

    first = pb.AttachInput(attach=pb.AttachRequest(id=cid, stdin=use_stdin,
                                                   size=window_size(0) if use_tty else None))
    session = Session(_message, use_tty, use_stdin, detach=use_tty and use_stdin, detach_keys=keys)
    return session.run(_stream(agent, "Attach", pb.AttachInput), first, attached=start)


def _detach_keys(spec: str) -> bytes:
    try:
        return parse_detach_keys(spec)
    except ValueError as err:
        raise CLIError(f"--detach-keys: {err}") from None


def _start_error(err: CLIError) -> CLIError:
    """Docker's convention, as ``orch run``'s: 127 when the command cannot
    be found, 126 when it cannot be run, 125 for any other failure."""
    if "setup failed at step 'exec'" in err.message:
        return CLIError(err.message, 127 if "No such file" in err.message else 126)
    return CLIError(err.message, 125)


def attach(agent: Agent, container: str, no_stdin: bool = False, detach_keys: str = "") -> int:
    """``orch attach``: the container's output from now on, its stdin and tty
    if it has them; its exit code, or 0 once detached (Ctrl-P Ctrl-Q, or
    ``detach_keys``)."""
    keys = _detach_keys(detach_keys)
    details = agent.call("Inspect", pb.ContainerRef(id=container))
    if details.container.state not in ("created", "running", "restarting"):
        raise CLIError(f"container {details.container.name} is not running: start it first, "
                       "then attach to it")
    config = details.config if details.HasField("config") else None
    use_tty = bool(config and config.tty)
    use_stdin = bool(config and config.stdin_open) and not no_stdin
    _check_terminal(use_tty, use_stdin)
    first = pb.AttachInput(attach=pb.AttachRequest(id=container, stdin=use_stdin,
                                                   size=window_size(0) if use_tty else None))
    session = Session(_message, use_tty, use_stdin, detach=use_stdin, detach_keys=keys)
    return session.run(_stream(agent, "Attach", pb.AttachInput), first)


def exec_engine(agent: Agent, request: pb.ExecRequest) -> int:
    """``orch exec -i/-t`` on this engine: the process's exit code."""
    _check_terminal(request.tty, request.stdin)
    if request.tty and (size := window_size(0) or window_size(1)) is not None:
        request.size.CopyFrom(size)
    session = Session(_message, request.tty, request.stdin, detach=False)
    return session.run(_stream(agent, "ExecAttach", pb.AttachInput), pb.AttachInput(exec=request))


def exec_cluster(cluster: Agent, request: Any) -> int:
    """``orch exec -i/-t TASK`` through the control plane, to the task's
    node (``request``: a ``TaskExecRequest``)."""
    from proto import cluster_pb2 as cpb

    _check_terminal(request.tty, request.stdin)
    if request.tty and (size := window_size(0) or window_size(1)) is not None:
        request.size.CopyFrom(size)

    def message(kind: str, value: Any) -> cpb.TaskAttachInput:
        return cpb.TaskAttachInput(**{kind: value})

    session = Session(message, request.tty, request.stdin, detach=False)
    return session.run(_stream(cluster, "ExecAttach", cpb.TaskAttachInput),
                       cpb.TaskAttachInput(exec=request))
