"""The CLI's HTTP/2 gRPC client against real peers.

- a real grpcio server in this process (bytes in and out), on a unix socket
  and on 127.0.0.1: requests of every size around the frame and window
  limits, early errors, streaming replies, metadata, deadlines;
- a raw HTTP/2 peer (a thread speaking frames by hand, header blocks by the
  ``hpack`` package) for what grpcio cannot be made to do: tiny windows
  trickled open, early resets and errors while the client waits for window,
  GOAWAY, closing, silence and malformed frames. It checks every frame the
  client sends against the limits it announced.
"""

from __future__ import annotations

import hashlib
import random
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import hpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orch.cli import h2grpc
from orch.cli.h2grpc import RpcError

KB = 1024
MB = 1024 * KB


# ---- a real grpcio server ------------------------------------------------------

def _digest(data: bytes) -> bytes:
    return len(data).to_bytes(8, "big") + hashlib.sha256(data).digest()


def _block(index: int, size: int) -> bytes:
    """Message ``index`` of a streamed reply: distinct content, cheap to check."""
    return random.Random(index).randbytes(size)


class Handlers:
    """The test service: what each method received, as bytes."""

    def __init__(self) -> None:
        self.release = threading.Event()  # lets /Slow return (at teardown)

    def digest(self, request: bytes, context: Any) -> bytes:
        return _digest(request)

    def echo(self, request: bytes, context: Any) -> bytes:
        return request

    def metadata(self, request: bytes, context: Any) -> bytes:
        seen = dict(context.invocation_metadata())
        remaining = context.time_remaining()
        text = f"{seen.get('authorization', '')}|{len(seen.get('x-big', ''))}|{remaining}"
        return text.encode()

    def slow(self, request: bytes, context: Any) -> bytes:
        self.release.wait(60)
        return b"late"

    def many(self, request: bytes, context: Any) -> Iterator[bytes]:
        count, size = int.from_bytes(request[:4], "big"), int.from_bytes(request[4:8], "big")
        for i in range(count):
            yield _block(i, size)


@contextmanager
def grpc_server(tmp_path: Path, **options: int) -> Iterator[tuple[str, str, Handlers]]:
    """A grpcio server on a unix socket and on 127.0.0.1: (path, host:port, handlers)."""
    handlers = Handlers()
    opts = {"grpc.max_receive_message_length": 16 * MB, "grpc.max_send_message_length": 64 * MB,
            "grpc.max_metadata_size": 64 * KB, "grpc.absolute_max_metadata_size": 64 * KB, **options}
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=list(opts.items()))
    unary = grpc.unary_unary_rpc_method_handler
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("t.Test", {
        "Digest": unary(handlers.digest), "Echo": unary(handlers.echo),
        "Metadata": unary(handlers.metadata), "Slow": unary(handlers.slow),
        "Many": grpc.unary_stream_rpc_method_handler(handlers.many)}),))
    path = str(tmp_path / "grpc.sock")
    server.add_insecure_port(f"unix:{path}")
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield path, f"127.0.0.1:{port}", handlers
    finally:
        handlers.release.set()
        server.stop(None)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Handlers]]:
    with grpc_server(tmp_path_factory.mktemp("grpc")) as addresses:
        yield addresses


@pytest.fixture(params=["unix", "tcp"])
def channel(request: pytest.FixtureRequest,
            server: tuple[str, str, Handlers]) -> Iterator[h2grpc.Channel]:
    ch = h2grpc.Channel(server[0] if request.param == "unix" else server[1])
    yield ch
    ch.close()


@pytest.mark.parametrize("size", [0, 16383, 16384, 16385, 17 * KB, 100 * KB, MB, 8 * MB])
def test_unary_requests_of_every_size_arrive_intact(channel: h2grpc.Channel, size: int) -> None:
    data = random.Random(size).randbytes(size)
    assert channel.unary("/t.Test/Digest", data, timeout=60) == _digest(data)


