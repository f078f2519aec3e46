"""Messages between the runtime and ``orch-init`` (``orch-init/report.c``).

One report pipe carries child -> runtime lines: ``P<pid>`` (the container's
PID 1, or an exec'd process, from the spawned helper), ``R`` (setup done,
waiting for start) and ``E<json>`` (a setup step failed: ``{step, args,
detail, errno}``). The write end is close-on-exec, so EOF right after start
means the exec happened. One control pipe carries runtime -> child bytes:
``N`` (network attached), ``S`` (start). Invariant: a child that hits any
error reports it and ``_exit(127)``s; it never execs after a failed step.
The same ``E`` message reports the bridge helper's failures
(:func:`error_message`).
"""

from __future__ import annotations

import fcntl
import json
import os
from typing import Any

from common.errors import SetupError

EXIT_SETUP_FAILED = 127


def pipe() -> tuple[int, int]:
    """A close-on-exec pipe whose ends are never 0/1/2 (those become stdio)."""
    r, w = os.pipe()
    fds = []
    for fd in (r, w):
        if fd < 3:
            high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
            os.close(fd)
            fd = high
        fds.append(fd)
    return fds[0], fds[1]


def error_message(step: str, exc: BaseException) -> bytes:
    if isinstance(exc, SetupError):  # raised by a helper that named its own step
        body = {"step": exc.step, "args": _jsonable(exc.args_repr), "detail": exc.detail,
                "errno": exc.errno}
        return b"E" + json.dumps(body).encode()
    args = str(exc.filename) if isinstance(exc, OSError) and exc.filename is not None else None
    err = exc.errno if isinstance(exc, OSError) and exc.errno else 0
    detail = str(exc)[:1000] or type(exc).__name__
    body = {"step": step, "args": args, "detail": detail, "errno": err}
    return b"E" + json.dumps(body).encode()


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return repr(value)


def to_setup_error(message: bytes) -> SetupError:
    body = json.loads(message[1:])
    return SetupError(body["step"], body.get("args"), body.get("detail", ""),
                      int(body.get("errno") or 0))


class Reader:
    """Line reader on the parent's end of the report pipe."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._buf = b""
        self.eof = False

    def next(self) -> bytes | None:
        """The next message, or None at EOF (every writer closed or exec'd)."""
        while b"\n" not in self._buf:
            if self.eof:
                return None
            chunk = os.read(self.fd, 65536)
            if not chunk:
                self.eof = True
                rest, self._buf = self._buf, b""
                return rest or None
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
