"""A small gRPC client over HTTP/2 (RFC 9113), on a unix socket or TCP, for the CLI.

Why not grpcio here: importing it costs ~110 ms (it pulls in asyncio and ssl),
more than a whole container start. The CLI makes one call at a time, which
needs only a sliver of HTTP/2: one connection, one stream at a time, no TLS,
no push. Header blocks are (de)compressed by ``hpack_lite``. The agent and
the control plane themselves use grpcio.

Start-up cost matters here (``orch run`` is measured against ``runc run``),
so this module imports only what the interpreter has loaded anyway (``time``
is built in and loaded at start), plus ``_socket`` (``socket`` would bring
``enum`` and ``selectors``).

Invariants:

- Sending honours the peer: no frame exceeds its SETTINGS_MAX_FRAME_SIZE
  (16,384 until its SETTINGS arrive; they apply from then on, as RFC 9113
  6.5.3 says, which is why a request never goes out as one big frame), and
  DATA never exceeds the connection window or the stream's window.
  INITIAL_WINDOW_SIZE changes move the open stream's window (6.9.2), which
  may go negative. A header block larger than a frame continues in
  CONTINUATION frames. Header blocks never use the peer's dynamic table, so
  its HEADER_TABLE_SIZE needs nothing from the encoder.
- While waiting for window, every frame is read and acted on: SETTINGS
  (acknowledged), PING, WINDOW_UPDATE, GOAWAY, RST_STREAM and the response
  itself, so a server that answers early (an error before it has read the
  whole request) gives its error, not a hang. Writes never wait alone
  either: while the socket is full, arriving frames are read and acted on
  (the peer may itself be stuck writing to us), and frames leave in order
  from one queue, so a control frame never lands inside a DATA frame.
- Receiving grants large windows (2^31 - 1), refilled every 16 MiB. Every
  header block is decoded, whichever stream it is on (HPACK state spans the
  connection), and every DATA frame counts against the connection window.
- A call may carry metadata (extra headers) and a deadline, sent as
  ``grpc-timeout`` and enforced here. A call abandoned before its end (an
  error, the deadline, a consumer that stops reading) is reset with
  RST_STREAM CANCEL, so the connection stays usable.
- The first frame from the peer must be SETTINGS, within the channel's
  ``timeout`` (10 s by default): a peer that says nothing, or speaks
  HTTP/1, fails instead of leaving the CLI waiting.

Every failure is one :class:`RpcError` carrying a gRPC status code and a
one-line message naming the server: refused or reset connections and graceful
GOAWAYs are UNAVAILABLE (another endpoint may answer), malformed frames and
protocol errors are INTERNAL, an expired deadline is DEADLINE_EXCEEDED.
``RpcError.transport`` tells a broken connection, or a call refused
unprocessed, from a status the server sent. A connection that failed, or that
the server is closing (GOAWAY), is replaced by a new one at the next call.
"""

from __future__ import annotations

import _socket
import time

from orch.cli import hpack_lite

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Generator, Sequence

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
(DATA, HEADERS, PRIORITY_FRAME, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE,
 CONTINUATION) = range(10)
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY = 0x1, 0x1, 0x4, 0x8, 0x20
(SETTINGS_HEADER_TABLE_SIZE, SETTINGS_ENABLE_PUSH, SETTINGS_MAX_CONCURRENT_STREAMS,
 SETTINGS_INITIAL_WINDOW_SIZE, SETTINGS_MAX_FRAME_SIZE, SETTINGS_MAX_HEADER_LIST_SIZE) = range(1, 7)

DEFAULT_WINDOW = 65535
DEFAULT_MAX_FRAME = 16384  # also the most this client accepts: it never announces more
MAX_WINDOW = (1 << 31) - 1
MAX_FRAME_LIMIT = (1 << 24) - 1
MAX_STREAM_ID = (1 << 31) - 1
BIG_WINDOW = MAX_WINDOW
WINDOW_REFILL = 1 << 24
MAX_HEADER_BLOCK = 1 << 20  # a peer's header block beyond this is refused, not buffered
CONNECT_TIMEOUT = 10.0

# HTTP/2 error codes (RFC 9113 7), by value.
H2_ERRORS = ("NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR", "SETTINGS_TIMEOUT",
             "STREAM_CLOSED", "FRAME_SIZE_ERROR", "REFUSED_STREAM", "CANCEL", "COMPRESSION_ERROR",
             "CONNECT_ERROR", "ENHANCE_YOUR_CALM", "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED")
NO_ERROR, PROTOCOL_ERROR, FLOW_CONTROL_ERROR, FRAME_SIZE_ERROR = 0x0, 0x1, 0x3, 0x6
REFUSED_STREAM, CANCEL, COMPRESSION_ERROR, ENHANCE_YOUR_CALM, INADEQUATE_SECURITY = 0x7, 0x8, 0x9, 0xB, 0xC