def test_one_connection_carries_many_calls_of_mixed_sizes(channel: h2grpc.Channel) -> None:
    for size in (100 * KB, 0, 3 * MB, 17 * KB, 70 * KB, 1):
        data = random.Random(size).randbytes(size)
        assert channel.unary("/t.Test/Digest", data, timeout=60) == _digest(data)


@pytest.fixture(scope="module")
def echo_channel(server: tuple[str, str, Handlers]) -> Iterator[h2grpc.Channel]:
    ch = h2grpc.Channel(server[1])
    yield ch
    ch.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(size=st.integers(0, 300 * KB), seed=st.integers(0, 1 << 32))
def test_any_payload_round_trips(echo_channel: h2grpc.Channel, size: int, seed: int) -> None:
    data = random.Random(seed).randbytes(size)
    assert echo_channel.unary("/t.Test/Echo", data, timeout=60) == data


def test_a_streamed_reply_of_many_large_messages_arrives_intact(channel: h2grpc.Channel) -> None:
    """40 x 512 KiB: past the 16 MiB at which the client refills its receive windows."""
    count, size = 40, 512 * KB
    got = channel.stream("/t.Test/Many", count.to_bytes(4, "big") + size.to_bytes(4, "big"), timeout=120)
    for i, message in enumerate(got):
        assert message == _block(i, size), i
    assert i == count - 1


def test_a_stream_left_early_is_reset_and_the_connection_goes_on(channel: h2grpc.Channel) -> None:
    replies = channel.stream("/t.Test/Many", (1000).to_bytes(4, "big") + (64 * KB).to_bytes(4, "big"))
    assert next(replies) == _block(0, 64 * KB)
    replies.close()  # RST_STREAM CANCEL; later frames of that stream are dropped
    assert channel.unary("/t.Test/Digest", b"after", timeout=60) == _digest(b"after")


def test_metadata_and_the_deadline_reach_the_server(channel: h2grpc.Channel) -> None:
    reply = channel.unary("/t.Test/Metadata", b"", timeout=30,
                          metadata=[("authorization", "Bearer s3cret"), ("x-big", "b" * 20 * KB)])
    token, big, remaining = reply.decode().split("|")
    assert token == "Bearer s3cret"
    assert big == str(20 * KB)  # a 20 KiB header block: HEADERS + CONTINUATION
    assert remaining != "None" and 0 < float(remaining) <= 30


def test_without_a_timeout_the_server_sees_no_deadline(channel: h2grpc.Channel) -> None:
    remaining = channel.unary("/t.Test/Metadata", b"").decode().split("|")[2]
    assert remaining == "None" or float(remaining) > 1e9  # grpcio's "no deadline"


def test_the_deadline_is_enforced_and_the_connection_stays_usable(channel: h2grpc.Channel) -> None:
    with pytest.raises(RpcError) as err:
        channel.unary("/t.Test/Slow", b"", timeout=0.3)
    assert err.value.code == h2grpc.DEADLINE_EXCEEDED
    assert channel.unary("/t.Test/Digest", b"x", timeout=60) == _digest(b"x")


@pytest.mark.parametrize("size", [1025, 16385, MB, 8 * MB])
def test_a_message_over_the_servers_limit_is_resource_exhausted(tmp_path: Path, size: int) -> None:
    with grpc_server(tmp_path, **{"grpc.max_receive_message_length": 1024}) as (path, _, _h):
        ch = h2grpc.Channel(path)
        try:
            with pytest.raises(RpcError) as err:
                ch.unary("/t.Test/Digest", bytes(size), timeout=60)
            assert err.value.code == h2grpc.RESOURCE_EXHAUSTED and not err.value.transport, err.value
            assert ch.unary("/t.Test/Digest", b"small", timeout=60) == _digest(b"small")
        finally:
            ch.close()


