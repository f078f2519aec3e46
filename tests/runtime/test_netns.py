"""Moving the supervisor's one thread into a container's network namespace
and back (``netns.entered``), and the DNS sockets made there."""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from common.errors import SetupError
from nodeagent.runtime import _libc, netns


def own_ns() -> str:
    return os.readlink("/proc/thread-self/ns/net")


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.fixture
def box() -> Iterator[int]:
    """A stand-in container: a process in a network namespace of its own,
    whose loopback is down (as a container's is until its init brings it up)."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    proc = subprocess.Popen(["unshare", "--net", "sleep", "600"])
    try:
        deadline = time.monotonic() + 5
        while os.readlink(f"/proc/{proc.pid}/ns/net") == own_ns():
            assert time.monotonic() < deadline, "unshare --net did not take effect"
            time.sleep(0.005)
        yield proc.pid
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def test_the_body_runs_inside_and_the_thread_comes_back(box: int) -> None:
    before = own_ns()
    with netns.entered(f"/proc/{box}/ns/net"):
        assert own_ns() == os.readlink(f"/proc/{box}/ns/net") != before
    assert own_ns() == before


def test_an_exception_in_the_body_still_brings_the_thread_back(box: int) -> None:
    before, fds = own_ns(), open_fds()
    with pytest.raises(ZeroDivisionError), netns.entered(f"/proc/{box}/ns/net"):
        1 / 0  # noqa: B018
    assert own_ns() == before
    assert open_fds() == fds


def test_a_namespace_that_cannot_be_entered_leaves_the_thread_where_it_was() -> None:
    before, fds = own_ns(), open_fds()
    with pytest.raises(FileNotFoundError), netns.entered("/proc/0/ns/net"):
        pytest.fail("the body must not run")
    with pytest.raises(OSError), netns.entered("/proc/self/ns/mnt"):  # not a net namespace
        pytest.fail("the body must not run")
    assert own_ns() == before
    assert open_fds() == fds


def test_a_failed_return_ends_the_process_rather_than_go_on_inside(box: int) -> None:
    """The way back fails (setns refused, simulated): the process exits at
    once with EXIT_LOST_NAMESPACE; nothing after the block runs."""
    code = f"""
import os, sys
from nodeagent.runtime import _libc, netns
real, calls = _libc.setns, []
def setns(fd, nstype):
    calls.append(fd)
    if len(calls) == 2:
        raise _libc.SyscallError(1, "setns", (fd, nstype))
    real(fd, nstype)
_libc.setns = setns
with netns.entered("/proc/{box}/ns/net"):
    pass
print("went on")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert proc.returncode == netns.EXIT_LOST_NAMESPACE, proc.stderr
    assert "went on" not in proc.stdout
    assert "cannot return to the node's network namespace" in proc.stderr


def test_dns_sockets_are_made_inside_and_answer_from_their_address(box: int) -> None:
    """Made while the container's lo is still down, which they bring up: a
    query from inside to 127.0.0.11:53 arrives, over UDP and TCP, and the
    UDP answer comes from 127.0.0.11:53 (a resolver's connected socket takes
    nothing else), though the sockets are on other ports."""
    before = own_ns()
    udp_fd, tcp_fd = netns.dns_sockets(box)
    udp, tcp = socket.socket(fileno=udp_fd), socket.socket(fileno=tcp_fd)
    try:
        assert own_ns() == before
        assert (udp.type, udp.getsockname()[0]) == (socket.SOCK_DGRAM, "127.0.0.11")
        assert (tcp.type, tcp.getsockname()[0]) == (socket.SOCK_STREAM, "127.0.0.11")
        assert 53 not in (udp.getsockname()[1], tcp.getsockname()[1])  # reached through the DNAT
        assert all(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_NONBLOCK for fd in (udp_fd, tcp_fd))
        assert not os.get_inheritable(udp_fd) and not os.get_inheritable(tcp_fd)
        inside = ["nsenter", f"--net=/proc/{box}/ns/net"]
        lo = subprocess.run([*inside, "ip", "-o", "link", "show", "lo"], capture_output=True, text=True,
                            check=True).stdout
        assert "<LOOPBACK,UP" in lo
        ask = subprocess.Popen([*inside, sys.executable, "-c", """
import socket
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(10)
u.connect(("127.0.0.11", 53)); u.send(b"q1"); print(u.recv(10).decode())
t = socket.create_connection(("127.0.0.11", 53), timeout=10); t.sendall(b"q2"); print(t.recv(10).decode())
"""], stdout=subprocess.PIPE, text=True)
        udp.settimeout(10)
        data, peer = udp.recvfrom(10)
        udp.sendto(b"a-" + data, peer)
        tcp.settimeout(10)
        conn, _ = tcp.accept()
        with conn:
            conn.sendall(b"a-" + conn.recv(10))
        assert ask.communicate(timeout=10)[0].split() == ["a-q1", "a-q2"]
    finally:
        udp.close()
        tcp.close()


