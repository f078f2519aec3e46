"""A container dies with its runtime (PR_SET_PDEATHSIG, set by orch-init as
the last step before exec), and the window before that prctl is closed: a
container whose runtime is gone by then never execs.

The runtime whose death is tested is a helper process (``_HELPER``) that
creates containers with LinuxRuntime and is then SIGKILLed; this process
watches the containers through pidfds and removes what the helper left."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from common.errors import SetupError
from nodeagent.runtime import Container, LinuxRuntime, Stdio, linux
from nodeagent.runtime.spec import ContainerSpec
from tests.runtime.test_runtime_linux import assert_nothing_left, cgroup_dirs, processes_in_cgroup

Spec = Callable[..., ContainerSpec]
ROOT = Path(__file__).resolve().parents[2]

# The runtime under test: sets containers up, says what it made on one
# line of JSON, then waits to be killed.
_HELPER = """
import json, sys, time
from nodeagent.runtime import LinuxRuntime, Stdio
from nodeagent.runtime.spec import ContainerSpec, ProcessSpec

spec = ContainerSpec.from_dict(json.loads(sys.argv[1]))
rt = LinuxRuntime()
c = rt.create(spec, Stdio())
live = rt._live[spec.id]
if sys.argv[2] == "held":  # set up, waiting for the start ("S") that never comes from here
    out = {"pid": c.pid, "control": live.control_fd, "report": live.reader.fd}
elif sys.argv[2] == "deaf":  # the same, and no longer reading the report pipe
    live.reader.close()
    out = {"pid": c.pid, "control": live.control_fd}
else:
    rt.start(c)
    out = {"pid": c.pid, "exec": rt.exec(c, ProcessSpec(args=["/bin/sleep", "300"]), Stdio())}
print(json.dumps(out), flush=True)
time.sleep(3600)
"""


def dead(pid: int) -> bool:
    """Exited: no /proc entry, or a zombie nobody reaped yet."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2] == "Z"


def readable(fd: int, timeout: float) -> bool:
    """A pidfd is readable once its process has exited."""
    return bool(select.select([fd], [], [], timeout)[0])


@contextmanager
def helper_runtime(spec: ContainerSpec, mode: str) -> Iterator[tuple[subprocess.Popen[str],
                                                                    dict[str, Any]]]:
    proc = subprocess.Popen([sys.executable, "-c", _HELPER, json.dumps(spec.to_dict()), mode],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, "the helper runtime exited before it set the container up"
        yield proc, json.loads(line)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        # What the killed runtime left: its container's cgroup (and anything
        # still in it), network, bundle.
        LinuxRuntime().remove(Container(spec, 0))


def test_a_container_and_its_exec_die_with_the_runtime(make_spec: Spec) -> None:
    spec = make_spec(["/bin/sleep", "300"])
    with helper_runtime(spec, "running") as (proc, made):
        pid1, execd = os.pidfd_open(made["pid"]), os.pidfd_open(made["exec"])
        try:
            assert not readable(pid1, 0) and not readable(execd, 0)
            proc.kill()
            proc.wait()
            assert readable(pid1, 10), "the container's PID 1 outlived its runtime"
            assert readable(execd, 10), "the exec'd process outlived its runtime"
        finally:
            os.close(pid1)
            os.close(execd)
    assert processes_in_cgroup(spec) == []
    assert_nothing_left(spec, 0)


def test_an_exec_dies_with_the_runtime_even_when_pid1_does_not(make_spec: Spec) -> None:
    """A PID 1 that changes its uid loses its parent-death signal (the
    kernel clears it on any credential change): such a container outlives
    its runtime until a new supervisor kills its cgroup (adopt + remove, as
    Supervisor._load does). An exec'd process still dies on its own."""
    spec = make_spec(["/bin/su", "app", "-c", "exec sleep 300"])
    with helper_runtime(spec, "running") as (proc, made):
        execd = os.pidfd_open(made["exec"])
        try:
            proc.kill()
            proc.wait()
            assert readable(execd, 10), "the exec'd process outlived its runtime"
        finally:
            os.close(execd)
        assert not dead(made["pid"]), "PID 1 changed its uid: nothing should have killed it"
        successor = LinuxRuntime()
        handle = successor.adopt(spec, made["pid"])
        successor.remove(handle)
        assert dead(made["pid"])
    assert_nothing_left(spec, 0)


def test_a_container_whose_runtime_died_before_its_exec_never_execs(make_spec: Spec) -> None:
    """The race closed: the runtime dies while PID 1 is set up but before it
    set its parent-death signal (here: while it waits for the start). Started
    then (by this process, which holds the control pipe too), it finds the
    runtime's pidfd readable and exits at step parent_death."""
    spec = make_spec(["/bin/sh", "-c", "touch /ran; sleep 300"])
    with helper_runtime(spec, "held") as (proc, made):
        pid1 = os.pidfd_open(made["pid"])
        control = os.open(f"/proc/{proc.pid}/fd/{made['control']}", os.O_WRONLY | os.O_CLOEXEC)
        report = os.open(f"/proc/{proc.pid}/fd/{made['report']}", os.O_RDONLY | os.O_CLOEXEC)
        try:
            proc.kill()
            proc.wait()
            os.write(control, b"S")
            assert readable(report, 10)
            message = os.read(report, 65536)
            assert readable(pid1, 10), "PID 1 went on without its runtime"
        finally:
            for fd in (pid1, control, report):
                os.close(fd)
        assert message.startswith(b"E"), message
        body = json.loads(message[1:])
        assert body["step"] == "parent_death"
        assert f"the runtime (pid {proc.pid}) exited" in body["detail"]
        assert not list(Path(spec.bundle_dir).rglob("ran"))  # the command never ran
    assert_nothing_left(spec, 0)


def test_a_container_whose_report_pipe_lost_its_reader_never_execs(make_spec: Spec) -> None:
    """The other sign of a dead runtime, checked with the pidfd: the report
    pipe's read end, which only the runtime holds until the exec, is closed
    (an exiting process closes its files before it signals its children).
    Here the runtime lives on but closed it."""
    spec = make_spec(["/bin/sh", "-c", "touch /ran; sleep 300"])
    with helper_runtime(spec, "deaf") as (proc, made):
        pid1 = os.pidfd_open(made["pid"])
        control = os.open(f"/proc/{proc.pid}/fd/{made['control']}", os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(control, b"S")
            assert readable(pid1, 10), "PID 1 went on with nobody reading its report"
            assert proc.poll() is None  # the runtime itself is alive: its pidfd said nothing
        finally:
            os.close(pid1)
            os.close(control)
        assert not list(Path(spec.bundle_dir).rglob("ran"))  # the command never ran
    assert_nothing_left(spec, 0)


def test_a_runtime_that_is_gone_before_the_clone_gets_no_container(
        runtime: LinuxRuntime, make_spec: Spec, monkeypatch: pytest.MonkeyPatch) -> None:
    """orch-init checks the runtime the plan names is alive and its parent
    before it clones anything (step watch_runtime)."""
    gone = subprocess.Popen(["/bin/true"])
    gone.wait()
    monkeypatch.setattr(linux, "_own_pid", lambda: gone.pid)
    spec = make_spec(["/bin/true"])
    with pytest.raises(SetupError) as info:
        runtime.create(spec, Stdio())
    assert info.value.step == "watch_runtime"
    assert f"the runtime (pid {gone.pid}) is gone" in info.value.message
    assert cgroup_dirs(spec) == []
    assert_nothing_left(spec, 0)

