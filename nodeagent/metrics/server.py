"""``GET /metrics`` over HTTP, on one thread.

A scrape is a short request from a few Prometheus servers, every 15 s or
so: one thread accepts and answers them in turn (no thread per request, and
no http.server, whose email-based header parsing costs the agent memory
for nothing). Each connection gets :data:`TIMEOUT` seconds to send its
request and take its answer, so a client that stalls delays a scrape by at
most that. Only ``/metrics`` exists (``?...`` ignored); GET and HEAD only;
each answer closes its connection.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable

from common.logging import get_logger
from nodeagent.metrics.exposition import CONTENT_TYPE

__all__ = ["MAX_REQUEST", "TIMEOUT", "MetricsServer", "split_address"]

log = get_logger("orch.metrics")

TIMEOUT = 5.0
MAX_REQUEST = 16 * 1024  # a request line and headers; Prometheus sends well under 1 KiB


def split_address(address: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` too) -> (host, port); ValueError if it is not one."""
    host, sep, port = address.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isascii() or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"invalid address {address!r}: expected HOST:PORT with a port from 1 to 65535")
    return host, int(port)


class MetricsServer:
    """Serves ``render()`` (the exposition's bytes) at ``/metrics`` on ``address``."""

    def __init__(self, address: str, render: Callable[[], bytes]) -> None:
        host, port = split_address(address)
        self.render = render
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind((host, port))
            self.sock.listen(16)
        except OSError:
            self.sock.close()
            raise
        self.port = int(self.sock.getsockname()[1])
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="metrics-http", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._closed.set()
        # shutdown() wakes the accept(); close() alone would not.
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._thread.join(timeout=TIMEOUT + 1)

    def _serve(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                if self._closed.is_set():
                    return
                continue
            with conn:
                conn.settimeout(TIMEOUT)
                try:
                    self._answer(conn)
                except OSError:
                    pass  # the client went away or stalled: its loss
                except Exception:
                    log.exception("metrics: a scrape failed")
                    with contextlib.suppress(OSError):
                        conn.sendall(_response(500, b"collecting the metrics failed; see the agent's log\n"))

    def _answer(self, conn: socket.socket) -> None:
        request = _read_head(conn)
        if request is None:
            conn.sendall(_response(400, b"bad request\n"))
            return
        method, path = request
        conn.settimeout(TIMEOUT)  # to take the answer
        if method not in ("GET", "HEAD"):
            conn.sendall(_response(405, b"only GET and HEAD\n", extra="Allow: GET, HEAD\r\n"))
            return
        if path.partition("?")[0] != "/metrics":
            conn.sendall(_response(404, b"not found: the metrics are at /metrics\n"))
            return
        body = self.render()
        conn.sendall(_response(200, body, CONTENT_TYPE, head_only=method == "HEAD"))


def _read_head(conn: socket.socket) -> tuple[str, str] | None:
    """The request's method and path, once its headers are in; None if it is not HTTP.
    TIMEOUT is for the whole head: a client trickling bytes gets no longer."""
    data = b""
    deadline = time.monotonic() + TIMEOUT
    while b"\r\n\r\n" not in data and b"\n\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request's head took too long")
        conn.settimeout(left)
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
        if len(data) > MAX_REQUEST:
            return None
    parts = data.split(b"\n", 1)[0].split()
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/"):
        return None
    return parts[0].decode("latin-1"), parts[1].decode("latin-1")


_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            500: "Internal Server Error"}


def _response(status: int, body: bytes, content_type: str = "text/plain; charset=utf-8",
              extra: str = "", head_only: bool = False) -> bytes:
    head = (f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n{extra}\r\n")
    return head.encode() + (b"" if head_only else body)