def test_dns_sockets_of_a_gone_process_fail_naming_the_step() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    before, fds = own_ns(), open_fds()
    with pytest.raises(SetupError) as err:
        netns.dns_sockets(0x3FFFFFFF)
    assert err.value.step == "dns_sockets" and "127.0.0.11:53" in str(err.value)
    assert own_ns() == before
    assert open_fds() == fds


def test_port_53_stays_free_for_the_container(box: int) -> None:
    """A DNS server in the container binds 0.0.0.0:53 (udp and tcp) and is
    reached on its own addresses, while 127.0.0.11:53 still reaches the node's."""
    fds = netns.dns_sockets(box)
    try:
        inside = ["nsenter", f"--net=/proc/{box}/ns/net"]
        proc = subprocess.run([*inside, sys.executable, "-c", """
import socket
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("0.0.0.0", 53))
t = socket.socket(); t.bind(("0.0.0.0", 53)); t.listen()
c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); c.sendto(b"mine", ("127.0.0.1", 53))
print(u.recvfrom(10)[0].decode())
"""], capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split() == ["mine"]
        rules = subprocess.run([*inside, "nft", "list", "table", "ip", netns.REDIRECT_TABLE],
                               capture_output=True, text=True, check=True).stdout
        assert rules.count("dnat to 127.0.0.11:") == 2
    finally:
        for fd in fds:
            os.close(fd)


def test_only_dns_flows_are_tracked_in_the_namespace(box: int) -> None:
    """A connection on the container's own addresses adds no conntrack entry
    to its namespace (notrack); a query to 127.0.0.11:53 does (its DNAT)."""
    fds = netns.dns_sockets(box)
    try:
        inside = ["nsenter", f"--net=/proc/{box}/ns/net"]
        proc = subprocess.run([*inside, sys.executable, "-c", """
import socket
def count():
    with open("/proc/sys/net/netfilter/nf_conntrack_count") as f:
        return int(f.read())
before = count()
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen()
cli = socket.create_connection(srv.getsockname()); peer, _ = srv.accept()
cli.sendall(b"x"); peer.recv(1)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.sendto(b"y", ("127.0.0.2", 9))
plain = count()
q = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); q.sendto(b"z", ("127.0.0.11", 53))
print(before, plain, count())
"""], capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, proc.stderr
        before, plain, dns = map(int, proc.stdout.split())
        assert plain == before
        assert dns == before + 1
    finally:
        for fd in fds:
            os.close(fd)


def test_dns_sockets_whose_redirect_fails_leave_nothing_open(box: int,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The DNAT refused (nft's complaint, simulated): SetupError naming the
    step, every socket closed, the thread back home."""
    def refuse(udp_port: int, tcp_port: int) -> None:
        raise OSError(0, "Error: Could not process rule: Operation not supported")

    monkeypatch.setattr(netns, "_redirect", refuse)
    before, fds = own_ns(), open_fds()
    with pytest.raises(SetupError) as err:
        netns.dns_sockets(box)
    assert err.value.step == "dns_redirect" and "Operation not supported" in str(err.value)
    assert open_fds() == fds
    assert own_ns() == before


def test_setns_failure_is_a_syscall_error() -> None:
    with pytest.raises(_libc.SyscallError) as err:
        _libc.setns(-1, _libc.CLONE_NEWNET)
    assert err.value.call == "setns"
