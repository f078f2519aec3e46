"""`orch commit` and `orch cp` on real containers, through the real CLI.

One running and one stopped container serve every check (the suite's time
is short): a commit keeps a new file, a deletion (a whiteout) and a
replaced directory (an opaque one) and applies its --change lines; cp
copies files and directories both ways on both containers, with Docker's
placement rules and ``-`` as a tar stream; a symlink in the container that
points at a host path is resolved inside the container; bad references
and paths get one line each, never a traceback."""

from __future__ import annotations

import io
import json
import os
import secrets
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent.conftest import Engine

SETUP = ("echo hello > /hello && rm /www/index.html && rm -rf /home && mkdir /home"
         " && echo new > /home/new && echo container-secret > /etc/shadow"
         " && ln -s /etc/shadow /shadow-link && ln -s ../../../../../etc /up")


@pytest.fixture(scope="module")
def boxes(engine: Engine) -> Iterator[tuple[str, str]]:
    """A running container and a stopped one, both changed by ``SETUP``."""
    tag = secrets.token_hex(3)
    running, stopped = f"cp-run-{tag}", f"cp-stop-{tag}"
    engine.orch("run", "-d", "--name", running, "busybox", "sleep", "300")
    engine.orch("run", "-d", "--name", stopped, "busybox", "sh", "-c", SETUP)
    try:
        engine.orch("exec", running, "sh", "-c", SETUP)
        assert engine.orch("wait", stopped).stdout.strip() == "0"
        yield running, stopped
    finally:
        engine.orch("rm", "-f", running, stopped, check=False)


def orch_bytes(engine: Engine, *args: str, input: bytes | None = None) -> bytes:
    """``orch ARGS`` with binary stdin and stdout (a tar stream)."""
    proc = subprocess.run([sys.executable, "-m", "orch", *args], env=engine.env, input=input,
                          capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout


def one_line_error(proc: object, *words: str) -> None:
    stderr = getattr(proc, "stderr", "")
    assert getattr(proc, "returncode", 0) != 0
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1, stderr
    for word in words:
        assert word in stderr, stderr


def test_commit_keeps_changes_deletions_and_replaced_dirs(engine: Engine, boxes: tuple[str, str]) -> None:
    running, stopped = boxes
    ref = f"committed-{secrets.token_hex(3)}:1"
    out = engine.orch("commit", "-m", "a message", "-a", "me <me@example.com>",
                      "-c", 'CMD ["cat", "/hello"]', "-c", "ENV FOO=bar", "-c", "WORKDIR /home",
                      "-c", "LABEL stage=committed", "-c", "EXPOSE 8080", running, ref)
    assert out.stdout.strip().startswith("sha256:")
    try:
        assert engine.orch("run", "--rm", ref).stdout == "hello\n"  # the CMD change
        p = engine.orch("run", "--rm", ref, "sh", "-c",
                        "pwd; echo $FOO; ls /home; test -e /www/index.html || echo deleted")
        assert p.stdout.split() == ["/home", "bar", "new", "deleted"]
        # The stored config and the new layer: whiteout, opaque marker, no generated /etc files.
        doc = json.loads(engine.orch("image", "inspect", ref).stdout)[0]
        blobs = engine.state / "images" / "blobs" / "sha256"
        config = json.loads((blobs / doc["id"].removeprefix("sha256:")).read_text())
        assert config["config"]["Labels"]["stage"] == "committed"
        assert "8080/tcp" in config["config"]["ExposedPorts"]
        assert (config["history"][-1]["comment"], config["author"]) == ("a message", "me <me@example.com>")
        with tarfile.open(blobs / doc["layer_digests"][-1].removeprefix("sha256:")) as tar:
            names = set(tar.getnames())
        assert {"hello", "www/.wh.index.html", "home/.wh..wh..opq", "home/new", "etc/shadow"} <= names
        assert not names & {"etc/hosts", "etc/hostname", "etc/resolv.conf", "proc", "sys", "dev"}
        # A stopped container commits too; untagged, it is known by its id.
        image_id = engine.orch("commit", stopped).stdout.strip()
        try:
            p = engine.orch("run", "--rm", image_id, "sh", "-c", "cat /hello /home/new; ls /home | wc -l")
            assert p.stdout.split() == ["hello", "new", "1"]
        finally:
            engine.orch("image", "rm", image_id, check=False)
    finally:
        engine.orch("image", "rm", ref, check=False)


def test_cp_both_ways_running_and_stopped(engine: Engine, boxes: tuple[str, str], tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("A")
    (src / "sub" / "b.txt").write_text("B")
    (src / "link").symlink_to("/etc/passwd")
    for box in boxes:
        out = tmp_path / box
        out.mkdir()
        # host -> container: a file to a new name, a directory into an existing one, contents with /.
        engine.orch("cp", str(src / "a.txt"), f"{box}:/tmp/renamed.txt")
        engine.orch("cp", str(src), f"{box}:/tmp")
        engine.orch("cp", f"{src}/.", f"{box}:/tmp/flat")
        # container -> host: the same back, and a directory to a new name.
        engine.orch("cp", f"{box}:/tmp/renamed.txt", str(out))
        engine.orch("cp", f"{box}:/tmp/src", str(out / "tree"))
        engine.orch("cp", f"{box}:/tmp/flat/.", str(out))
        assert (out / "renamed.txt").read_text() == "A"
        assert (out / "tree" / "sub" / "b.txt").read_text() == "B"
        assert os.readlink(out / "tree" / "link") == "/etc/passwd"  # kept as the link it is
        assert (out / "a.txt").read_text() == "A" and (out / "sub" / "b.txt").read_text() == "B"
        assert (out / "hello").exists() is False
        # `-`: a tar on stdout
        raw = orch_bytes(engine, "cp", f"{box}:/hello", "-")
        with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
            member = tar.getmember("hello")
            assert tar.extractfile(member).read() == b"hello\n"  # type: ignore[union-attr]
    # `-`: a tar on stdin, into a directory of the running container.
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("from-stdin.txt")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"stdin"))
    orch_bytes(engine, "cp", "-", f"{boxes[0]}:/tmp", input=buf.getvalue())
    assert engine.orch("exec", boxes[0], "cat", "/tmp/from-stdin.txt").stdout == "stdin"
    # What went into the stopped container is there when it runs.
    engine.orch("start", boxes[1])
    engine.orch("wait", boxes[1])
    image_id = engine.orch("commit", boxes[1]).stdout.strip()
    try:
        p = engine.orch("run", "--rm", image_id, "sh", "-c", "cat /tmp/renamed.txt /tmp/flat/sub/b.txt")
        assert p.stdout.split() == ["AB"]
    finally:
        engine.orch("image", "rm", image_id, check=False)


