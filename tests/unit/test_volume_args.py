"""Mounts without containers: the CLI's -v/--mount/--tmpfs reading, the
agent's checks (``specbuild.mounts``), the volume store's bookkeeping,
the init plan's entries and the spec's records."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from common.errors import Conflict, InvalidArgument, NotFound
from nodeagent.agent import specbuild
from nodeagent.runtime.spec import ContainerSpec, Mount, ProcessSpec, RootfsSpec
from nodeagent.volumes import VolumeStore, populate
from orch.cli import runcmd
from orch.cli.client import CLIError
from proto import agent_pb2 as pb

# ---- the CLI -------------------------------------------------------------------


@pytest.mark.parametrize(("text", "want"), [
    ("/data", {"type": "volume", "source": "", "target": "/data"}),
    ("/data:ro", {"type": "volume", "source": "", "target": "/data", "readonly": True}),
    ("db:/var/db", {"type": "volume", "source": "db", "target": "/var/db"}),
    ("db:/var/db:ro,nocopy", {"source": "db", "readonly": True, "volume_nocopy": True}),
    ("/:/host:rw", {"type": "bind", "source": "/", "target": "/host", "readonly": False}),
])
def test_volume_flag(text: str, want: dict[str, Any]) -> None:
    got = runcmd.volume_spec(text)
    assert {k: got[k] for k in want} == want


@pytest.mark.parametrize(("text", "want"), [
    ("type=bind,src=/a,dst=/b,ro", {"type": "bind", "source": "/a", "target": "/b", "readonly": True}),
    ("source=v1,destination=/d,volume-nocopy=true", {"type": "volume", "volume_nocopy": True}),
    ("type=tmpfs,target=/t,tmpfs-size=64m,tmpfs-mode=1770",
     {"tmpfs_size": 64 << 20, "tmpfs_mode": 0o1770}),
    ("type=bind,src=/proc,dst=/p,readonly=false,force", {"readonly": False, "force": True}),
])
def test_mount_flag(text: str, want: dict[str, Any]) -> None:
    got = runcmd.mount_spec(text)
    assert {k: got[k] for k in want} == want


def test_tmpfs_flag() -> None:
    got = runcmd.tmpfs_spec("/run:size=1m,mode=755,ro")
    assert (got["type"], got["target"], got["tmpfs_size"], got["tmpfs_mode"], got["readonly"]) == (
        "tmpfs", "/run", 1 << 20, 0o755, True)


@pytest.mark.parametrize(("parse", "text", "message"), [
    (runcmd.volume_spec, "a:b:c:d", "expected .SOURCE:.TARGET"),
    (runcmd.volume_spec, "db:rel", "absolute path"),
    (runcmd.volume_spec, "./x:/d", "neither a volume name"),
    (runcmd.volume_spec, "db:/d:ro,rw", "conflicting"),
    (runcmd.volume_spec, "/h:/d:nocopy", "nocopy is for volumes"),
    (runcmd.mount_spec, "type=nfs,target=/x", "type 'nfs'"),
    (runcmd.mount_spec, "source=v", "needs a target"),
    (runcmd.mount_spec, "target=/x,bind-propagation=shared", "unknown key"),
    (runcmd.mount_spec, "target=/x,readonly=maybe", "expected true or false"),
    (runcmd.mount_spec, "type=tmpfs,target=/x,tmpfs-mode=999", "octal"),
    (runcmd.tmpfs_spec, "rel", "absolute path"),
    (runcmd.tmpfs_spec, "/t:exec", "unknown option 'exec'"),
    (runcmd.tmpfs_spec, "/t:size=lots", "size"),
])
def test_bad_flags_name_what_is_wrong(parse: Any, text: str, message: str) -> None:
    with pytest.raises(CLIError, match=message) as err:
        parse(text)
    assert "\n" not in err.value.message


def test_mounts_reach_the_request_in_order() -> None:
    values = runcmd.parse_quick(["-v", "db:/db", "--mount", "type=tmpfs,dst=/t", "--tmpfs", "/u", "img"])
    assert values is not None
    config = pb.ContainerConfig.FromString(runcmd.encode_config(runcmd.config_fields(values)))
    assert [(m.type, m.source, m.target) for m in config.mounts] == [
        ("volume", "db", "/db"), ("tmpfs", "", "/t"), ("tmpfs", "", "/u")]


# ---- the agent's checks ------------------------------------------------------------


def _config(*mounts: pb.MountConfig) -> pb.ContainerConfig:
    return pb.ContainerConfig(image="img", mounts=list(mounts))


def test_specbuild_mounts(tmp_path: Path) -> None:
    state = tmp_path / "state"
    host = tmp_path / "host"
    host.mkdir()
    cfg = _config(pb.MountConfig(type="volume", source="db", target="/db/"),
                  pb.MountConfig(type="bind", source=str(host), target="/h", readonly=True),
                  pb.MountConfig(type="tmpfs", target="/t", tmpfs_size=1 << 20),
                  pb.MountConfig(target="/anon", volume_nocopy=True))
    mounts, uses = specbuild.mounts(cfg, ["/db", "/var/cache"], str(state))
    by = {m.target: m for m in mounts}
    assert set(by) == {"/db", "/h", "/t", "/anon", "/var/cache"}  # the image's /db is covered
    assert by["/db"] == Mount(str(state / "volumes/db/_data"), "/db", False, "volume", "db", "rbind")
    assert by["/h"] == Mount(str(host), "/h", True, "bind", "", "rbind")
    assert by["/t"].type == "tmpfs" and by["/t"].options == "mode=1777,size=1048576"
    assert [(u.target, u.anonymous, u.nocopy) for u in uses] == [
        ("/db", False, False), ("/anon", True, True), ("/var/cache", True, False)]


@pytest.mark.parametrize(("mount", "message"), [
    (pb.MountConfig(type="bind", source="/", target="/x"), "refusing to bind /"),
    (pb.MountConfig(type="bind", source="/dev/null", target="/x"), "refusing to bind /dev/null"),
    (pb.MountConfig(type="bind", source="/sys", target="/x"), "refusing to bind /sys"),
    (pb.MountConfig(type="bind", source="/no/such/dir", target="/x"), "does not exist"),
    (pb.MountConfig(type="bind", source="rel", target="/x"), "absolute host path"),
    (pb.MountConfig(type="volume", source="a", target="/x"), "invalid volume name 'a'"),
    (pb.MountConfig(type="volume", source="v1", target="/etc/hosts"), "the node's to make"),
    (pb.MountConfig(type="volume", source="v1", target="x"), "absolute path"),
    (pb.MountConfig(type="volume", source="v1"), "needs a target"),
    (pb.MountConfig(type="disk", target="/x"), "type 'disk'"),
    (pb.MountConfig(type="tmpfs", source="x", target="/x"), "has no source"),
    (pb.MountConfig(type="volume", target="/x", tmpfs_size=5), "for type tmpfs"),
    (pb.MountConfig(type="volume", target="/x", force=True), "force is for type bind"),
])
def test_specbuild_refuses(tmp_path: Path, mount: pb.MountConfig, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message) as err:
        specbuild.mounts(_config(mount), [], str(tmp_path))
    assert "\n" not in err.value.message


def test_state_dir_and_force(tmp_path: Path) -> None:
    state = tmp_path / "state"
    (state / "volumes").mkdir(parents=True)
    for source in (state, state / "volumes", tmp_path):
        with pytest.raises(InvalidArgument, match="agent's state dir"):
            specbuild.mounts(_config(pb.MountConfig(type="bind", source=str(source), target="/x")), [],
                             str(state))
    forced = _config(pb.MountConfig(type="bind", source="/", target="/x", force=True))
    assert specbuild.mounts(forced, [], str(state))[0][0].source == "/"


def test_duplicate_and_nested_targets(tmp_path: Path) -> None:
    twice = _config(pb.MountConfig(source="v1", target="/x"), pb.MountConfig(source="v2", target="/x/"))
    with pytest.raises(InvalidArgument, match="duplicate mount point /x"):
        specbuild.mounts(twice, [], str(tmp_path))
    # Mounts inside mounts are made parents first, whatever their order given.
    nested = _config(pb.MountConfig(source="v2", target="/x/y/z"), pb.MountConfig(source="v1", target="/x"))
    made, _ = specbuild.mounts(nested, ["/x/y"], str(tmp_path))
    assert [m.target for m in made] == ["/x", "/x/y", "/x/y/z"]


# ---- the store -------------------------------------------------------------------------


def test_store_bookkeeping(tmp_path: Path) -> None:
    store = VolumeStore(str(tmp_path / "volumes"))
    store.create("named", {"k": "v"})
    assert store.attach("c1", ["named", "new"], ["anon1"], auto_remove=False) == ["new", "anon1"]
    with pytest.raises(Conflict, match=r"in use by container\(s\) web \(c1\)"):
        store.remove("named", live={"c1": "web"}, force=True)
    assert store.remove("named", live={})  # c1 is gone (a missed removal): not a user
    assert not store.remove("named", live={}, force=True)
    with pytest.raises(NotFound):
        store.remove("named", live={})
    assert store.prune(live={"c1": "web"}) == []
    assert store.detach("c1", remove_anonymous=None) == []  # not auto-remove: kept...
    assert store.detach("c1", remove_anonymous=True) == ["anon1"]  # ...until rm -v
    store.attach("c2", [], ["anon2"], auto_remove=True)
    assert store.detach("c2", remove_anonymous=None) == ["anon2"]
    assert store.prune(live={}) == []  # named ones only with all
    assert store.prune(live={}, all=True) == ["new"]
    assert os.listdir(store.root) == []


def test_populate_copies_once_and_never_through_a_symlink(tmp_path: Path) -> None:
    layer, outside, vol = tmp_path / "layer", tmp_path / "outside", tmp_path / "vol"
    (layer / "seed").mkdir(parents=True)
    (layer / "seed" / "f").write_text("x")
    outside.mkdir()
    (outside / "secret").write_text("host")
    (layer / "link").symlink_to(outside)
    vol.mkdir()
    assert not populate(str(vol), [str(layer)], "/link")
    assert populate(str(vol), [str(layer)], "/seed") and (vol / "f").read_text() == "x"
    (vol / "f").write_text("changed")
    assert not populate(str(vol), [str(layer)], "/seed")  # not empty: left alone
    assert (vol / "f").read_text() == "changed"


# ---- the plan and the record --------------------------------------------------------


def _bind_entries(mounts: list[Mount]) -> list[str]:
    """The init plan's "bind" entries for ``mounts``, from the real generator
    (read up to the process's entries, which this plan has none of)."""
    from nodeagent.runtime import init
    from nodeagent.runtime.rootfs import RootfsPlan
    from nodeagent.runtime.spec import NetworkConfig

    rootfs = RootfsPlan(staging="/s", overlay_data="", readonly=False, hostname="h", etc_files={},
                        masked_paths=(), readonly_paths=(), mounts=tuple(mounts))
    plan = init.InitPlan(unshare_flags=0, rootfs=rootfs, process=None,  # type: ignore[arg-type]
                         network=NetworkConfig(), control_fd=0, cgroup_files=[], runtime_pid=0)
    out: list[str] = []
    entries = init.entries(plan)
    try:
        for key, value in entries:
            if key == "bind":
                out.append(str(value))
    except AttributeError:  # the process plan's turn
        pass
    return out


def test_init_entries_and_spec_records() -> None:
    mounts = [Mount("/s", "/run/secrets/a"), Mount("/v", "/v", False, "volume", "v1", "rbind"),
              Mount("/", "/t", True, "tmpfs", "", "mode=1777")]
    assert _bind_entries(mounts) == ["/s\t/run/secrets/a\tro", "/v\t/v\trw\trbind",
                                     "/\t/t\tro\ttmpfs\tmode=1777"]
    spec = ContainerSpec(id="a" * 64, name="n", hostname="h", bundle_dir="/b",
                         rootfs=RootfsSpec(["/l"]), process=ProcessSpec(args=["true"]), mounts=mounts)
    assert ContainerSpec.from_dict(spec.to_dict()) == spec
    old = spec.to_dict()
    old["mounts"] = [{"source": "/s", "target": "/run/secrets/a", "readonly": True}]  # before types
    assert ContainerSpec.from_dict(old).mounts == [Mount("/s", "/run/secrets/a")]
