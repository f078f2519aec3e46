"""Sockets made inside a container's network namespace: its DNS sockets.

A socket belongs to the network namespace it was made in for its whole life,
whichever process holds it and wherever that process runs. So the node's
DNS server (in the agent, in the node's namespace) can answer a container at
``127.0.0.11`` in the container's own namespace, and knows which container
asks: the supervisor makes a UDP socket and a listening TCP socket there
while it attaches the container's network (before the container's process
runs), and hands their fds to the agent (``nodeagent.supervisor``). A DNAT
rule in that namespace sends 127.0.0.11:53 to them (:func:`dns_sockets`).

That rule makes the kernel track connections in the namespace, and it is
the only one there that needs tracking: every other flow is marked
``notrack`` (the ``raw`` hooks of the same table). Without that, each
connection a container makes or takes would be tracked once more there,
besides the node's entry (its VIP's DNAT), and lie in the table as long
(TIME_WAIT: 120 s). The table is one hash shared by every namespace, and
the kernel walks all of it when a device goes down in a namespace that
tracks anything (nftables' masquerade support asks for that, for every
device of every namespace), when a namespace goes, and when the overlay
forgets UDP flows. A container's namespace that tracks nothing is skipped:
its ``eth0`` going costs no walk. Docker's containers track everything;
here a container's own conntrack holds its DNS flows only.

To make them, the supervisor's loop thread moves into the container's
namespace (``setns``), brings its ``lo`` up (the container's init would, a
moment later: a UDP socket bound to 127.0.0.11 while the namespace has no
127.0.0.0/8 yet would answer from 127.0.0.1, which a resolver's connected
socket ignores), makes and binds them, adds the rule, and comes back.

Invariant: :func:`entered` always brings the thread back to the namespace it
left, whatever its body raises. If the way back itself failed (the kernel
refusing ``setns`` to a namespace whose fd the process holds: it does not
happen short of a broken kernel), the process would go on in the wrong
namespace, creating veths and routes there: it exits at once instead
(:data:`EXIT_LOST_NAMESPACE`), and its containers die with it as they do
with any supervisor that dies (``nodeagent.supervisor.recovery``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import struct
from collections.abc import Iterator

from common.errors import SetupError
from nodeagent.runtime import _libc
from nodeagent.runtime.spec import EMBEDDED_DNS

DNS_PORT = 53
REDIRECT_TABLE = "orch_dns"
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
_IFREQ_FLAGS = struct.Struct("16sH22x")  # struct ifreq: the name, then ifr_flags
TCP_BACKLOG = 16  # DNS over TCP is rare: a truncated answer's retry
EXIT_LOST_NAMESPACE = 70  # EX_SOFTWARE


@contextlib.contextmanager
def entered(path: str) -> Iterator[None]:
    """Run the body with the calling thread in the network namespace at
    ``path`` (``/proc/PID/ns/net``, ``/run/netns/NAME``); back where it was
    afterwards, whatever happens (see the module docstring). OSError if the
    namespace cannot be entered: the thread has not moved."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            _libc.setns(target, _libc.CLONE_NEWNET)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _return(own)
    finally:
        os.close(own)


def _return(own: int) -> None:
    try:
        _libc.setns(own, _libc.CLONE_NEWNET)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.write(2, f"orch: cannot return to the node's network namespace ({exc}); "
                        "exiting rather than going on in a container's\n".encode())
        os._exit(EXIT_LOST_NAMESPACE)


def _loopback_up(sock: socket.socket) -> None:
    """``lo`` up in the namespace ``sock`` was made in (any AF_INET socket)."""
    got = fcntl.ioctl(sock, SIOCGIFFLAGS, _IFREQ_FLAGS.pack(b"lo", 0))
    flags = _IFREQ_FLAGS.unpack(got)[1]
    if not flags & IFF_UP:
        fcntl.ioctl(sock, SIOCSIFFLAGS, _IFREQ_FLAGS.pack(b"lo", flags | IFF_UP))


def dns_sockets(pid: int) -> tuple[int, int]:
    """A UDP socket and a listening TCP socket for the node's DNS server in
    the network namespace of process ``pid``, reached there at
    127.0.0.11:53: their fds, in that order, non-blocking and close-on-exec.
    SetupError (step ``dns_sockets`` or ``dns_redirect``) if they cannot be
    made; nothing is left open then.

    As Docker's resolver: they are bound to ports of 127.0.0.11 the kernel
    picks, and a DNAT rule of the namespace's own (``table ip orch_dns``,
    gone with the namespace) sends 127.0.0.11:53 to them, so port 53 stays
    free for the container (a DNS server in it can bind 0.0.0.0:53). The
    answers leave from 127.0.0.11:53: conntrack undoes the DNAT."""
    made: list[socket.socket] = []
    step = "dns_sockets"
    try:
        with entered(f"/proc/{pid}/ns/net"):
            for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                sock = socket.socket(socket.AF_INET, kind | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
                made.append(sock)
                if len(made) == 1:
                    _loopback_up(sock)
                sock.bind((EMBEDDED_DNS, 0))
            made[1].listen(TCP_BACKLOG)
            step = "dns_redirect"
            _redirect(made[0].getsockname()[1], made[1].getsockname()[1])
    except OSError as exc:
        for sock in made:
            sock.close()
        raise SetupError(step, {"pid": pid, "address": f"{EMBEDDED_DNS}:{DNS_PORT}"},
                         exc.strerror or str(exc), exc.errno or 0) from None
    return made[0].detach(), made[1].detach()


def _redirect(udp_port: int, tcp_port: int) -> None:
    """In the caller's network namespace: 127.0.0.11:53 (udp, tcp) -> those
    ports, one transaction (a namespace made anew each time: a context of
    its own). OSError with nft's complaint if it is refused."""
    from nodeagent.network.libnft import Context, first_error  # only containers with a network

    dns = EMBEDDED_DNS
    script = (f"add table ip {REDIRECT_TABLE}\n"
              # Only the DNS flows are tracked (see the module docstring).
              f"add chain ip {REDIRECT_TABLE} raw_out {{ type filter hook output priority raw; }}\n"
              f"add rule ip {REDIRECT_TABLE} raw_out ip daddr != {dns} ip saddr != {dns} notrack\n"
              f"add chain ip {REDIRECT_TABLE} raw_in {{ type filter hook prerouting priority raw; }}\n"
              f"add rule ip {REDIRECT_TABLE} raw_in iif != \"lo\" notrack\n"
              f"add chain ip {REDIRECT_TABLE} output {{ type nat hook output priority -100; }}\n"
              f"add rule ip {REDIRECT_TABLE} output ip daddr {EMBEDDED_DNS} udp dport {DNS_PORT} "
              f"dnat to {EMBEDDED_DNS}:{udp_port}\n"
              f"add rule ip {REDIRECT_TABLE} output ip daddr {EMBEDDED_DNS} tcp dport {DNS_PORT} "
              f"dnat to {EMBEDDED_DNS}:{tcp_port}\n")
    with Context() as nft:
        ok, _, error = nft.run(script)
    if not ok:
        raise OSError(0, first_error(error))