def test_cp_symlinks_stay_inside_the_container(engine: Engine, boxes: tuple[str, str],
                                               tmp_path: Path) -> None:
    marker = f"orch-cp-escape-{secrets.token_hex(4)}"
    (tmp_path / marker).write_text("x")
    for box in boxes:
        out = tmp_path / f"out-{box}"
        out.mkdir()
        engine.orch("cp", f"{box}:/up/shadow", str(out / "shadow"))  # /up -> ../../../etc: its own /etc
        assert (out / "shadow").read_text() == "container-secret\n"
        engine.orch("cp", f"{box}:/shadow-link", str(out / "link"))  # a link is copied as one
        assert os.readlink(out / "link") == "/etc/shadow"
        one_line_error(engine.orch("cp", f"{box}:/shadow-link/", str(out), check=False), "not a directory")
        engine.orch("cp", str(tmp_path / marker), f"{box}:/up/")
        assert not os.path.exists(f"/etc/{marker}")
    assert engine.orch("exec", boxes[0], "cat", f"/etc/{marker}").stdout == "x"


def test_bad_refs_and_paths_get_one_line(engine: Engine, boxes: tuple[str, str], tmp_path: Path) -> None:
    running, _ = boxes
    one_line_error(engine.orch("commit", "no-such-container", check=False), "no-such-container")
    one_line_error(engine.orch("commit", running, "Bad::Ref", check=False))
    one_line_error(engine.orch("commit", "-c", "RUN true", running, check=False), "RUN")
    one_line_error(engine.orch("cp", "no-such-container:/x", str(tmp_path), check=False))
    one_line_error(engine.orch("cp", f"{running}:/no/such/file", str(tmp_path), check=False), "/no/such/file")
    one_line_error(engine.orch("cp", str(tmp_path / "missing"), f"{running}:/tmp", check=False), "missing")
    one_line_error(engine.orch("cp", str(tmp_path), f"{running}:/no/such/dir/x", check=False), "/no/such/dir")
    one_line_error(engine.orch("cp", f"{running}:/hello", f"{running}:/x", check=False), "between containers")
    one_line_error(engine.orch("cp", f"{running}:/home", str(tmp_path / "nodir" / "x"), check=False),
                   "no such directory")
    one_line_error(engine.orch("cp", "-", f"{running}:/tmp", input="not a tar", check=False), "tar")


def _hostile_tar(outside: Path) -> bytes:
    """A directory holding a symlink to ``outside``, then a file through it."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        top = tarfile.TarInfo("d")
        top.type, top.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(top)
        link = tarfile.TarInfo("d/l")
        link.type, link.linkname = tarfile.SYMTYPE, str(outside)
        tar.addfile(link)
        data = tarfile.TarInfo("d/l/pwned")
        data.size = 1
        tar.addfile(data, io.BytesIO(b"x"))
    return buf.getvalue()


def test_unpacking_never_writes_through_a_symlink(tmp_path: Path) -> None:
    from common.errors import InvalidArgument
    from nodeagent.agent import copyfs
    from orch.cli import commitcmd
    from orch.cli.client import CLIError

    outside, root = tmp_path / "outside", tmp_path / "root"
    outside.mkdir()
    root.mkdir()
    hostile = _hostile_tar(outside)
    with pytest.raises(CLIError, match="outside the destination"):  # the CLI, on the host
        commitcmd._unpack_here(commitcmd._Reader([hostile]), False, str(root))
    fd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    try:  # the agent, in a container's root
        with pytest.raises(InvalidArgument, match="not a directory"):
            copyfs.extract(fd, "/", io.BytesIO(hostile))
    finally:
        os.close(fd)
    assert not (outside / "pwned").exists()
