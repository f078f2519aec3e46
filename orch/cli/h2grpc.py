"""A small gRPC client over HTTP/2 on a unix socket, for the CLI.

Why not grpcio here: importing it costs ~110 ms (it pulls in asyncio and ssl),
more than a whole container start. The CLI makes one call at a time to a local
agent, which needs only a sliver of HTTP/2: one connection, sequential
streams, no TLS, no push, flow control by large windows. Header blocks are
(de)compressed by ``hpack_lite``. The agent itself still uses grpcio.

Start-up cost matters here (``orch run`` is measured against ``runc run``),
so this module imports only what the interpreter has loaded anyway, plus
``_socket`` (``socket`` would bring ``enum`` and ``selectors``).

Unary and server-streaming calls are supported; errors arrive as
:class:`RpcError` carrying the gRPC status code and message.
"""

from __future__ import annotations

import _socket

from orch.cli import hpack_lite

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = (
    0, 1, 3, 4, 6, 7, 8, 9)
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY = 0x1, 0x1, 0x4, 0x8, 0x20
SETTINGS_ENABLE_PUSH, SETTINGS_INITIAL_WINDOW_SIZE = 0x2, 0x4
BIG_WINDOW = (1 << 31) - 1
WINDOW_REFILL = 1 << 24

# gRPC status codes the CLI cares about by name.
CANCELLED, DEADLINE_EXCEEDED, UNAVAILABLE = 1, 4, 14


class RpcError(Exception):
    def __init__(self, code: int, details: str) -> None:
        super().__init__(f"gRPC status {code}: {details}")
        self.code = code
        self.details = details


