"""FakeRuntime: the recording fake callers test against."""

from __future__ import annotations

import signal

import pytest

from common.errors import FailedPrecondition, SetupError
from nodeagent.runtime import FakeRuntime, Runtime, Stdio
from nodeagent.runtime.spec import ContainerSpec, ProcessSpec, RootfsSpec


def spec(cid: str = "a" * 64) -> ContainerSpec:
    return ContainerSpec(id=cid, name="n", hostname="h", bundle_dir="/nonexistent",
                         rootfs=RootfsSpec(["/nonexistent"]), process=ProcessSpec(["x"]))


def test_lifecycle_recorded_and_exit_codes_settable() -> None:
    rt: Runtime = FakeRuntime()
    assert isinstance(rt, FakeRuntime)
    rt.exit_codes["a" * 64] = 3
    c = rt.create(spec(), Stdio())
    rt.start(c)
    status = rt.wait(c)
    assert status is not None and status.exit_code == 3
    rt.remove(c)
    assert [verb for verb, _ in rt.calls] == ["create", "start", "wait", "remove"]


def test_stop_honours_ignored_stop_signal() -> None:
    rt = FakeRuntime()
    c = rt.create(spec(), Stdio())
    rt.start(c)
    rt.ignore_stop_signal.add(c.spec.id)
    assert rt.stop(c).signal == signal.SIGKILL
    with pytest.raises(FailedPrecondition):
        rt.exec(c, ProcessSpec(["x"]), Stdio())


def test_create_failure_injectable() -> None:
    rt = FakeRuntime()
    rt.fail_create["a" * 64] = SetupError("mount_rootfs", "lowerdir=/x", "boom")
    with pytest.raises(SetupError):
        rt.create(spec(), Stdio())