# gRPC status codes.
CANCELLED, UNKNOWN, INVALID_ARGUMENT, DEADLINE_EXCEEDED = 1, 2, 3, 4
PERMISSION_DENIED, RESOURCE_EXHAUSTED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, UNAUTHENTICATED = (
    7, 8, 12, 13, 14, 16)

# gRPC's mapping of RST_STREAM codes and of HTTP statuses (doc/PROTOCOL-HTTP2.md,
# doc/http-grpc-status-mapping.md); anything else is INTERNAL resp. UNKNOWN.
_RESET_STATUS = {REFUSED_STREAM: UNAVAILABLE, CANCEL: CANCELLED, ENHANCE_YOUR_CALM: RESOURCE_EXHAUSTED,
                 INADEQUATE_SECURITY: PERMISSION_DENIED}
_HTTP_STATUS = {"400": INTERNAL, "401": UNAUTHENTICATED, "403": PERMISSION_DENIED, "404": UNIMPLEMENTED,
                "429": UNAVAILABLE, "502": UNAVAILABLE, "503": UNAVAILABLE, "504": UNAVAILABLE}
# GOAWAY codes that mean the request itself was at fault: another endpoint would say the same.
_GOAWAY_INTERNAL = (PROTOCOL_ERROR, FLOW_CONTROL_ERROR, FRAME_SIZE_ERROR, COMPRESSION_ERROR)

_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_.")
# Set by this client, or connection-specific (RFC 9113 8.2.2): not for callers.
_RESERVED_NAMES = ("content-type", "te", "connection", "keep-alive", "proxy-connection",
                   "transfer-encoding", "upgrade", "host")


class RpcError(Exception):
    """A failed call. ``transport``: the connection failed or broke, or the
    server refused the call unprocessed, rather than answering with a status;
    such a call may be tried again on another endpoint."""

    def __init__(self, code: int, details: str, transport: bool = False) -> None:
        super().__init__(f"gRPC status {code}: {details}")
        self.code = code
        self.details = details
        self.transport = transport


class _Call:
    """One stream: what it may still send, and what has arrived on it."""

    def __init__(self, sid: int, path: str, window: int, timeout: float | None) -> None:
        self.sid = sid
        self.path = path
        self.window = window  # what the peer lets this stream send; may go negative (6.9.2)
        self.timeout = timeout
        # Beyond a year is no deadline (and would overflow the socket's timeout).
        self.deadline = None if timeout is None or timeout > 3e7 else time.monotonic() + timeout
        self.unacked = 0  # DATA bytes received and not yet returned by a WINDOW_UPDATE
        self.data = bytearray()  # the part of a message that has arrived
        self.messages: list[bytes] = []
        self.headers_seen = False
        self.local_ended = False  # END_STREAM sent
        self.remote_ended = False  # END_STREAM or RST_STREAM received
        self.reset = False  # RST_STREAM sent or received: nothing more to say
        self.done = False  # the outcome is known: error, or OK once the messages are read
        self.error: RpcError | None = None

    def finish(self, error: RpcError | None) -> None:
        if not self.done:
            self.done = True
            self.error = error


