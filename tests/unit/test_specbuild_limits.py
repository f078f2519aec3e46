"""The agent's edge (``specbuild.build``) checks every value of a container request,
whichever client sent it, and resolves the pids limit: 0 is the node's default, -1 unlimited.
A node's request for a task (``container_request``) carries its limits and passes those checks."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from common.errors import InvalidArgument
from model.objects import Resources, ServiceSpec, Task
from nodeagent.agent import specbuild
from nodeagent.cluster.executor import container_request
from nodeagent.images.model import Image, ImageConfig
from proto import agent_pb2 as pb


def _image(**config: Any) -> Image:
    return Image(id="sha256:" + "0" * 64, repo_tags=["busybox:latest"], manifest_digest="", created="",
                 size=0, config=ImageConfig(cmd=["sh"], **config), diff_ids=[])


def _build(tmp: Path, default_pids_limit: int = 4096, image: Image | None = None, **fields: Any) -> Any:
    cfg = pb.ContainerConfig(image="busybox", network="none", **fields)
    spec, _ = specbuild.build(cfg, image or _image(), [], str(tmp), default_pids_limit)
    return spec


@pytest.mark.parametrize(
    ("requested", "default", "applied"),
    [
        (0, 4096, 4096),  # none asked for: the node's default
        (0, 0, None),  # the node has no default
        (-1, 4096, None),  # unlimited, as Docker spells it
        (100, 4096, 100),
        (4_194_304, 4096, 4_194_304),
    ],
)
def test_pids_limit_resolution(tmp_path: Path, requested: int, default: int, applied: int | None) -> None:
    spec = _build(tmp_path, default, pids_limit=requested)
    assert spec.resources.pids_limit == applied


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"pids_limit": -2}, "invalid pids limit -2"),
        ({"pids_limit": 4_194_305}, "invalid pids limit 4194305"),
        ({"stop_timeout": math.inf}, "invalid stop timeout"),
        ({"stop_timeout": math.nan}, "invalid stop timeout"),
        ({"stop_timeout": 1e300}, "invalid stop timeout"),
        ({"stop_timeout": -1.0}, "invalid stop timeout"),
        ({"user": "4294967295"}, "invalid user '4294967295'"),
        ({"user": "99999999999"}, "invalid user '99999999999'"),
        ({"user": "1000:4294967295"}, "invalid user"),
        ({"name": ""}, ""),  # a generated name: no error (checked below)
        ({"name": "web\n"}, "invalid container name"),
        ({"hostname": "a b"}, "invalid hostname 'a b'"),
        ({"hostname": "a" * 70}, "invalid hostname"),
        ({"memory_bytes": 2**62 + 1}, "at most 4096Pi"),
        ({"memory_bytes": -1}, "invalid memory limit -1"),
        ({"cpus": 0.0000001}, "invalid cpu quantity"),
        ({"cpus": math.nan}, "invalid cpu quantity"),
        ({"cpus": 1e9}, "invalid cpu quantity"),
        ({"env": ["A=b\0c"]}, "invalid environment"),
        ({"command": pb.StringList(values=["sh", "-c", "a\0b"])}, "invalid command"),
        ({"workdir": "/a\0b"}, "invalid working directory"),
    ],
)
def test_bad_values_are_refused(tmp_path: Path, fields: dict[str, Any], message: str) -> None:
    if not message:
        assert _build(tmp_path, **fields).name
        return
    with pytest.raises(InvalidArgument) as caught:
        _build(tmp_path, **fields)
    assert message in caught.value.message


def test_bad_ports_are_refused(tmp_path: Path) -> None:
    for host, container in ((0, 80), (80, 0), (70000, 80), (80, 70000)):
        port = pb.PortMapping(host_port=host, container_port=container)
        cfg = pb.ContainerConfig(image="busybox", ports=[port])
        with pytest.raises(InvalidArgument, match="ports are 1-65535"):
            specbuild.build(cfg, _image(), [], str(tmp_path))


def test_an_images_user_is_checked_too(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="invalid user '4294967295'"):
        _build(tmp_path, image=_image(user="4294967295"))
    assert _build(tmp_path, image=_image(user="4294967294")).process.user == "4294967294"


def test_values_at_their_limits_pass(tmp_path: Path) -> None:
    spec = _build(tmp_path, stop_timeout=86400.0, user="4294967294:4294967294", hostname="a" * 63,
                  memory_bytes=2**62, cpus=0.01)
    assert spec.stop_timeout == 86400.0
    assert (spec.resources.memory_bytes, spec.resources.cpus) == (2**62, 0.01)


def test_exec_user_check() -> None:
    assert specbuild.check_user("1000:1000") == "1000:1000"
    with pytest.raises(InvalidArgument, match="0 to 4294967294"):
        specbuild.check_user("4294967295")


def _task(spec: ServiceSpec, slot: int = 1) -> Task:
    return Task(id="f" * 32, service_id="s" * 24, service_name=spec.name, slot=slot, spec=spec)


def test_a_tasks_request_carries_its_pids_limit_and_storage_size() -> None:
    spec = ServiceSpec(name="web", image="busybox", limits=Resources(pids=100), storage_size=1 << 30)
    cfg = container_request(_task(spec))
    assert (cfg.pids_limit, cfg.storage_size_bytes) == (100, 1 << 30)
    default = container_request(_task(ServiceSpec(name="web", image="busybox")))
    assert default.pids_limit == 0  # the node's default


@pytest.mark.parametrize("name", ["a" * 63, "a" * 62, "a" * 61, "a" * 55])
def test_a_tasks_hostname_is_valid_however_its_name_is_cut(tmp_path: Path, name: str) -> None:
    for slot in (1, 12345):
        cfg = container_request(_task(ServiceSpec(name=name, image="busybox", command=["true"]), slot))
        spec, _ = specbuild.build(cfg, _image(), [], str(tmp_path))
        assert spec.hostname == cfg.hostname and cfg.hostname.startswith(name[:40])
