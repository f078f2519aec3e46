"""The example stack's web tier: counts visits in redis, says who served them.

Standard library only (Debian's python3, no pip):

  GET /         INCR visits in redis, answer a page with the count and this
                container's hostname (503 when redis cannot be reached)
  GET /healthz  200 "ok": the process answers (redis is not consulted, so a
                redis outage does not get every app replica restarted)

Settings from the environment: REDIS_HOST (default ``redis``), REDIS_PORT
(6379), PORT (8000), VISITS_KEY (``visits``).

The redis client below speaks just enough RESP (the redis protocol) for one
command at a time: a command goes out as an array of bulk strings; a reply
is a simple string, an error, an integer, a bulk string or an array of
those. Each request opens its own connection, so a redis restart or a new
address behind the name costs nothing more than the next request.
"""

from __future__ import annotations

import html
import os
import signal
import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import TypeAlias

Reply: TypeAlias = bytes | int | list["Reply"] | None

HOSTNAME = socket.gethostname()
REDIS_HOST = os.environ.get("REDIS_HOST", "redis")
REDIS_PORT = int(os.environ.get("REDIS_PORT", "6379"))
PORT = int(os.environ.get("PORT", "8000"))
VISITS_KEY = os.environ.get("VISITS_KEY", "visits")


class RedisError(Exception):
    """Redis could not be reached, or answered with an error."""


class Redis:
    """One connection to redis; ``command`` sends one command and reads its reply."""

    def __init__(self, host: str, port: int, timeout: float = 2.0) -> None:
        try:
            self.sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as err:
            raise RedisError(f"cannot connect to redis at {host}:{port}: {err}") from err
        self.buf = self.sock.makefile("rb")

    def close(self) -> None:
        self.buf.close()
        self.sock.close()

    def __enter__(self) -> Redis:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def command(self, *args: str | bytes | int) -> Reply:
        parts = [a if isinstance(a, bytes) else str(a).encode() for a in args]
        out = b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)
        try:
            self.sock.sendall(out)
            return self._reply()
        except OSError as err:
            raise RedisError(f"redis connection failed: {err}") from err

    def _line(self) -> bytes:
        line = self.buf.readline()
        if not line.endswith(b"\r\n"):
            raise RedisError("redis closed the connection")
        return line[:-2]

    def _reply(self) -> Reply:
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest
        if kind == b"-":
            raise RedisError(f"redis error: {rest.decode(errors='replace')}")
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            if size < 0:
                return None
            data = self.buf.read(size + 2)
            if len(data) != size + 2:
                raise RedisError("redis closed the connection")
            return data[:-2]
        if kind == b"*":
            count = int(rest)
            return None if count < 0 else [self._reply() for _ in range(count)]
        raise RedisError(f"unexpected reply from redis: {line[:40]!r}")


def count_visit() -> int:
    with Redis(REDIS_HOST, REDIS_PORT) as redis:
        visits = redis.command("INCR", VISITS_KEY)
    if not isinstance(visits, int):
        raise RedisError(f"INCR answered {visits!r}, not an integer")
    return visits


PAGE = """<!doctype html>
<html><head><title>orch stack</title></head>
<body>
<h1>orch stack</h1>
<p>visits: {visits}</p>
<p>served by {host}</p>
</body></html>
"""


class Handler(BaseHTTPRequestHandler):
    server_version = "orch-stack-app/1"

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            self._answer(200, "text/plain", "ok\n")
        elif path == "/":
            try:
                visits = count_visit()
            except RedisError as err:
                self.log_message("%s", err)
                self._answer(503, "text/plain", f"redis unavailable: {err}\n")
                return
            page = PAGE.format(visits=visits, host=html.escape(HOSTNAME))
            self._answer(200, "text/html; charset=utf-8", page)
        else:
            self._answer(404, "text/plain", "not found\n")

    def _answer(self, status: int, ctype: str, body: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # Health checks come every few seconds: only a failing one is news.
        if self.path != "/healthz" or code != 200:
            super().log_request(code, size)

    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write(f"{self.address_string()} {format % args}\n")


def main() -> None:
    server = ThreadingHTTPServer(("0.0.0.0", PORT), Handler)
    server.daemon_threads = True

    # As PID 1 of its container the process gets no default SIGTERM action:
    # without a handler the stop signal would be ignored until SIGKILL.
    def stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    print(f"app on :{PORT} (redis at {REDIS_HOST}:{REDIS_PORT}), host {HOSTNAME}", flush=True)
    try:
        server.serve_forever()
    except (SystemExit, KeyboardInterrupt):
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
