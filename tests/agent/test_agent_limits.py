"""The agent's edge refuses values that break things, whatever client sends them
(here: raw gRPC, bypassing the CLI's own checks), and gives every container a
pids limit: its own, or the node's default, or none with -1."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from proto import agent_pb2 as pb
from proto import agent_pb2_grpc as pb_grpc
from tests.agent.conftest import Engine


@pytest.fixture
def stub(engine: Engine) -> Iterator[Any]:
    with grpc.insecure_channel(f"unix:{engine.run}/agent.sock") as channel:
        yield pb_grpc.AgentStub(channel)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"user": "4294967295"}, "invalid user '4294967295'"),
        ({"user": "99999999999"}, "invalid user '99999999999'"),
        ({"stop_timeout": math.inf}, "invalid stop timeout"),
        ({"stop_timeout": 1e300}, "invalid stop timeout"),
        ({"stop_timeout": -1.0}, "invalid stop timeout"),
        ({"pids_limit": -2}, "invalid pids limit -2"),
        ({"hostname": "a b"}, "invalid hostname 'a b'"),
        ({"name": "web\n"}, "invalid container name"),
        ({"cpus": 0.0000001}, "invalid cpu quantity"),
        ({"memory_bytes": 2**62 + 1}, "at most 4096Pi"),
        ({"env": ["A=\0"]}, "invalid environment"),
    ],
)
def test_create_refuses(stub: Any, engine: Engine, fields: dict[str, Any], message: str) -> None:
    config = pb.ContainerConfig(image="busybox", command=pb.StringList(values=["true"]), **fields)
    with pytest.raises(grpc.RpcError) as caught:
        stub.Create(config, timeout=30)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in (caught.value.details() or "")
    assert engine.orch("ps", "-a", "-q").stdout.strip() == ""


def _pids_max(engine: Engine, name: str) -> str:
    """pids.max of the container's cgroup, from its init's /proc entry."""
    import json

    pid = json.loads(engine.orch("inspect", name).stdout)[0]["pid"]
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "pids" in controllers.split(","):
            return Path(f"/sys/fs/cgroup/pids{path}/pids.max").read_text().strip()
        if controllers == "" and Path("/sys/fs/cgroup/cgroup.controllers").exists():
            return Path(f"/sys/fs/cgroup{path}/pids.max").read_text().strip()
    raise AssertionError(f"no pids cgroup for pid {pid}")


def test_pids_limit_default_own_and_unlimited(engine: Engine, stub: Any) -> None:
    assert stub.Info(pb.InfoRequest(), timeout=10).default_pids_limit == 4096
    cases = {"pd-default": ([], "4096"), "pd-own": (["--pids-limit", "50"], "50"),
             "pd-unlimited": (["--pids-limit=-1"], "max")}
    try:
        for name, (flags, _) in cases.items():
            engine.orch("run", "-d", "--name", name, *flags, "busybox", "sleep", "300")
        for name, (_, expected) in cases.items():
            assert _pids_max(engine, name) == expected, name
    finally:
        engine.orch("rm", "-f", *cases, check=False)


def test_exec_refuses_a_uid_that_means_root(engine: Engine, stub: Any) -> None:
    engine.orch("run", "-d", "--name", "ex-uid", "busybox", "sleep", "300")
    try:
        request = pb.ExecRequest(id="ex-uid", command=["id", "-u"], user="4294967295")
        with pytest.raises(grpc.RpcError) as caught:
            list(stub.Exec(request, timeout=30))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "invalid user '4294967295'" in (caught.value.details() or "")
        out = b"".join(o.stdout for o in stub.Exec(pb.ExecRequest(id="ex-uid", command=["id", "-u"],
                                                                  user="4294967294"), timeout=30))
        assert out.strip() == b"4294967294"
    finally:
        engine.orch("rm", "-f", "ex-uid", check=False)
