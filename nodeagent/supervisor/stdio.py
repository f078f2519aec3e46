"""A process's stdio on the supervisor's side: pipes, or a pty; what goes
into it, and the clients attached to a container's output.

Three shapes, as Docker's (``-i``, ``-t``):

- plain: stdout and stderr are pipes the supervisor reads (into the log);
  stdin is /dev/null;
- ``-i`` (stdin open): stdin is a pipe too, its write end the supervisor's,
  kept open while nobody is attached: the process sees its end only when a
  client closes it (``close_stdin``);
- ``-t``: a pty, opened by ``orch-init`` in the container's own devpts (see
  ``ProcessSpec.tty``), its slave the process's 0/1/2 and controlling
  terminal; its master comes back over a unix socket (the console socket),
  and takes the pipes' place: its output is the stdout stream, input and
  window sizes go to it.

Attached clients (``orch attach``, ``orch run -i/-t``) each get a pair of
pipes, stdout and stderr, that the supervisor writes a copy of the output
into (a tty's all into stdout); their write ends close when the container's
process ends, or once the client has gone (its read ends closed). A client
too slow to take its output loses what does not fit in its pipe, rather
than holding up the container and the supervisor.

Invariant: the supervisor never blocks on any of these fds (all
non-blocking); input that does not fit waits in :class:`Input` until the fd
is writable.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import struct
import termios
from dataclasses import dataclass, field

from common.errors import AgentError
from nodeagent.runtime import Stdio

__all__ = ["Attachment", "Ends", "Input", "open_stdio", "receive_master", "set_window_size"]

# The pipe size asked for an attached client's output (F_SETPIPE_SZ): room
# for a burst while the client's stream catches up.
ATTACH_PIPE_SIZE = 1 << 20
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


@dataclass
class Ends:
    """The two sides of a new process's stdio: ``child`` is what the runtime
    hands the process (the caller closes those fds once it has them);
    the rest are the supervisor's."""

    child: Stdio
    outputs: dict[int, str] = field(default_factory=dict)  # read fd -> "stdout" | "stderr"
    stdin: int = -1  # write end of its stdin pipe (-i without -t)
    console: socket.socket | None = None  # -t: the master comes over it

    def close_child(self) -> None:
        for fd in {self.child.stdin, self.child.stdout, self.child.stderr}:
            if fd is not None:
                os.close(fd)

    def close(self) -> None:
        """Everything of the supervisor's (a start that failed)."""
        for fd in self.outputs:
            os.close(fd)
        self.outputs.clear()
        if self.stdin >= 0:
            os.close(self.stdin)
            self.stdin = -1
        if self.console is not None:
            self.console.close()
            self.console = None


def open_stdio(tty: bool, stdin: bool) -> Ends:
    """New stdio for a process: a console socket for ``tty``, else output
    pipes and, with ``stdin``, an input pipe. AgentError if out of fds."""
    made: list[int] = []
    try:
        if tty:
            mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            return Ends(Stdio(stdin=theirs.detach()), console=mine)
        for _ in range(3 if stdin else 2):
            made.extend(os.pipe2(os.O_CLOEXEC))
    except OSError as exc:
        for fd in made:
            os.close(fd)
        raise AgentError(f"cannot create the process's stdio: {exc}") from None
    out_r, out_w, err_r, err_w, *rest = made
    ends = Ends(Stdio(stdout=out_w, stderr=err_w), {out_r: "stdout", err_r: "stderr"})
    if rest:
        ends.child.stdin, ends.stdin = rest
    return ends


def receive_master(ends: Ends) -> int:
    """The pty master ``orch-init`` sent over the console socket (it did so
    before the exec: once the process runs, it is there); the socket is
    closed. AgentError if it never came."""
    assert ends.console is not None
    sock, ends.console = ends.console, None
    try:
        sock.setblocking(False)
        _, fds, _, _ = socket.recv_fds(sock, 1, 1)
    except OSError as exc:
        raise AgentError(f"the process's pty did not arrive: {exc}") from None
    finally:
        sock.close()
    if len(fds) != 1:
        for fd in fds:
            os.close(fd)
        raise AgentError("the process's pty did not arrive")
    os.set_inheritable(fds[0], False)
    return fds[0]


def set_window_size(master: int, rows: int, cols: int) -> None:
    """The pty's size (the foreground process group hears SIGWINCH)."""
    if rows > 0 and cols > 0:
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class Attachment:
    """A client attached to a container's output: the write ends of its
    stdout and stderr pipes."""

    def __init__(self) -> None:
        out_r, self.out = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        try:
            err_r, self.err = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError:
            os.close(out_r)
            os.close(self.out)
            raise
        for fd in (self.out, self.err):
            with contextlib.suppress(OSError):  # a larger pipe is a nicety
                fcntl.fcntl(fd, _F_SETPIPE_SZ, ATTACH_PIPE_SIZE)
        self.client_fds = [out_r, err_r]  # sent to the client, then closed here
        self.closed = False

    def write(self, stream: str, data: bytes) -> None:
        """A copy of ``data``; what does not fit is dropped. A client gone
        (its read end closed) closes the attachment."""
        if self.closed:
            return
        try:
            os.write(self.err if stream == "stderr" else self.out, data)
        except BlockingIOError:
            pass
        except OSError:  # EPIPE: the client has gone
            self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self.out)
            os.close(self.err)


class Input:
    """What goes into a running process's stdin (a pipe's write end, or a
    dup of its pty master): written as the fd takes it, the rest buffered.
    ``register(fd, wanted)`` asks the loop to call :meth:`flush` when ``fd``
    is writable (``wanted``) or to stop."""

    def __init__(self, fd: int, pipe: bool) -> None:
        os.set_blocking(fd, False)
        self.fd = fd
        self.pipe = pipe  # a pipe ends (closes) at the client's EOF; a pty does not
        self.buf = bytearray()
        self.closing = False
        self.waiting = False  # registered for writability

    def add(self, data: bytes) -> None:
        if self.fd >= 0 and not self.closing:
            self.buf += data

    def flush(self) -> bool:
        """Write what the fd takes; True while some is left to write."""
        while self.buf and self.fd >= 0:
            try:
                n = os.write(self.fd, self.buf)
            except BlockingIOError:
                return True
            except OSError:  # the process closed its stdin, or the pty hung up
                self.buf.clear()
                break
            del self.buf[:n]
        if self.closing and self.pipe:
            self.close()
        return False

    def close(self) -> None:
        self.buf.clear()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