def test_an_early_answer_to_a_large_request_is_its_error(channel: h2grpc.Channel) -> None:
    """grpcio answers an unknown method at once, without reading the 8 MiB."""
    with pytest.raises(RpcError) as err:
        channel.unary("/t.Test/Missing", bytes(8 * MB), timeout=60)
    assert err.value.code == h2grpc.UNIMPLEMENTED


# ---- a raw HTTP/2 peer ------------------------------------------------------------

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 0, 1, 3, 4, 6, 7, 8, 9
END_STREAM = ACK = 0x1
END_HEADERS, PADDED, PRIORITY = 0x4, 0x8, 0x20
INITIAL_WINDOW_SIZE, MAX_FRAME_SIZE = 0x4, 0x5
OK_HEADERS = [(":status", "200"), ("content-type", "application/grpc")]

Frame = tuple[int, int, int, bytes]


class Peer:
    """The server end of one connection, frame by frame."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()

    def _exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def preface(self) -> None:
        assert self._exact(len(PREFACE)) == PREFACE

    def frame(self) -> Frame:
        head = self._exact(9)
        length = int.from_bytes(head[:3], "big")
        return head[3], head[4], int.from_bytes(head[5:9], "big") & 0x7FFFFFFF, self._exact(length)

    def send(self, ftype: int, flags: int, sid: int, payload: bytes = b"") -> None:
        self.sock.sendall(len(payload).to_bytes(3, "big") + bytes((ftype, flags))
                          + sid.to_bytes(4, "big") + payload)

    def settings(self, values: dict[int, int]) -> None:
        self.send(SETTINGS, 0, 0, b"".join(k.to_bytes(2, "big") + v.to_bytes(4, "big")
                                           for k, v in values.items()))

    def headers(self, sid: int, fields: list[tuple[str, str]], end: bool = False) -> None:
        self.send(HEADERS, END_HEADERS | (END_STREAM if end else 0), sid, self.encoder.encode(fields))

    def reply(self, sid: int, message: bytes) -> None:
        self.headers(sid, OK_HEADERS)
        self.send(DATA, 0, sid, b"\x00" + len(message).to_bytes(4, "big") + message)
        self.headers(sid, [("grpc-status", "0")], end=True)

    def request_headers(self) -> tuple[int, dict[str, str]]:
        """Frames up to the next request's header block (acknowledging SETTINGS)."""
        while True:
            ftype, flags, sid, payload = self.frame()
            if ftype == SETTINGS and not flags & ACK:
                self.send(SETTINGS, ACK, 0)
            elif ftype == HEADERS:
                block = payload
                while not flags & END_HEADERS:
                    ftype, flags, _, payload = self.frame()
                    assert ftype == CONTINUATION
                    block += payload
                return sid, {str(k): str(v) for k, v in self.decoder.decode(block)}

    def until(self, want: Callable[[Frame], bool]) -> Frame:
        """Frames until one ``want`` accepts (acknowledging SETTINGS)."""
        while True:
            frame = self.frame()
            if frame[0] == SETTINGS and not frame[1] & ACK:
                self.send(SETTINGS, ACK, 0)
            if want(frame):
                return frame


Scenario = Callable[[Peer], None]


