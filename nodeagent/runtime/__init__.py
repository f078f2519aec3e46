"""orch's container runtime: Linux namespaces + cgroups + overlayfs, in-process.

Role: turn a :class:`~nodeagent.runtime.spec.ContainerSpec` into a contained
process and manage it through :class:`Runtime` (create, start, wait/exited,
kill, stop, exec, stats, adopt, remove). :class:`LinuxRuntime` is the real
implementation, :class:`FakeRuntime` the recording fake for callers' tests.

Invariants: the exec never happens after a failed setup step (the failure is
a :class:`~common.errors.SetupError` naming the step and its arguments,
raised after everything was undone); mounts live only in the container's
mount namespace; ``remove`` is idempotent and leaves nothing behind.

Errors (common.errors)::

    SetupError          a setup step (or the exec itself) failed
    InvalidArgument     bad spec (bridge without a network, bad env/rlimit/cap)
    Conflict            the container id is already live in this runtime
    FailedPrecondition  start twice, exec into an exited container
    NotFound            unknown container handle, adopt of a vanished pid
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from common.lazy import lazy_exports
from nodeagent.runtime.api import Container, Runtime, Stdio

if TYPE_CHECKING:
    from nodeagent.runtime.fake import FakeRuntime
    from nodeagent.runtime.linux import LinuxRuntime

__all__ = ["Container", "FakeRuntime", "LinuxRuntime", "Runtime", "Stdio"]
# Loaded on first use: the agent imports nodeagent.runtime.spec for the types
# alone and never runs containers (ctypes, libseccomp: ~3 MB RSS).
__getattr__ = lazy_exports(__name__, {"FakeRuntime": "fake", "LinuxRuntime": "linux"})