class Channel:
    def __init__(self, address: str, timeout: float | None = None) -> None:
        """``address``: a unix socket path, or HOST:PORT. ``timeout`` bounds the
        connect and the wait for the server's first frame (its SETTINGS)."""
        self.address = address
        self._timeout = CONNECT_TIMEOUT if timeout is None else timeout
        self._sock: _socket.socket | None = None
        self._connect()

    # ---- the connection ------------------------------------------------------

    def _connect(self) -> None:
        host, _, port = self.address.rpartition(":")
        unix = self.address.startswith("/") or not port.isdigit()
        family = _socket.AF_UNIX if unix else _socket.AF_INET
        sock = _socket.socket(family, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
        sock.settimeout(self._timeout)
        try:
            sock.connect(self.address if unix else (host, int(port)))
        except OSError as err:
            sock.close()
            raise _unavailable(f"connect {self.address}: {_reason(err)}")
        except OverflowError as err:  # a port beyond 65535
            sock.close()
            raise _unavailable(f"connect {self.address}: {err}")
        if not unix:
            sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
        self._sock = sock
        self._sock_timeout: float | None = self._timeout
        self._buf = bytearray()
        self._decoder = hpack_lite.Decoder()
        self._next_stream = 1
        self._active: _Call | None = None
        # The peer's settings, at their defaults until its SETTINGS frame.
        self._peer_ready = False
        self._handshake_by: float | None = None
        self._max_frame = DEFAULT_MAX_FRAME
        self._initial_window = DEFAULT_WINDOW
        self._max_streams = MAX_STREAM_ID
        self._conn_window = DEFAULT_WINDOW
        self._conn_unacked = 0
        self._block = bytearray()  # a header block arriving in HEADERS + CONTINUATION
        self._block_sid = 0
        self._block_ends = False
        self._continuing = False
        self._goaway: tuple[int, int, str] | None = None  # last stream id, code, debug text
        self._write_error: RpcError | None = None
        self._broken: RpcError | None = None
        self._out = bytearray()  # whole frames not yet written; a write may stop midway
        self._flushing = False
        settings = (_u16(SETTINGS_ENABLE_PUSH) + _u32(0)
                    + _u16(SETTINGS_INITIAL_WINDOW_SIZE) + _u32(BIG_WINDOW))
        self._send(PREFACE + _frame(SETTINGS, 0, 0, settings)
                   + _frame(WINDOW_UPDATE, 0, 0, _u32(BIG_WINDOW - DEFAULT_WINDOW)), None)
        if self._write_error is not None:
            raise self._break(self._write_error)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _writable(self) -> bool:
        return self._sock is not None and self._broken is None and self._write_error is None

    def _usable(self) -> bool:
        """Good for a new call: open, and not being closed by the server."""
        return self._writable() and self._goaway is None and self._next_stream <= MAX_STREAM_ID

    def _break(self, error: RpcError) -> RpcError:
        """The connection cannot go on: close it (the next call opens another)."""
        self._broken = error
        self.close()
        return error

    def _fail(self, h2_code: int, message: str) -> RpcError:
        """A connection error (RFC 9113 5.4.1): tell the peer, close, report."""
        if self._sock is not None and self._write_error is None and not self._out:
            try:
                self._sock.settimeout(1.0)
                self._sock.sendall(_frame(GOAWAY, 0, 0, _u32(0) + _u32(h2_code) + message.encode()))
            except OSError:
                pass
        return self._break(RpcError(INTERNAL, f"bad HTTP/2 from {self.address}: {message}", True))

    # ---- calls -----------------------------------------------------------------

    def unary(self, path: str, request: bytes, timeout: float | None = None,
              metadata: Sequence[tuple[str, str]] | None = None) -> bytes:
        messages = list(self.stream(path, request, timeout, metadata))
        if len(messages) != 1:
            raise RpcError(INTERNAL, f"{path}: expected one response message, got {len(messages)}")
        return messages[0]

    def stream(self, path: str, request: bytes, timeout: float | None = None,
               metadata: Sequence[tuple[str, str]] | None = None) -> Generator[bytes, None, None]:
        """A server-streaming call: the request is sent before this returns;
        the replies come from the iterator. ``timeout`` (seconds) covers the
        whole call, replies included, and goes to the server as grpc-timeout.
        ``metadata``: extra request headers, e.g. ``("authorization", "Bearer T")``:
        lowercase names, printable ASCII values."""
        headers = _request_headers(path, timeout, metadata or ())
        if len(request) > 0xFFFFFFFF:
            raise RpcError(RESOURCE_EXHAUSTED, f"{path}: a request of {len(request)} bytes is too large")
        if timeout is not None and not timeout > 0:  # NaN too
            raise RpcError(DEADLINE_EXCEEDED, f"{path}: the deadline had passed before the call")
        call = self._open(path, timeout)
        try:
            self._send_request(call, hpack_lite.encode(headers), b"\x00" + _u32(len(request)) + request)
        except BaseException:
            self._cancel(call)
            raise
        return self._responses(call)

    def _open(self, path: str, timeout: float | None) -> _Call:
        if self._active is not None:  # a call its caller left unfinished: it must not read on
            self._active.finish(RpcError(CANCELLED, f"{self._active.path}: superseded by {path}"))
            self._cancel(self._active)
        if not self._usable():
            self.close()
            self._connect()
        if self._max_streams == 0:
            raise _unavailable(f"{self.address} takes no calls now (MAX_CONCURRENT_STREAMS 0)")
        call = _Call(self._next_stream, path, self._initial_window, timeout)
        self._next_stream += 2
        self._active = call
        return call

    def _cancel(self, call: _Call) -> None:
        """Close the stream from this side, if it is still open (best effort)."""
        if self._active is call:
            self._active = None
        if call.reset or (call.local_ended and call.remote_ended) or not self._writable():
            return
        call.reset = True
        try:
            self._send(_frame(RST_STREAM, 0, call.sid, _u32(CANCEL)), None)
        except RpcError:
            pass  # the connection is broken: the next call opens another

    def _send_request(self, call: _Call, block: bytes, body: bytes) -> None:
        """HEADERS (+ CONTINUATION), then DATA as the windows allow; what fits
        at once goes out in one write."""
        out: list[bytes | memoryview] = [*self._header_frames(call.sid, block)]
        view = memoryview(body)
        pos = 0
        while True:
            pos = self._data_frames(call, view, pos, out)
            if out:
                self._send(out, call)
                out.clear()
            if pos == len(body):
                call.local_ended = True
                return
            if call.done or call.remote_ended or self._write_error is not None:
                return  # the server answered early: what it said is the outcome
            if self._conn_window <= 0 or call.window <= 0:  # (writing may have read updates)
                self._pump(call)  # wait for window, reading whatever comes

    def _header_frames(self, sid: int, block: bytes) -> list[bytes]:
        size = self._max_frame
        if len(block) <= size:
            return [_frame(HEADERS, END_HEADERS, sid, block)]
        frames = [_frame(HEADERS, 0, sid, block[:size])]
        for start in range(size, len(block), size):
            last = start + size >= len(block)
            frames.append(_frame(CONTINUATION, END_HEADERS if last else 0, sid, block[start:start + size]))
        return frames

    def _data_frames(self, call: _Call, view: memoryview, pos: int, out: list[bytes | memoryview]) -> int:
        """Append DATA frames for what both windows allow; returns the new position."""
        total = len(view)
        while pos < total:
            n = min(self._conn_window, call.window, self._max_frame, total - pos)
            if n <= 0:
                break
            end = pos + n
            out.append(_head(n, DATA, END_STREAM if end == total else 0, call.sid))
            out.append(view[pos:end])
            self._conn_window -= n
            call.window -= n
            pos = end
        return pos

    def _responses(self, call: _Call) -> Generator[bytes, None, None]:
        try:
            while True:
                if call.messages:
                    messages, call.messages = call.messages, []
                    yield from messages
                elif call.done:
                    if call.error is not None:
                        raise call.error
                    return
                else:
                    self._pump(call)
        finally:
            self._cancel(call)

    # ---- reading frames ------------------------------------------------------

    def _pump(self, call: _Call | None) -> None:
        """Read one frame and act on it."""
        ftype, flags, sid, payload = self._read_frame(call)
        if self._continuing and (ftype != CONTINUATION or sid != self._block_sid):
            raise self._fail(PROTOCOL_ERROR, f"frame type {ftype} inside a header block")
        if not self._peer_ready:
            if ftype != SETTINGS or flags & ACK:
                raise self._fail(PROTOCOL_ERROR, f"the first frame is type {ftype}, not SETTINGS "
                                                 "(not an HTTP/2 server?)")
            self._peer_ready = True
        if ftype == DATA:
            self._on_data(flags, sid, payload)
        elif ftype in (HEADERS, CONTINUATION):
            self._on_header_frame(ftype, flags, sid, payload)
        elif ftype == RST_STREAM:
            self._on_rst_stream(sid, payload)
        elif ftype == SETTINGS:
            self._on_settings(flags, sid, payload)
        elif ftype == PING:
            self._on_ping(flags, sid, payload)
        elif ftype == GOAWAY:
            self._on_goaway(sid, payload)
        elif ftype == WINDOW_UPDATE:
            self._on_window_update(sid, payload)
        elif ftype == PUSH_PROMISE:
            raise self._fail(PROTOCOL_ERROR, "PUSH_PROMISE, though push is disabled")
        # PRIORITY and unknown types are ignored (RFC 9113 5.5).

    def _call_for(self, sid: int) -> _Call | None:
        call = self._active
        return call if call is not None and call.sid == sid and not call.reset else None

    def _on_data(self, flags: int, sid: int, payload: bytes) -> None:
        if sid == 0:
            raise self._fail(PROTOCOL_ERROR, "DATA on stream 0")
        # Every DATA frame counts against the connection window, whoever it was for.
        self._conn_unacked += len(payload)
        if self._conn_unacked >= WINDOW_REFILL:
            self._send(_frame(WINDOW_UPDATE, 0, 0, _u32(self._conn_unacked)), None)
            self._conn_unacked = 0
        call = self._call_for(sid)
        if call is None or call.remote_ended:
            return
        data = self._unpad(flags, payload)
        call.unacked += len(payload)
        if call.unacked >= WINDOW_REFILL and not flags & END_STREAM:
            self._send(_frame(WINDOW_UPDATE, 0, sid, _u32(call.unacked)), call)
            call.unacked = 0
        if flags & END_STREAM:
            call.remote_ended = True
        if call.done:
            return
        call.data += data
        self._split_messages(call)
        if call.remote_ended:
            call.finish(RpcError(INTERNAL, f"{call.path}: the stream from {self.address} ended "
                                           "without a gRPC status"))

    def _split_messages(self, call: _Call) -> None:
        data = call.data
        while len(data) >= 5:
            if data[0] != 0:
                call.finish(RpcError(INTERNAL, f"{call.path}: a compressed reply (flag {data[0]}), "
                                               "but no compression was negotiated"))
                return
            end = 5 + _n(data[1:5])
            if len(data) < end:
                return
            call.messages.append(bytes(data[5:end]))
            del data[:end]

    def _on_header_frame(self, ftype: int, flags: int, sid: int, payload: bytes) -> None:
        if ftype == HEADERS:
            if sid == 0:
                raise self._fail(PROTOCOL_ERROR, "HEADERS on stream 0")
            payload = self._unpad(flags, payload)
            if flags & PRIORITY:
                if len(payload) < 5:
                    raise self._fail(FRAME_SIZE_ERROR, "HEADERS too short for its priority fields")
                payload = payload[5:]
            self._block = bytearray(payload)
            self._block_sid = sid
            self._block_ends = bool(flags & END_STREAM)
        elif not self._continuing:
            raise self._fail(PROTOCOL_ERROR, "CONTINUATION without HEADERS")
        else:
            self._block += payload
        if len(self._block) > MAX_HEADER_BLOCK:
            raise self._fail(PROTOCOL_ERROR, f"a header block over {MAX_HEADER_BLOCK} bytes")
        self._continuing = not flags & END_HEADERS
        if self._continuing:
            return
        try:  # decoded whatever its stream: the HPACK table spans the connection
            headers = dict(self._decoder.decode(bytes(self._block)))
        except hpack_lite.HPACKError as err:
            raise self._fail(COMPRESSION_ERROR, f"bad header block: {err}")
        self._block.clear()
        call = self._call_for(sid)
        if call is not None and not call.remote_ended:
            self._on_response_headers(call, headers, self._block_ends)

    def _on_response_headers(self, call: _Call, fields: dict[str, str], ends: bool) -> None:
        first = not call.headers_seen
        call.headers_seen = True
        call.remote_ended = ends
        status = fields.get(":status", "")
        if "grpc-status" in fields:  # trailers, or a trailers-only answer
            call.finish(_status_error(fields))
        elif first and status != "200":
            call.finish(RpcError(_HTTP_STATUS.get(status, UNKNOWN),
                                 f"{call.path}: HTTP status {status or 'missing'} from {self.address}"))
        elif first and not fields.get("content-type", "").startswith("application/grpc"):
            call.finish(RpcError(UNKNOWN, f"{call.path}: {self.address} answered with content-type "
                                          f"{fields.get('content-type', '(none)')!r}, not gRPC"))
        elif ends:
            call.finish(RpcError(INTERNAL, f"{call.path}: the stream from {self.address} ended "
                                           "without a gRPC status"))

    def _on_rst_stream(self, sid: int, payload: bytes) -> None:
        if sid == 0:
            raise self._fail(PROTOCOL_ERROR, "RST_STREAM on stream 0")
        if len(payload) != 4:
            raise self._fail(FRAME_SIZE_ERROR, f"RST_STREAM of {len(payload)} bytes")
        call = self._call_for(sid)
        if call is None:
            return
        call.reset = call.remote_ended = True
        code = _n(payload)
        call.finish(RpcError(_RESET_STATUS.get(code, INTERNAL),
                             f"{call.path}: {self.address} reset the stream ({_h2_error(code)})",
                             transport=code == REFUSED_STREAM))  # refused: not processed

    def _on_settings(self, flags: int, sid: int, payload: bytes) -> None:
        if sid != 0:
            raise self._fail(PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & ACK:
            if payload:
                raise self._fail(FRAME_SIZE_ERROR, "SETTINGS ACK with a payload")
            return
        if len(payload) % 6:
            raise self._fail(FRAME_SIZE_ERROR, f"SETTINGS of {len(payload)} bytes")
        for i in range(0, len(payload), 6):
            self._apply_setting(_n(payload[i:i + 2]), _n(payload[i + 2:i + 6]))
        self._send(_frame(SETTINGS, ACK, 0, b""), None)

    def _apply_setting(self, ident: int, value: int) -> None:
        if ident == SETTINGS_INITIAL_WINDOW_SIZE:
            if value > MAX_WINDOW:
                raise self._fail(FLOW_CONTROL_ERROR, f"INITIAL_WINDOW_SIZE {value}")
            if self._active is not None:  # RFC 9113 6.9.2: open streams move by the difference
                self._active.window += value - self._initial_window
            self._initial_window = value
        elif ident == SETTINGS_MAX_FRAME_SIZE:
            if not DEFAULT_MAX_FRAME <= value <= MAX_FRAME_LIMIT:
                raise self._fail(PROTOCOL_ERROR, f"MAX_FRAME_SIZE {value}")
            self._max_frame = value
        elif ident == SETTINGS_MAX_CONCURRENT_STREAMS:
            self._max_streams = value
        elif ident == SETTINGS_ENABLE_PUSH and value > 1:
            raise self._fail(PROTOCOL_ERROR, f"ENABLE_PUSH {value}")
        # HEADER_TABLE_SIZE: requests never index, so any table size suits them.
        # MAX_HEADER_LIST_SIZE is advisory: a server that means it answers with an error.

    def _on_ping(self, flags: int, sid: int, payload: bytes) -> None:
        if sid != 0:
            raise self._fail(PROTOCOL_ERROR, "PING on a stream")
        if len(payload) != 8:
            raise self._fail(FRAME_SIZE_ERROR, f"PING of {len(payload)} bytes")
        if not flags & ACK:
            self._send(_frame(PING, ACK, 0, payload), None)

    def _on_goaway(self, sid: int, payload: bytes) -> None:
        if sid != 0:
            raise self._fail(PROTOCOL_ERROR, "GOAWAY on a stream")
        if len(payload) < 8:
            raise self._fail(FRAME_SIZE_ERROR, f"GOAWAY of {len(payload)} bytes")
        debug = " ".join(payload[8:208].decode("utf-8", "replace").split())  # one line
        self._goaway = (_n(payload[:4]) & MAX_STREAM_ID, _n(payload[4:8]), debug)
        call = self._active
        # Streams up to the last id still complete (a server that shuts down
        # answers the calls it took); later ones were never processed.
        if call is not None and call.sid > self._goaway[0] and not call.remote_ended:
            call.reset = call.remote_ended = True
            call.finish(self._goaway_error())

    def _goaway_error(self) -> RpcError:
        assert self._goaway is not None
        _, code, debug = self._goaway
        status = (INTERNAL if code in _GOAWAY_INTERNAL
                  else RESOURCE_EXHAUSTED if code == ENHANCE_YOUR_CALM else UNAVAILABLE)
        return RpcError(status, f"{self.address} closed the connection (GOAWAY {_h2_error(code)}"
                                f"{': ' + debug if debug else ''})", transport=True)

    def _on_window_update(self, sid: int, payload: bytes) -> None:
        if len(payload) != 4:
            raise self._fail(FRAME_SIZE_ERROR, f"WINDOW_UPDATE of {len(payload)} bytes")
        increment = _n(payload) & MAX_WINDOW
        if increment == 0:
            raise self._fail(PROTOCOL_ERROR, f"WINDOW_UPDATE of 0 on stream {sid}")
        if sid == 0:
            self._conn_window += increment
            if self._conn_window > MAX_WINDOW:
                raise self._fail(FLOW_CONTROL_ERROR, "the connection window passed 2^31-1")
            return
        call = self._call_for(sid)
        if call is not None:
            call.window += increment
            if call.window > MAX_WINDOW:
                raise self._fail(FLOW_CONTROL_ERROR, f"stream {sid}'s window passed 2^31-1")

    def _unpad(self, flags: int, payload: bytes) -> bytes:
        if not flags & PADDED:
            return payload
        if not payload or payload[0] >= len(payload):
            raise self._fail(PROTOCOL_ERROR, "padding longer than the frame")
        return payload[1:len(payload) - payload[0]]

    # ---- the socket --------------------------------------------------------------

    def _read_frame(self, call: _Call | None) -> tuple[int, int, int, bytes]:
        """The next whole frame. Only whole frames leave the buffer, so a
        deadline that expires midway leaves the connection usable."""
        buf = self._buf
        while len(buf) < 9:
            self._fill(call)
        if not self._peer_ready and buf.startswith(b"HTTP/"):
            raise self._fail(PROTOCOL_ERROR, "it answers in HTTP/1, not HTTP/2 (not a gRPC server?)")
        length = _n(buf[:3])
        if length > DEFAULT_MAX_FRAME:
            raise self._fail(FRAME_SIZE_ERROR, f"a frame of {length} bytes (type {buf[3]}); "
                                               f"the limit is {DEFAULT_MAX_FRAME}")
        while len(buf) < 9 + length:
            self._fill(call)
        ftype, flags, stream = buf[3], buf[4], _n(buf[5:9]) & MAX_STREAM_ID
        payload = bytes(buf[9:9 + length])
        del buf[:9 + length]
        return ftype, flags, stream, payload

    def _fill(self, call: _Call | None) -> None:
        if self._sock is None:
            raise self._broken or _unavailable(f"the connection to {self.address} is closed")
        wait, handshake = self._read_wait(call)
        try:
            self._settimeout(wait)
            chunk = self._sock.recv(65536)
        except TimeoutError:
            if handshake:
                raise self._break(_unavailable(f"{self.address} sent nothing in "
                                                        f"{self._timeout:g} s (not an HTTP/2 server?)"))
            raise self._deadline_error(call)
        except OSError as err:
            raise self._break(self._read_failure(err))
        if not chunk:
            if self._goaway is not None:
                raise self._break(self._goaway_error())
            raise self._break(_unavailable(f"{self.address} closed the connection"))
        self._buf += chunk

    def _read_wait(self, call: _Call | None) -> tuple[float | None, bool]:
        """How long the next read may wait, and whether the handshake limit
        (rather than the call's deadline) sets it."""
        limit = call.deadline if call is not None else None
        if limit is None and self._peer_ready:
            return None, False
        now = time.monotonic()
        handshake = False
        if not self._peer_ready:
            if self._handshake_by is None:
                self._handshake_by = now + self._timeout
            if limit is None or self._handshake_by <= limit:
                limit, handshake = self._handshake_by, True
        if limit is None:
            return None, False
        if limit <= now:
            if handshake:
                return 1e-6, True  # one last look: the frame may be waiting already
            raise self._deadline_error(call)
        return limit - now, handshake

    def _deadline_error(self, call: _Call | None) -> RpcError:
        if call is None or call.timeout is None:
            return RpcError(DEADLINE_EXCEEDED, f"{self.address} did not answer in time")
        return RpcError(DEADLINE_EXCEEDED, f"{call.path}: no answer from {self.address} "
                                           f"within the {call.timeout:g} s deadline")

    def _settimeout(self, seconds: float | None) -> None:
        assert self._sock is not None
        if seconds != self._sock_timeout:
            self._sock.settimeout(seconds)
            self._sock_timeout = seconds

    def _send(self, frames: bytes | list[bytes | memoryview], call: _Call | None) -> None:
        """Queue whole frames and write them out. A write that fails is
        remembered, not raised: the peer may have said why before it closed,
        and reading comes next."""
        if self._sock is None or self._write_error is not None:
            return
        if call is not None and call.deadline is not None and call.deadline <= time.monotonic():
            raise self._deadline_error(call)
        if isinstance(frames, bytes):
            self._out += frames
        else:
            for piece in frames:
                self._out += piece
        self._flush(call)

    def _flush(self, call: _Call | None) -> None:
        """Write the queue without ever blocking on the write alone: while the
        socket is full, frames that arrive are read and acted on (the peer may
        itself be stuck writing to us). Frames sent meanwhile (ACKs, window
        updates) join the queue behind the ones in flight."""
        if self._flushing:
            return  # the outer flush writes them
        self._flushing = True
        try:
            while self._out and self._sock is not None and self._write_error is None:
                self._settimeout(None)  # blocking mode: MSG_DONTWAIT then returns at once
                try:
                    sent = self._sock.send(self._out, _socket.MSG_DONTWAIT)
                except BlockingIOError:
                    self._wait_writable(call)
                    continue
                except OSError as err:
                    self._lose_writes(self._write_failure(err))
                    return
                del self._out[:sent]
        finally:
            self._flushing = False

    def _wait_writable(self, call: _Call | None) -> None:
        import select  # only when the socket is full: not on the quick path

        assert self._sock is not None
        wait = self._timeout if call is None else None
        if call is not None and call.deadline is not None:
            wait = max(0.0, call.deadline - time.monotonic())
        poller = select.poll()
        poller.register(self._sock.fileno(), select.POLLIN | select.POLLOUT)
        events = poller.poll(None if wait is None else wait * 1000 + 1)
        if not events:  # part of a frame may be out: the connection is lost
            if call is None:
                raise self._break(_unavailable(f"{self.address} stopped reading "
                                                        f"(a write waited {self._timeout:g} s)"))
            raise self._break(self._deadline_error(call))
        if events[0][1] & ~select.POLLOUT:
            self._read_available(call)

    def _read_available(self, call: _Call | None) -> None:
        """Read what has arrived (without waiting) and act on the whole frames."""
        assert self._sock is not None
        try:
            chunk = self._sock.recv(65536, _socket.MSG_DONTWAIT)
        except BlockingIOError:
            return
        except OSError as err:
            self._lose_writes(self._read_failure(err))
            return
        if not chunk:  # what it sent before is still to be read; _fill then reports the close
            self._lose_writes(_unavailable(f"{self.address} closed the connection"))
            return
        self._buf += chunk
        while self._frame_ready():
            self._pump(call)

    def _write_failure(self, err: OSError) -> RpcError:
        if isinstance(err, (BrokenPipeError, ConnectionResetError)):
            return _unavailable(f"{self.address} closed the connection")
        return _unavailable(f"sending to {self.address} failed: {_reason(err)}")

    def _read_failure(self, err: OSError) -> RpcError:
        if isinstance(err, ConnectionResetError):  # closed with our data unread
            return _unavailable(f"{self.address} closed the connection (reset)")
        return _unavailable(f"reading from {self.address} failed: {_reason(err)}")

    def _lose_writes(self, error: RpcError) -> None:
        self._write_error = error
        self._out.clear()

    def _frame_ready(self) -> bool:
        """A whole frame is buffered (or a bad one that _read_frame refuses)."""
        buf = self._buf
        return len(buf) >= 9 and (_n(buf[:3]) > DEFAULT_MAX_FRAME or len(buf) >= 9 + _n(buf[:3]))

def _unavailable(details: str) -> RpcError:
    """The connection failed or broke."""
    return RpcError(UNAVAILABLE, details, transport=True)


def _request_headers(path: str, timeout: float | None,
                     metadata: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    headers = [(":method", "POST"), (":scheme", "http"), (":path", path), (":authority", "localhost"),
               ("content-type", "application/grpc"), ("te", "trailers")]
    if timeout is not None:
        headers.append(("grpc-timeout", grpc_timeout(timeout)))
    for name, value in metadata:
        _check_metadata(name, value)
        headers.append((name, value))
    return headers


def _check_metadata(name: str, value: str) -> None:
    """gRPC's rules for custom metadata; the value is never echoed (it may be a secret)."""
    if not name or not _NAME_CHARS.issuperset(name):
        raise RpcError(INVALID_ARGUMENT, f"metadata name {name!r}: use lowercase letters, digits, "
                                         "'-', '_' and '.'")
    if name.startswith("grpc-") or name in _RESERVED_NAMES:
        raise RpcError(INVALID_ARGUMENT, f"metadata name {name!r} is reserved")
    if not (value.isascii() and value.isprintable()):
        raise RpcError(INVALID_ARGUMENT, f"metadata {name!r}: the value has a character outside "
                                         "printable ASCII (a trailing newline?)")


def grpc_timeout(seconds: float) -> str:
    """A ``grpc-timeout`` value: at most 8 digits and a unit, rounded up, in
    the finest unit that fits."""
    if not seconds < 99_999_999 * 3600:
        return "99999999H"
    for unit, per_second in (("n", 1e9), ("u", 1e6), ("m", 1e3), ("S", 1.0), ("M", 1 / 60), ("H", 1 / 3600)):
        value = seconds * per_second
        count = int(value)
        count += value - count > value * 1e-12  # up, but not for the float noise of the product
        if count < 100_000_000:
            return f"{max(count, 1)}{unit}"
    return "99999999H"


def _frame(ftype: int, flags: int, stream: int, payload: bytes) -> bytes:
    return _head(len(payload), ftype, flags, stream) + payload


def _head(length: int, ftype: int, flags: int, stream: int) -> bytes:
    return length.to_bytes(3, "big") + bytes((ftype, flags)) + _u32(stream)


def _u16(n: int) -> bytes:
    return n.to_bytes(2, "big")


def _u32(n: int) -> bytes:
    return n.to_bytes(4, "big")


def _n(raw: bytes | bytearray) -> int:
    """A big-endian unsigned field."""
    return int.from_bytes(raw, "big")


def _h2_error(code: int) -> str:
    return H2_ERRORS[code] if code < len(H2_ERRORS) else f"error code {code}"


def _reason(err: OSError) -> str:
    return err.strerror or str(err)


def _status_error(headers: dict[str, str]) -> RpcError | None:
    status = headers["grpc-status"]
    if status == "0":
        return None
    code = int(status) if status.isdigit() and len(status) < 4 else UNKNOWN
    return RpcError(code, _percent_decode(headers.get("grpc-message", "")))


def _percent_decode(text: str) -> str:
    """grpc-message is percent-encoded UTF-8 (without urllib.parse, whose import is heavy)."""
    if "%" not in text:
        return text
    out = bytearray()
    raw = text.encode()
    i = 0
    while i < len(raw):
        hex_digits = raw[i + 1:i + 3]
        if raw[i] == 0x25 and len(hex_digits) == 2 and _is_hex(hex_digits):
            out.append(int(hex_digits, 16))
            i += 3
        else:
            out.append(raw[i])
            i += 1
    return out.decode("utf-8", "replace")


def _is_hex(digits: bytes) -> bool:
    return all(c in b"0123456789abcdefABCDEF" for c in digits)
