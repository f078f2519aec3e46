"""Volumes, binds and tmpfs mounts end to end: the real CLI, agent,
supervisor and containers. Checks are batched into a few containers (each
start costs), all on the session's engine."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.agent.conftest import Engine

IMAGE = "volimg:1"


@pytest.fixture(scope="module")
def image(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """busybox plus /seed/file in a layer of its own, and VOLUME /seed."""
    ctx = tmp_path_factory.mktemp("volctx")
    (ctx / "seed").mkdir()
    (ctx / "seed" / "file").write_text("seeded\n")
    (ctx / "Containerfile").write_text("FROM busybox:latest\nCOPY seed /seed\nVOLUME /seed\n")
    engine.orch("build", "-t", IMAGE, str(ctx), timeout=120)
    yield IMAGE
    engine.orch("image", "rm", IMAGE, check=False)


def volumes(engine: Engine) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in json.loads(engine.orch("volume", "ls", "-o", "json").stdout)}


def one_error(proc: object, *words: str) -> str:
    """A failed command's one line of error, naming ``words``."""
    assert proc.returncode != 0, proc.stdout  # type: ignore[attr-defined]
    err = proc.stderr.strip()  # type: ignore[attr-defined]
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    for word in words:
        assert word in err, err
    return err


def test_volume_lifecycle(engine: Engine) -> None:
    assert engine.orch("volume", "create", "v-life", "--label", "team=a").stdout.strip() == "v-life"
    assert engine.orch("volume", "create", "v-life").stdout.strip() == "v-life"  # exists: as it is
    assert "v-life" in engine.orch("volume", "ls", "-q").stdout.split()
    (doc,) = json.loads(engine.orch("volume", "inspect", "v-life").stdout)
    assert doc["driver"] == "local" and doc["labels"] == {"team": "a"} and not doc["anonymous"]
    assert doc["mountpoint"] == str(engine.state / "volumes" / "v-life" / "_data")
    assert Path(doc["mountpoint"]).is_dir() and doc["containers"] == []
    assert "v-life" in engine.orch("volume", "ls", "-q", "--filter", "dangling=true").stdout.split()
    one_error(engine.orch("volume", "create", "x", check=False), "invalid volume name 'x'")
    one_error(engine.orch("volume", "inspect", "nope-vol", check=False), "no such volume: nope-vol")
    one_error(engine.orch("volume", "ls", "--filter", "size=1", check=False), "--filter")
    assert engine.orch("volume", "rm", "v-life").stdout.strip() == "v-life"
    assert not Path(doc["mountpoint"]).exists()
    one_error(engine.orch("volume", "rm", "v-life", check=False), "no such volume")
    assert engine.orch("volume", "rm", "-f", "v-life").returncode == 0  # -f: missing is fine
    random = engine.orch("volume", "create").stdout.strip()
    assert len(random) == 64
    # prune asks first; without a yes nothing goes; the named ones only with -a.
    assert engine.orch("volume", "prune", check=False, input="").returncode == 1
    assert random not in engine.orch("volume", "prune", "-f").stdout
    assert random in engine.orch("volume", "prune", "-a", "-f").stdout
    assert random not in volumes(engine)


