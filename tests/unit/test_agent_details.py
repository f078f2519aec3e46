"""The agent's details as typed messages (nodeagent.agent.details) and what
the CLI prints of them: `orch inspect` shows the document the supervisor's
record makes, `orch image inspect` the image's fields, `orch system df` its rows."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.json_format import MessageToDict

from nodeagent.agent.details import container_details, disk_usage, image_details
from nodeagent.agent.service import to_pb
from nodeagent.images.model import Image, ImageConfig
from nodeagent.runtime.spec import (
    ContainerSpec,
    NetworkConfig,
    PortMapping,
    ProcessSpec,
    Resources,
    Rlimit,
    RootfsSpec,
)
from nodeagent.supervisor.records import RUNNING, Record
from orch.cli.containers import inspect_document
from orch.cli.output import message_plain
from proto import agent_pb2 as pb


def _record(tmp_path: Path) -> Record:
    spec = ContainerSpec(
        id="a" * 64, name="web", hostname="web", bundle_dir=str(tmp_path / "a"),
        rootfs=RootfsSpec(["/l2", "/l1"], volatile=True, size_bytes=1 << 30),
        process=ProcessSpec(args=["httpd", "-f"], env=["A=1"], user="1000:1000",
                            rlimits=(Rlimit("RLIMIT_NOFILE", 1024, 4096), Rlimit("RLIMIT_CORE", -1, -1))),
        resources=Resources(memory_bytes=64 << 20, pids_limit=-1),
        network=NetworkConfig(mode="bridge", bridge="orch0", address="10.88.0.5", prefixlen=24,
                              gateway="10.88.0.1", host_veth="veth1",
                              ports=[PortMapping(8080, 80)], dns=["10.88.0.1"],
                              extra_hosts=[("db", "10.88.0.6")]),
        cgroup_name="orch/" + "a" * 64, labels={"orch.task": "t1"})
    config = pb.ContainerConfig(image="busybox", name="web", memory_bytes=64 << 20, pids_limit=-1,
                                command=pb.StringList(values=["httpd", "-f"]), labels={"orch.task": "t1"})
    return Record(spec=spec, image="busybox", image_id="sha256:" + "b" * 64, config=MessageToDict(config),
                  state=RUNNING, pid=4242, pid_start_time=12345678901, created_at=1.5, started_at=2.5,
                  restart_count=1)


def test_inspect_shows_the_records_document(tmp_path: Path) -> None:
    rec = _record(tmp_path)
    # What the supervisor sends for `get` with `full` (through JSON, as on its socket).
    full: dict[str, Any] = json.loads(json.dumps(rec.to_dict() | rec.public()))
    message = pb.ContainerDetails.FromString(container_details(full, to_pb(full)).SerializeToString())
    doc = inspect_document(message)
    old = dict(full)
    # The request now reads with its proto names; the spec's host entries as objects.
    assert doc.pop("config") == message_plain(pb.ContainerConfig(
        image="busybox", name="web", memory_bytes=64 << 20, pids_limit=-1,
        command=pb.StringList(values=["httpd", "-f"]), labels={"orch.task": "t1"}))
    old.pop("config")
    assert doc["spec"]["network"].pop("extra_hosts") == [{"name": "db", "ip": "10.88.0.6"}]
    old["spec"]["network"].pop("extra_hosts")
    for key, default in ContainerSpec.OMITTED_AT_DEFAULT.items():  # a record leaves these out
        assert doc["spec"].pop(key) == default
    assert doc["spec"]["resources"] == {"memory_bytes": 64 << 20, "cpus": None, "pids_limit": -1}
    assert doc == old


def test_image_inspect_and_df_keep_their_shapes() -> None:
    image = Image(id="sha256:" + "c" * 64, repo_tags=["busybox:1"], manifest_digest="sha256:" + "d" * 64,
                  created="2024-01-01T00:00:00Z", size=1 << 20,
                  config=ImageConfig(cmd=["sh"], env=["PATH=/bin"], exposed_ports=["80/tcp"],
                                     labels={"k": "v"}),
                  diff_ids=["sha256:" + "e" * 64], layer_digests=["sha256:" + "f" * 64],
                  unpacked_size=3 << 20, repo_digests=["busybox@sha256:" + "d" * 64])

    assert message_plain(image_details(image)) == json.loads(json.dumps(dataclasses.asdict(image)))
    rows = [{"ref": "busybox:1", "refs": ["busybox:1"], "id": image.id, "logical_size": 10, "shared": 4,
             "unique": 6},
            {"ref": "total", "refs": [], "id": "", "logical_size": 10, "shared": 4, "unique": 6,
             "disk": 12}]
    reply = disk_usage(rows)
    assert [*map(message_plain, reply.images), {**message_plain(reply.total), "disk": reply.disk}] == rows


@pytest.mark.parametrize(("model", "message"), [
    (ContainerSpec, pb.RuntimeSpec), (ProcessSpec, pb.ProcessSpec), (RootfsSpec, pb.RootfsSpec),
    (Resources, pb.RuntimeResources), (NetworkConfig, pb.NetworkSpec), (Rlimit, pb.Rlimit),
    (PortMapping, pb.PortMapping), (Image, pb.ImageDetails), (ImageConfig, pb.ImageConfig),
])
def test_the_messages_have_the_objects_fields(model: type, message: Any) -> None:
    """A field added to one of these objects needs its wire field (and a line in details)."""
    assert set(message.DESCRIPTOR.fields_by_name) == {f.name for f in dataclasses.fields(model)}
