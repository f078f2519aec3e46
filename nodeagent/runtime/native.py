"""Starting ``orch-init``, the runtime's native helper (C, in ``orch-init/``).

The runtime's process is large: Python, its modules, a supervisor's state.
A fork of it per container copied its page tables and then took hundreds of
copy-on-write faults on both sides, until the exec tore the copy down. A
posix_spawn (vfork + exec) of a small static binary costs none of that, and
the binary does the namespace, mount and credential work in C.

The plan travels on a pipe as NUL-terminated ``key=value`` entries; a list
repeats its key. Every fd the plan names is inherited at its own number.
``scripts/setup`` builds the binary into the environment's ``libexec``, from
the sources in :data:`SOURCE` (one static binary).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable

from common.errors import FailedPrecondition, SetupError
from nodeagent.runtime import channel

BINARY = os.environ.get("ORCH_INIT") or os.path.join(sys.prefix, "libexec", "orch-init")
SOURCE = os.path.join(os.path.dirname(__file__), "orch-init")  # its C sources

Entry = tuple[str, object]

def check_built() -> None:
    """FailedPrecondition naming the fix when the binary is missing."""
    if not os.access(BINARY, os.X_OK):
        raise FailedPrecondition(f"the container init {BINARY} is not built: "
                                 "run scripts/setup (it compiles orch-init/*.c with gcc)")


def encode(entries: Iterable[Entry]) -> bytes:
    out = []
    for key, value in entries:
        text = f"{key}={value}"
        if "\0" in text:
            raise SetupError("plan", key, "a NUL byte cannot pass to a process")
        out.append(text.encode())
    out.append(b"")
    return b"\0".join(out)


def spawn(mode: str, entries: Iterable[Entry], fds: Iterable[int]) -> int:
    """posix_spawn ``orch-init MODE`` with ``fds`` inherited, send it the
    plan, and return its pid. It reports on the plan's report pipe and exits
    soon: the caller reaps it. SetupError (step ``spawn``) if the spawn fails."""
    data = encode(entries)
    plan_r, plan_w = channel.pipe()
    try:
        actions = [(os.POSIX_SPAWN_DUP2, fd, fd) for fd in {plan_r, *fds}]
        pid = os.posix_spawn(BINARY, ["orch-init", mode, str(plan_r)], {},
                             file_actions=actions)
    except OSError as exc:
        os.close(plan_w)
        raise SetupError("spawn", BINARY, exc.strerror or str(exc), exc.errno or 0)
    except BaseException:
        os.close(plan_w)
        raise
    finally:
        os.close(plan_r)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(plan_w, view):]
    except BrokenPipeError:
        pass  # it died first: its report (or EOF) says why
    finally:
        os.close(plan_w)
    return pid