@contextmanager
def raw_peer(tmp_path: Path, *scenarios: Scenario) -> Iterator[str]:
    """A unix socket whose connections, in order, each run one scenario."""
    path = str(tmp_path / "peer.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(4)
    listener.settimeout(30)
    errors: list[BaseException] = []

    def serve() -> None:
        for scenario in scenarios:
            try:
                conn, _ = listener.accept()
            except OSError as err:
                errors.append(err)
                return
            conn.settimeout(30)
            try:
                scenario(Peer(conn))
            except (EOFError, BrokenPipeError, ConnectionResetError):
                pass  # the client went away: each test checks what it needed first
            except BaseException as err:  # reported in the test's thread
                errors.append(err)
            finally:
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield path
        thread.join(60)
        assert not thread.is_alive(), "the peer did not finish"
    finally:
        listener.close()
        thread.join(60)
    if errors:
        raise errors[0]


def call(path: str, request: bytes = b"req", timeout: float = 60, handshake: float | None = None) -> bytes:
    ch = h2grpc.Channel(path, timeout=handshake)
    try:
        return ch.unary("/t.Test/Digest", request, timeout=timeout)
    finally:
        ch.close()


def rpc_error(path: str, request: bytes = b"req", timeout: float = 60,
              handshake: float | None = None) -> RpcError:
    with pytest.raises(RpcError) as err:
        call(path, request, timeout, handshake)
    assert "\n" not in err.value.details
    return err.value


class WindowedServer:
    """Serves Digest with small windows opened a little at a time, and checks
    each DATA frame against the frame size and the windows it allowed.

    Window accounting follows RFC 9113: a SETTINGS change applies to the
    client from its ACK on (the frames before it were sent under the old
    value), INITIAL_WINDOW_SIZE moves open streams by the difference."""

    def __init__(self, initial: int, conn_piece: int, change_to: int = 0) -> None:
        self.initial = initial  # INITIAL_WINDOW_SIZE announced at once
        self.conn_piece = conn_piece  # connection credit goes back in pieces this big
        self.change_to = change_to  # a later INITIAL_WINDOW_SIZE, mid-request
        self.violations: list[str] = []
        self.frames = 0
        self.pings_acked = 0

    def __call__(self, peer: Peer) -> None:
        peer.preface()
        peer.settings({INITIAL_WINDOW_SIZE: self.initial, MAX_FRAME_SIZE: 16384})
        unacked = [self.initial]
        stream_initial, conn = 65535, 65535
        windows: dict[int, int] = {}
        bodies: dict[int, bytearray] = {}
        while True:
            ftype, flags, sid, payload = peer.frame()
            if ftype == SETTINGS and flags & ACK:
                new = unacked.pop(0)
                for s in windows:
                    windows[s] += new - stream_initial
                stream_initial = new
            elif ftype == SETTINGS:
                peer.send(SETTINGS, ACK, 0)
            elif ftype == PING and flags & ACK:
                self.pings_acked += payload == b"12345678"
            elif ftype == HEADERS:
                windows[sid], bodies[sid] = stream_initial, bytearray()
            elif ftype == DATA:
                conn = self._data(peer, sid, flags, payload, windows, bodies, conn)
                if self.change_to and len(bodies[sid]) > 20 * KB and not flags & END_STREAM:
                    peer.settings({INITIAL_WINDOW_SIZE: self.change_to})
                    unacked.append(self.change_to)
                    self.change_to = 0

    def _data(self, peer: Peer, sid: int, flags: int, payload: bytes, windows: dict[int, int],
              bodies: dict[int, bytearray], conn: int) -> int:
        self.frames += 1
        windows[sid] -= len(payload)
        conn -= len(payload)
        if len(payload) > 16384 or windows[sid] < 0 or conn < 0:
            self.violations.append(f"DATA of {len(payload)}: stream window {windows[sid]}, "
                                   f"connection window {conn}")
        bodies[sid] += payload
        if self.frames == 2:
            peer.send(PING, 0, 0, b"12345678")
        if flags & END_STREAM:
            body = bytes(bodies[sid])
            assert body[0] == 0 and int.from_bytes(body[1:5], "big") == len(body) - 5
            peer.reply(sid, _digest(body[5:]))
            return conn
        peer.send(WINDOW_UPDATE, 0, sid, len(payload).to_bytes(4, "big"))
        windows[sid] += len(payload)
        for start in range(0, len(payload), self.conn_piece):
            piece = min(self.conn_piece, len(payload) - start)
            peer.send(WINDOW_UPDATE, 0, 0, piece.to_bytes(4, "big"))
            conn += piece
        return conn


@pytest.mark.parametrize("initial, conn_piece, change_to", [
    (1000, 65535, 0),  # the stream window binds: 65,535 sent, then -64,535 after SETTINGS
    (1 << 20, 700, 0),  # the connection window binds, refilled 700 bytes at a time
    (0, 4096, 3000),  # nothing until INITIAL_WINDOW_SIZE grows mid-request
    (50_000, 16384, 10),  # ... or shrinks: the window goes negative again
])
def test_sending_stays_within_the_peers_frame_size_and_windows(
        tmp_path: Path, initial: int, conn_piece: int, change_to: int) -> None:
    peer = WindowedServer(initial, conn_piece, change_to)
    with raw_peer(tmp_path, peer) as path:
        ch = h2grpc.Channel(path)
        try:
            for size in (100 * KB, 17 * KB, 0):  # the first before SETTINGS arrive, then after
                data = random.Random(size).randbytes(size)
                assert ch.unary("/t.Test/Digest", data, timeout=60) == _digest(data)
        finally:
            ch.close()
    assert peer.violations == []
    assert peer.pings_acked == 1


def _blocked(peer: Peer) -> int:
    """Serve a window of 0, and wait until the client has acknowledged it:
    from then on its request is stuck. Returns the stream id."""
    peer.preface()
    peer.settings({INITIAL_WINDOW_SIZE: 0})
    sid = 0

    def acked(frame: Frame) -> bool:
        nonlocal sid
        if frame[0] == HEADERS:
            sid = frame[2]
        return frame[0] == SETTINGS and bool(frame[1] & ACK)

    peer.until(acked)
    return sid


@pytest.mark.parametrize("answer, code, words", [
    ("rst-refused", h2grpc.UNAVAILABLE, "REFUSED_STREAM"),
    ("rst-calm", h2grpc.RESOURCE_EXHAUSTED, "ENHANCE_YOUR_CALM"),
    ("trailers-and-rst", h2grpc.UNAUTHENTICATED, "bad token"),
    ("trailers-only", h2grpc.UNAUTHENTICATED, "bad token"),
    ("http-403", h2grpc.PERMISSION_DENIED, "HTTP status 403"),
])
def test_an_early_answer_while_blocked_on_window_is_the_error(
        tmp_path: Path, answer: str, code: int, words: str) -> None:
    seen: list[Frame] = []

    def scenario(peer: Peer) -> None:
        sid = _blocked(peer)
        unauthenticated = [*OK_HEADERS, ("grpc-status", "16"), ("grpc-message", "bad%20token")]
        if answer.startswith("rst"):
            peer.send(RST_STREAM, 0, sid, (7 if answer == "rst-refused" else 11).to_bytes(4, "big"))
        elif answer == "http-403":
            peer.headers(sid, [(":status", "403")], end=True)
        else:
            peer.headers(sid, unauthenticated, end=True)
            if answer == "trailers-and-rst":
                peer.send(RST_STREAM, 0, sid, (0).to_bytes(4, "big"))  # NO_ERROR: stop sending
        seen.append(peer.until(lambda f: f[0] == RST_STREAM or f[0] == HEADERS))
        second = seen[-1] if seen[-1][0] == HEADERS else peer.until(lambda f: f[0] == HEADERS)
        peer.reply(second[2], b"second")  # the connection still serves (an early OK, even)

    with raw_peer(tmp_path, scenario) as path:
        ch = h2grpc.Channel(path)
        try:
            with pytest.raises(RpcError) as err:
                ch.unary("/t.Test/Digest", bytes(MB), timeout=60)
            assert (err.value.code, words in err.value.details) == (code, True), err.value
            assert err.value.transport == (answer == "rst-refused")  # refused: never processed
            assert ch.unary("/t.Test/Digest", b"", timeout=60) == b"second"
        finally:
            ch.close()
    # The client closes its half of the stream (RST_STREAM CANCEL) unless the
    # server reset it; with trailers and a reset, either may come first.
    cancelled = (RST_STREAM, (8).to_bytes(4, "big"))
    if answer.startswith("rst"):
        assert seen[0][0] == HEADERS
    elif answer == "trailers-and-rst":
        assert seen[0][0] == HEADERS or seen[0][::3] == cancelled
    else:
        assert seen[0][::3] == cancelled


def test_goaway_before_the_call_is_unavailable(tmp_path: Path) -> None:
    def scenario(peer: Peer) -> None:
        peer.preface()
        peer.settings({})
        peer.request_headers()
        peer.send(GOAWAY, 0, 0, (0).to_bytes(4, "big") + (0).to_bytes(4, "big") + b"shutting\ndown")
        peer.until(lambda f: False)  # until the client closes

    with raw_peer(tmp_path, scenario) as path:
        err = rpc_error(path)
    assert err.code == h2grpc.UNAVAILABLE and err.transport
    assert "GOAWAY NO_ERROR: shutting down" in err.details


def test_goaway_for_a_bad_frame_is_internal(tmp_path: Path) -> None:
    def scenario(peer: Peer) -> None:
        peer.preface()
        peer.settings({})
        peer.request_headers()
        peer.send(GOAWAY, 0, 0, (0).to_bytes(4, "big") + (6).to_bytes(4, "big") + b"frame too big")

    with raw_peer(tmp_path, scenario) as path:
        err = rpc_error(path)
    assert err.code == h2grpc.INTERNAL
    assert "GOAWAY FRAME_SIZE_ERROR: frame too big" in err.details


def test_a_call_the_goaway_covers_completes_and_the_next_call_reconnects(tmp_path: Path) -> None:
    def closing(peer: Peer) -> None:
        peer.preface()
        peer.settings({})
        sid, _ = peer.request_headers()
        peer.send(GOAWAY, 0, 0, sid.to_bytes(4, "big") + (0).to_bytes(4, "big"))
        peer.until(lambda f: f[0] == DATA and bool(f[1] & END_STREAM))
        peer.reply(sid, b"first")

    def fresh(peer: Peer) -> None:
        peer.preface()
        peer.settings({})
        sid, _ = peer.request_headers()
        assert sid == 1  # a new connection numbers its streams afresh
        peer.until(lambda f: f[0] == DATA and bool(f[1] & END_STREAM))
        peer.reply(sid, b"second")

    with raw_peer(tmp_path, closing, fresh) as path:
        ch = h2grpc.Channel(path)
        try:
            assert ch.unary("/t.Test/Digest", b"a", timeout=60) == b"first"
            assert ch.unary("/t.Test/Digest", b"b", timeout=60) == b"second"
        finally:
            ch.close()


def _close_at_once(peer: Peer) -> None:
    pass


def _close_mid_reply(peer: Peer) -> None:
    peer.preface()
    peer.settings({})
    sid, _ = peer.request_headers()
    peer.headers(sid, OK_HEADERS)
    peer.send(DATA, 0, sid, b"\x00\x00\x00\x10\x00" + b"partial")


def _silent(peer: Peer) -> None:
    peer.until(lambda f: False)


def _bad_settings(peer: Peer) -> None:
    peer.preface()
    peer.send(SETTINGS, 0, 0, b"\x00\x04\x00\x00\x01")
    peer.until(lambda f: False)


def _oversized_frame(peer: Peer) -> None:
    peer.preface()
    peer.settings({})
    sid, _ = peer.request_headers()
    peer.send(DATA, 0, sid, bytes(20000))
    peer.until(lambda f: False)


def _http1(peer: Peer) -> None:
    peer.sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    peer.until(lambda f: False)


def _data_first(peer: Peer) -> None:
    peer.preface()
    peer.send(DATA, 0, 1, b"x")
    peer.until(lambda f: False)


def _bad_header_block(peer: Peer) -> None:
    peer.preface()
    peer.settings({})
    sid, _ = peer.request_headers()
    peer.send(HEADERS, END_HEADERS, sid, b"\xff\xff\xff\xff\xff\xff\xff")
    peer.until(lambda f: False)


@pytest.mark.parametrize("scenario, code, words", [
    (_close_at_once, h2grpc.UNAVAILABLE, "closed the connection"),
    (_close_mid_reply, h2grpc.UNAVAILABLE, "closed the connection"),
    (_silent, h2grpc.UNAVAILABLE, "sent nothing"),
    (_bad_settings, h2grpc.INTERNAL, "SETTINGS of 5 bytes"),
    (_oversized_frame, h2grpc.INTERNAL, "a frame of 20000 bytes"),
    (_http1, h2grpc.INTERNAL, "HTTP/1"),
    (_data_first, h2grpc.INTERNAL, "not SETTINGS"),
    (_bad_header_block, h2grpc.INTERNAL, "bad header block"),
])
def test_a_failing_peer_gives_a_one_line_error(tmp_path: Path, scenario: Scenario, code: int,
                                                words: str) -> None:
    with raw_peer(tmp_path, scenario) as path:
        # The channel (a peer that closed at once) or the call fails; only the
        # silent peer gets a short limit for its SETTINGS (others may be slow).
        err = rpc_error(path, handshake=0.5 if scenario is _silent else None)
    assert (err.code, words in err.details) == (code, True), err
    assert path in err.details and "\n" not in err.details
    assert err.transport  # the connection failed: no status from a server


def test_a_malformed_peer_is_told_why_with_goaway(tmp_path: Path) -> None:
    got: list[Frame] = []

    def scenario(peer: Peer) -> None:
        peer.preface()
        peer.settings({})
        sid, _ = peer.request_headers()
        peer.send(DATA, 0, sid, bytes(20000))
        got.append(peer.until(lambda f: f[0] == GOAWAY))

    with raw_peer(tmp_path, scenario) as path:
        assert rpc_error(path).code == h2grpc.INTERNAL
    assert got[0][3][4:8] == (6).to_bytes(4, "big")  # FRAME_SIZE_ERROR


def test_a_refused_connection_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(RpcError) as err:
        h2grpc.Channel(str(tmp_path / "nobody.sock"))
    assert err.value.code == h2grpc.UNAVAILABLE and "connect" in err.value.details and err.value.transport
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: connecting is refused
    try:
        with pytest.raises(RpcError) as err:
            h2grpc.Channel(f"127.0.0.1:{closed.getsockname()[1]}")
        assert err.value.code == h2grpc.UNAVAILABLE and "refused" in err.value.details
    finally:
        closed.close()


def test_the_deadline_is_sent_enforced_and_the_stream_cancelled(tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    def scenario(peer: Peer) -> None:
        peer.preface()
        peer.settings({})
        _, headers = peer.request_headers()
        seen["timeout"] = headers.get("grpc-timeout")
        seen["auth"] = headers.get("authorization")
        seen["rst"] = peer.until(lambda f: f[0] == RST_STREAM)[3]

    with raw_peer(tmp_path, scenario) as path:
        ch = h2grpc.Channel(path)
        try:
            with pytest.raises(RpcError) as err:
                ch.unary("/t.Test/Digest", b"", timeout=0.25, metadata=[("authorization", "Bearer t")])
        finally:
            ch.close()
    assert err.value.code == h2grpc.DEADLINE_EXCEEDED
    assert seen == {"timeout": "250000u", "auth": "Bearer t", "rst": (8).to_bytes(4, "big")}


def test_replies_in_continuation_padded_and_prioritised_frames_are_read(tmp_path: Path) -> None:
    def scenario(peer: Peer) -> None:
        peer.preface()
        peer.settings({})
        sid, _ = peer.request_headers()
        block = peer.encoder.encode([*OK_HEADERS, ("x-big", "v" * 40000)], huffman=False)
        peer.send(HEADERS, 0, sid, block[:16384])
        peer.send(CONTINUATION, 0, sid, block[16384:32768])
        peer.send(CONTINUATION, END_HEADERS, sid, block[32768:])
        message = b"\x00\x00\x00\x00\x05hello"
        peer.send(DATA, PADDED, sid, bytes((3,)) + message[:6] + b"pad")
        peer.send(DATA, 0, sid, message[6:])
        trailers = peer.encoder.encode([("grpc-status", "0")])
        peer.send(HEADERS, END_HEADERS | END_STREAM | PRIORITY | PADDED, sid,
                  bytes((2,)) + bytes(5) + trailers + b"pp")

    with raw_peer(tmp_path, scenario) as path:
        assert call(path) == b"hello"


def test_messages_before_an_error_status_are_delivered(tmp_path: Path) -> None:
    def scenario(peer: Peer) -> None:
        peer.preface()
        peer.settings({})
        sid, _ = peer.request_headers()
        peer.headers(sid, OK_HEADERS)
        peer.send(DATA, 0, sid, b"\x00\x00\x00\x00\x01a\x00\x00\x00\x00\x01b")
        peer.headers(sid, [("grpc-status", "9"), ("grpc-message", "stopped %E2%9C%93")], end=True)

    with raw_peer(tmp_path, scenario) as path:
        ch = h2grpc.Channel(path)
        got: list[bytes] = []
        try:
            with pytest.raises(RpcError) as err:
                got.extend(ch.stream("/t.Test/Many", b"", timeout=60))
        finally:
            ch.close()
    assert got == [b"a", b"b"]
    assert (err.value.code, err.value.details) == (9, "stopped ✓")


# ---- request metadata and grpc-timeout -----------------------------------------------

@pytest.mark.parametrize("name, value, words", [
    ("Authorization", "x", "lowercase"),
    ("bad name", "x", "lowercase"),
    ("", "x", "lowercase"),
    ("grpc-timeout", "1S", "reserved"),
    ("content-type", "text/plain", "reserved"),
    ("authorization", "Bearer s3cret\n", "trailing newline"),
    ("authorization", "Bearer s3crét", "printable ASCII"),
])
def test_bad_metadata_is_refused_without_echoing_the_value(server: tuple[str, str, Handlers],
                                                           name: str, value: str, words: str) -> None:
    ch = h2grpc.Channel(server[0])
    try:
        with pytest.raises(RpcError) as err:
            ch.unary("/t.Test/Digest", b"", timeout=60, metadata=[(name, value)])
        assert ch.unary("/t.Test/Digest", b"", timeout=60) == _digest(b"")
    finally:
        ch.close()
    assert err.value.code == h2grpc.INVALID_ARGUMENT
    assert words in err.value.details and "s3cr" not in err.value.details


def test_a_passed_deadline_fails_before_sending(server: tuple[str, str, Handlers]) -> None:
    ch = h2grpc.Channel(server[0])
    try:
        for timeout in (0.0, -1.0, float("nan")):
            with pytest.raises(RpcError) as err:
                ch.unary("/t.Test/Digest", b"", timeout=timeout)
            assert err.value.code == h2grpc.DEADLINE_EXCEEDED
    finally:
        ch.close()


UNITS = {"n": 1e-9, "u": 1e-6, "m": 1e-3, "S": 1.0, "M": 60.0, "H": 3600.0}


@given(st.floats(min_value=1e-10, max_value=3.5e11, allow_nan=False))
def test_grpc_timeout_is_eight_digits_and_a_unit_never_shorter(seconds: float) -> None:
    text = h2grpc.grpc_timeout(seconds)
    digits, unit = text[:-1], text[-1]
    assert digits.isdigit() and 1 <= len(digits) <= 8 and unit in UNITS
    value = int(digits) * UNITS[unit]
    assert value >= seconds * (1 - 1e-9)
    assert value <= seconds + UNITS[unit]  # rounded up by less than one unit


def test_grpc_timeout_examples() -> None:
    assert [h2grpc.grpc_timeout(s) for s in (2, 0.25, 0.3, 1e-12, 120, 1e9, float("inf"))] == [
        "2000000u", "250000u", "300000u", "1n", "120000m", "16666667M", "99999999H"]
