"""RUN: one command in a throwaway container over the layers so far.

The container has no network (mode "none"), the image's env/workdir/user, and
the layers as its read-only overlay lower dirs; its output is streamed line
by line to the build's ``out`` (many lines a call). The caller turns the container's upper dir
into the step's layer before :func:`run_step`'s context exits and removes the
container (process, cgroup, bundle dirs).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from nodeagent.runtime.api import Stdio
from nodeagent.runtime.linux import LinuxRuntime
from nodeagent.runtime.spec import ContainerSpec, NetworkConfig, ProcessSpec, RootfsSpec

CGROUP_PARENT = "orch/build"


@dataclass
class RunResult:
    exit_code: int
    upper: str  # the container's overlay upper dir (valid until the context exits)


@contextlib.contextmanager
def run_step(runtime: LinuxRuntime, work_dir: str, lower_dirs: list[str], args: list[str],
             env: list[str], cwd: str, user: str, out: Callable[[str], None],
             cgroup_parent: str = CGROUP_PARENT) -> Iterator[RunResult]:
    cid = uuid.uuid4().hex + uuid.uuid4().hex
    bundle = os.path.join(work_dir, f"run-{cid[:12]}")
    spec = ContainerSpec(
        id=cid, name=f"orch-build-{cid[:12]}", hostname=cid[:12], bundle_dir=bundle,
        rootfs=RootfsSpec(lower_dirs=lower_dirs),
        process=ProcessSpec(args=args, env=env, cwd=cwd or "/", user=user, no_new_privileges=False),
        network=NetworkConfig(mode="none"),
        cgroup_name=f"{cgroup_parent}/{cid[:16]}",
    )
    read_fd, write_fd = os.pipe()
    container = None
    try:
        try:
            container = runtime.create(spec, Stdio(stdin=None, stdout=write_fd, stderr=write_fd))
        finally:
            os.close(write_fd)
        runtime.start(container)
        _pump(read_fd, out)
        status = runtime.wait(container)
        assert status is not None
        yield RunResult(status.exit_code, os.path.join(bundle, "upper"))
    finally:
        os.close(read_fd)
        if container is not None:
            runtime.remove(container)
        shutil.rmtree(bundle, ignore_errors=True)


def _pump(fd: int, out: Callable[[str], None]) -> None:
    """Forward the container's output until every writer closed it: each
    read's complete lines in one call (without the last newline), so a step
    that prints millions of lines costs a call per 64 KiB, not per line."""
    pending = b""
    while chunk := os.read(fd, 65536):
        pending += chunk
        cut = pending.rfind(b"\n")
        if cut >= 0:
            out(pending[:cut].decode("utf-8", "replace"))
            pending = pending[cut + 1:]
    if pending:
        out(pending.decode("utf-8", "replace"))
