"""A tiny HTTP proxy on 127.0.0.1 for the proxy tests: CONNECT tunnels (what
https goes through) and absolute-form requests (plain http), to loopback
targets only. It records each connection's first request line."""

from __future__ import annotations

import contextlib
import ipaddress
import select
import socket
import threading
import urllib.parse
from collections.abc import Iterator


class LoopbackProxy:
    def __init__(self) -> None:
        self.seen: list[str] = []  # first request line of each client connection
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False

    def __enter__(self) -> LoopbackProxy:
        self._spawn(self._accept)
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() (close alone does not)
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
        for thread in self._threads:
            thread.join(5)

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _track(self, sock: socket.socket) -> socket.socket:
        with self._lock:
            self._sockets.append(sock)
        return sock

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self._spawn(self._serve, self._track(client))

    def _serve(self, client: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head and len(head) < 65536:
            chunk = client.recv(4096)
            if not chunk:
                return
            head += chunk
        line = head.split(b"\r\n", 1)[0].decode()
        self.seen.append(line)
        method, target, _version = line.split(" ", 2)
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            upstream = self._connect(host, int(port))
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            rest = head.split(b"\r\n\r\n", 1)[1]
        else:  # absolute form: the upstream (Go's net/http) accepts it as it is
            url = urllib.parse.urlsplit(target)
            upstream = self._connect(url.hostname or "", url.port or 80)
            rest = head
        if rest:
            upstream.sendall(rest)
        self._pipe(client, upstream)

    def _connect(self, host: str, port: int) -> socket.socket:
        if not ipaddress.ip_address(host.strip("[]")).is_loopback:
            raise ValueError(f"the test proxy only reaches loopback, not {host}")
        return self._track(socket.create_connection((host.strip("[]"), port)))

    def _pipe(self, a: socket.socket, b: socket.socket) -> None:
        peers = {a: b, b: a}
        with contextlib.suppress(OSError):
            while not self._closed:
                readable, _, _ = select.select(list(peers), [], [], 0.5)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    peers[sock].sendall(data)


@contextlib.contextmanager
def loopback_proxy() -> Iterator[LoopbackProxy]:
    with LoopbackProxy() as proxy:
        yield proxy