class Channel:
    def __init__(self, address: str, timeout: float | None = None) -> None:
        """``address``: a unix socket path, or HOST:PORT."""
        host, _, port = address.rpartition(":")
        unix = address.startswith("/") or not port.isdigit()
        family = _socket.AF_UNIX if unix else _socket.AF_INET
        self._sock = _socket.socket(family, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
        self._sock.settimeout(timeout if timeout is not None else (None if unix else 10.0))
        try:
            self._sock.connect(address if unix else (host, int(port)))
        except OSError as err:
            self._sock.close()
            raise RpcError(UNAVAILABLE, f"connect {address}: {err.strerror or err}")
        if not unix:
            self._sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
        self._buf = bytearray()
        self._decoder = hpack_lite.Decoder()
        self._next_stream = 1
        self._received = 0
        settings = (_u16(SETTINGS_ENABLE_PUSH) + _u32(0)
                    + _u16(SETTINGS_INITIAL_WINDOW_SIZE) + _u32(BIG_WINDOW))
        self._sock.sendall(PREFACE + _frame(SETTINGS, 0, 0, settings)
                           + _frame(WINDOW_UPDATE, 0, 0, _u32(BIG_WINDOW - 65535)))

    def close(self) -> None:
        self._sock.close()

    def unary(self, path: str, request: bytes, timeout: float | None = None) -> bytes:
        self._sock.settimeout(timeout)
        messages = list(self.stream(path, request))
        if len(messages) != 1:
            raise RpcError(13, f"{path}: expected one response message, got {len(messages)}")
        return messages[0]

    def stream(self, path: str, request: bytes) -> Iterator[bytes]:
        sid = self._next_stream
        self._next_stream += 2
        block = hpack_lite.encode([
            (":method", "POST"), (":scheme", "http"), (":path", path),
            (":authority", "localhost"), ("content-type", "application/grpc"),
            ("te", "trailers"),
        ])
        body = b"\x00" + _u32(len(request)) + request
        self._send(_frame(HEADERS, END_HEADERS, sid, block) + _frame(DATA, END_STREAM, sid, body))
        yield from self._responses(sid)

    def _responses(self, sid: int) -> Iterator[bytes]:
        data = bytearray()
        block = bytearray()
        block_ends_stream = False
        while True:
            ftype, flags, stream, payload = self._read_frame()
            if ftype == SETTINGS:
                if not flags & ACK:
                    self._send(_frame(SETTINGS, ACK, 0, b""))
            elif ftype == PING:
                if not flags & ACK:
                    self._send(_frame(PING, ACK, 0, payload))
            elif ftype == GOAWAY:
                # Streams up to last_stream_id still complete (a server that
                # shuts down answers the call that asked it to).
                last, code = _n(payload[:4]), _n(payload[4:8])
                if sid > last & 0x7FFFFFFF:
                    raise RpcError(UNAVAILABLE, f"the agent closed the connection (code {code})")
            elif stream != sid:
                continue
            elif ftype == DATA:
                data += _unpad(flags, payload)
                self._account(len(payload), sid)
                while len(data) >= 5:
                    length = _n(data[1:5])
                    if len(data) < 5 + length:
                        break
                    yield bytes(data[5:5 + length])
                    del data[:5 + length]
                if flags & END_STREAM:
                    raise RpcError(13, "stream ended without a gRPC status")
            elif ftype in (HEADERS, CONTINUATION):
                if ftype == HEADERS:
                    payload = _unpad(flags, payload)
                    if flags & PRIORITY:
                        payload = payload[5:]
                    block_ends_stream = bool(flags & END_STREAM)
                block += payload
                if flags & END_HEADERS:
                    try:
                        headers = dict(self._decoder.decode(bytes(block)))
                    except hpack_lite.HPACKError as err:
                        raise RpcError(13, f"bad response headers: {err}")
                    block.clear()
                    if block_ends_stream or "grpc-status" in headers:
                        _check_status(headers)
                        return
            elif ftype == RST_STREAM:
                code = _n(payload[:4])
                raise RpcError(CANCELLED if code == 8 else 13, f"stream reset (code {code})")

    def _account(self, n: int, sid: int) -> None:
        self._received += n
        if self._received >= WINDOW_REFILL:
            inc = _u32(self._received)
            self._send(_frame(WINDOW_UPDATE, 0, 0, inc) + _frame(WINDOW_UPDATE, 0, sid, inc))
            self._received = 0

    def _send(self, data: bytes) -> None:
        try:
            self._sock.sendall(data)
        except OSError as err:
            raise RpcError(UNAVAILABLE, f"sending to the agent failed: {err}")

    def _read_exact(self, n: int) -> bytes:
        while len(self._buf) < n:
            try:
                chunk = self._sock.recv(max(65536, n - len(self._buf)))
            except TimeoutError:
                raise RpcError(DEADLINE_EXCEEDED, "the agent did not answer in time")
            except OSError as err:
                raise RpcError(UNAVAILABLE, f"reading from the agent failed: {err}")
            if not chunk:
                raise RpcError(UNAVAILABLE, "the agent closed the connection")
            self._buf += chunk
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def _read_frame(self) -> tuple[int, int, int, bytes]:
        head = self._read_exact(9)
        length = int.from_bytes(head[:3], "big")
        ftype, flags = head[3], head[4]
        stream = _n(head[5:9]) & 0x7FFFFFFF
        return ftype, flags, stream, self._read_exact(length)


def _frame(ftype: int, flags: int, stream: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "big") + bytes((ftype, flags)) + _u32(stream) + payload


def _u16(n: int) -> bytes:
    return n.to_bytes(2, "big")


def _u32(n: int) -> bytes:
    return n.to_bytes(4, "big")


def _n(raw: bytes | bytearray) -> int:
    """A big-endian unsigned field."""
    return int.from_bytes(raw, "big")


def _unpad(flags: int, payload: bytes) -> bytes:
    if flags & PADDED:
        pad = payload[0]
        return payload[1:len(payload) - pad]
    return payload


def _check_status(headers: dict[str, str]) -> None:
    status = headers.get("grpc-status", "")
    if status == "":
        raise RpcError(13, f"response without grpc-status (HTTP {headers.get(':status', '')})")
    if status != "0":
        from urllib.parse import unquote

        raise RpcError(int(status), unquote(headers.get("grpc-message", "")))
