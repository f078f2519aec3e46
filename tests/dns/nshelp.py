"""Network namespaces for DNS tests: named ones (``ip netns``), and code run
inside one from a thread of this process (setns affects only the calling
thread; the thread ends with it, so the test process never moves).

A "container" here is a namespace with lo up and two sockets bound to
127.0.0.11:53 in it, as the supervisor makes them for a real container.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import socket
import subprocess
import threading
from collections.abc import Callable
from typing import Any, TypeVar

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
T = TypeVar("T")


def add_netns() -> str:
    name = "orchdns-" + secrets.token_hex(3)
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    return name


def del_netns(name: str) -> None:
    subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


def netns_names() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def enter(name: str) -> None:
    """Move the calling thread into netns ``name``."""
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({name}): {os.strerror(err)}")
    finally:
        os.close(fd)


def in_netns(name: str, fn: Callable[[], T], timeout: float = 30.0) -> T:
    """``fn()`` run on a thread inside netns ``name``; its result or its exception."""
    result: list[Any] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            enter(name)
            result.append(fn())
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=run, name=f"in-{name}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"code in netns {name} did not finish within {timeout} s")
    if error:
        raise error[0]
    return result[0]  # type: ignore[no-any-return]


def dns_sockets(name: str, address: str = "127.0.0.11", port: int = 53) -> tuple[int, int]:
    """A UDP socket and a listening TCP socket bound to ADDRESS:PORT inside
    netns ``name``: their fds, owned by the caller."""
    def make() -> tuple[int, int]:
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        udp.bind((address, port))
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tcp.bind((address, port))
        tcp.listen(16)
        return udp.detach(), tcp.detach()

    return in_netns(name, make)


def query(name: str, qname: str, qtype: str = "A", tcp: bool = False, timeout: float = 5.0,
          server: str = "127.0.0.11", port: int = 53) -> Any:
    """Ask the DNS server at SERVER:PORT from inside netns ``name``; the parsed reply."""
    from dnslib import DNSRecord

    def ask() -> Any:
        q = DNSRecord.question(qname, qtype)
        return DNSRecord.parse(q.send(server, port, tcp=tcp, timeout=timeout))

    return in_netns(name, ask, timeout=timeout + 5)


def addresses(reply: Any) -> list[str]:
    """The A records' addresses of a reply, in order."""
    from dnslib import QTYPE

    return [str(rr.rdata) for rr in reply.rr if rr.rtype == QTYPE.A]


def rcode(reply: Any) -> str:
    from dnslib import RCODE

    return str(RCODE.get(reply.header.rcode))