def test_mounts_in_one_container(engine: Engine, image: str, tmp_path: Path) -> None:
    ro, rw = tmp_path / "ro", tmp_path / "rw"  # rw does not exist: -v makes it, as Docker's
    ro.mkdir()
    (ro / "in.txt").write_text("from-host\n")
    script = " && ".join([
        "echo hello > /data/f", "cat /data-ro/f", "! touch /data-ro/g 2>/dev/null",
        "cat /ro/in.txt", "! touch /ro/new 2>/dev/null", "echo from-ctr > /rw/out.txt",
        "cat /seed/file",  # the image's VOLUME: an anonymous volume, filled from the image
        "grep ' /scratch ' /proc/mounts", "stat -c %a /scratch", "test -d /hostsys/kernel",
    ])
    out = engine.orch("run", "--name", "vol-c1", "-v", "vdata:/data", "-v", "vdata:/data-ro:ro",
                      "--mount", f"type=bind,src={ro},dst=/ro,readonly", "-v", f"{rw}:/rw",
                      "--tmpfs", "/scratch:size=1m,mode=1770",
                      "--mount", "type=bind,source=/sys,target=/hostsys,readonly,force",
                      image, "sh", "-c", script).stdout.splitlines()
    assert out[:3] == ["hello", "from-host", "seeded"], out
    assert out[3].split()[:3] == ["tmpfs", "/scratch", "tmpfs"] and "size=1024k" in out[3], out
    assert out[4] == "1770"
    assert (rw / "out.txt").read_text() == "from-ctr\n"
    assert (engine.state / "volumes" / "vdata" / "_data" / "f").read_text() == "hello\n"

    (details,) = json.loads(engine.orch("inspect", "vol-c1").stdout)
    mounts = {m["target"]: m for m in details["spec"]["mounts"]}
    assert mounts["/data"]["type"] == "volume" and mounts["/data"]["volume"] == "vdata"
    assert mounts["/data-ro"]["readonly"] and mounts["/scratch"]["type"] == "tmpfs"
    assert mounts["/ro"]["source"] == str(ro) and mounts["/seed"]["type"] == "volume"
    anon = mounts["/seed"]["volume"]
    assert volumes(engine)[anon]["anonymous"]

    # In use by a stopped container: never removed, -f or not.
    for args in (("vdata",), ("-f", "vdata"), (anon,)):
        one_error(engine.orch("volume", "rm", *args, check=False), "in use by container(s) vol-c1",
                  "remove them")
    assert "vdata" not in engine.orch("volume", "ls", "-q", "--filter", "dangling=true").stdout
    engine.orch("rm", "-v", "vol-c1")
    vols = volumes(engine)
    assert anon not in vols and vols["vdata"]["containers"] == []

    # The data outlives the container; a named volume is filled from the
    # image on first use, unless nocopy; a --rm container's anonymous volume goes with it.
    assert engine.orch("run", "--rm", "-v", "vdata:/data", "-v", "vseed:/seed", image,
                       "sh", "-c", "cat /data/f /seed/file").stdout == "hello\nseeded\n"
    before = {n for n, v in volumes(engine).items() if v["anonymous"]}
    assert engine.orch("run", "--rm", "-v", "vnocopy:/seed:nocopy", "-v", "/anon", image,
                       "sh", "-c", "ls -A /seed; echo x > /anon/y; echo done").stdout == "done\n"
    assert {n for n, v in volumes(engine).items() if v["anonymous"]} == before
    for name in ("vdata", "vseed", "vnocopy"):
        engine.orch("volume", "rm", name)


def test_mounts_inside_mounts(engine: Engine, tmp_path: Path) -> None:
    """A file bound into a read-only volume's directory and a tmpfs inside
    it (Compose's usual config-file-into-a-data-dir): each mountpoint is
    made in the volume's files, as Docker makes it; a symlink in those files
    is never followed to make one."""
    conf = tmp_path / "app.conf"
    conf.write_text("from-host-conf\n")
    script = " && ".join(["cat /n/conf/app.conf", "grep ' /n/t ' /proc/mounts | cut -d' ' -f3",
                          "echo x > /n/t/y", "! touch /n/z 2>/dev/null", "echo ok"])
    out = engine.orch("run", "--rm", "-v", "vnest:/n:ro", "-v", f"{conf}:/n/conf/app.conf:ro",
                      "--tmpfs", "/n/t", "busybox", "sh", "-c", script).stdout.splitlines()
    assert out == ["from-host-conf", "tmpfs", "ok"], out
    data = engine.state / "volumes" / "vnest" / "_data"
    assert (data / "conf" / "app.conf").read_text() == ""  # the mountpoint, in the volume
    (data / "link").symlink_to("/etc")
    one_error(engine.orch("run", "--rm", "-v", "vnest:/n", "-v", f"{conf}:/n/link/app.conf",
                          "busybox", "true", check=False), "a symlink on the way is not followed")
    assert not Path("/etc/app.conf").exists()
    engine.orch("volume", "rm", "vnest")


@pytest.mark.parametrize(("args", "words"), [
    (["--mount", "type=bind,src=/,dst=/host"], ["refusing to bind /", "force"]),
    (["-v", "/proc/self:/p"], ["refusing to bind /proc/self"]),
    (["--mount", "type=bind,src=/nonexistent-orch-src,dst=/x"],
     ["bind source path does not exist: /nonexistent-orch-src"]),
    (["--mount", "type=volume,src=bad!name,dst=/x"], ["invalid volume name 'bad!name'"]),
    (["--mount", "type=nfs,dst=/x"], ["type 'nfs'"]),
    (["-v", "vbad:/proc/x"], ["/proc/x is the node's to make"]),
    (["-v", "vbad:/x", "-v", "vbad2:/x/"], ["duplicate mount point /x"]),
    (["--tmpfs", "/t:uid=5"], ["unknown option 'uid=5'"]),
])
def test_bad_mounts_fail_with_one_line(engine: Engine, args: list[str], words: list[str]) -> None:
    one_error(engine.orch("run", "--rm", *args, "busybox", "true", check=False), *words)
    assert "vbad" not in volumes(engine)  # refused before anything was made


def test_the_state_dir_is_not_bound_unless_forced(engine: Engine) -> None:
    one_error(engine.orch("run", "--rm", "-v", f"{engine.state}/volumes:/s", "busybox", "true",
                          check=False), "agent's state dir")
    one_error(engine.orch("run", "--rm", "-v", f"{engine.state.parent}:/s", "busybox", "true",
                          check=False), "agent's state dir")
