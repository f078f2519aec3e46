"""A task's secrets and configs on the node: a tmpfs of their own on the host
(``secretfs``), bound read-only into the container by ``orch-init`` on
mountpoints of its init layer. Real mounts, real containers."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from common.errors import InvalidArgument, SetupError
from nodeagent.runtime import LinuxRuntime, Stdio
from nodeagent.runtime.secretfs import SecretFile, SecretFiles
from nodeagent.runtime.spec import ContainerSpec, Mount
from tests.runtime.test_runtime_linux import run

Spec = Callable[..., ContainerSpec]
VALUE = b"s3cr3t-\x00-value\n"


@pytest.fixture
def files(tmp_path: Path) -> Iterator[SecretFiles]:
    """Under a directory of its own; whatever a test leaves mounted is released."""
    made = SecretFiles(str(tmp_path / "run" / "secrets"))
    yield made
    left = made.tasks()
    made.prune(set())
    assert made.tasks() == []
    assert not left, f"secret files left behind: {left}"


def _mounted(path: str) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


def test_files_are_on_a_read_only_tmpfs_with_their_owner_and_mode(files: SecretFiles) -> None:
    mounts = files.make("t1", [SecretFile("/run/secrets/db", VALUE, 1000, 2000, 0o440),
                               SecretFile("/etc/app.conf", b"", 0, 0, 0o444)])
    path = files.path("t1")
    assert _mounted(path)
    with open("/proc/self/mountinfo") as f:
        line = next(line for line in f if line.split()[4] == path)
    assert " - tmpfs " in line and line.split()[5].startswith("ro,")
    assert [(m.target, m.readonly) for m in mounts] == [("/run/secrets/db", True), ("/etc/app.conf", True)]
    st = os.stat(mounts[0].source)
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (1000, 2000, 0o440)
    assert Path(mounts[0].source).read_bytes() == VALUE
    assert "s3cr3t" not in repr(SecretFile("/x", VALUE))
    files.release("t1")
    assert not _mounted(path) and not os.path.exists(path)
    files.release("t1")  # idempotent


def test_prune_keeps_only_the_tasks_asked(files: SecretFiles) -> None:
    for tid in ("a", "b", "c"):
        files.make(tid, [SecretFile("/run/secrets/x", tid.encode())])
    assert files.prune({"b"}) == ["a", "c"]
    assert files.tasks() == ["b"]
    files.release("b")


def test_a_bad_task_id_is_refused(files: SecretFiles) -> None:
    with pytest.raises(SetupError):
        files.make("../up", [SecretFile("/run/secrets/x", b"")])


def test_a_container_reads_its_secret_at_its_target(runtime: LinuxRuntime, make_spec: Spec,
                                                    files: SecretFiles) -> None:
    """With the mode and owner asked, read-only, a tmpfs in its mount table;
    a config at a path the image lacks; nothing written to its layer."""
    mounts = files.make("t2", [SecretFile("/run/secrets/db", VALUE, 1000, 1000, 0o400),
                               SecretFile("/etc/app/app.conf", b"level=info\n")])
    spec = make_spec(["/bin/sh", "-c",
                      "od -c /run/secrets/db | head -1; stat -c '%u:%g %a' /run/secrets/db; "
                      "cat /etc/app/app.conf; "
                      "grep -E ' /(run/secrets/db|etc/app/app.conf) ' /proc/self/mounts; "
                      "echo x > /run/secrets/db || echo refused; ls /etc/app"])
    spec.mounts = mounts
    code, out = run(runtime, spec)
    assert code == 0, out
    assert "s   3   c   r   3   t   -  \\0   -" in out
    assert "1000:1000 400" in out
    assert "level=info" in out
    secret_line = next(line for line in out.splitlines() if " /run/secrets/db " in line)
    assert secret_line.startswith("tmpfs /run/secrets/db tmpfs ro,")
    assert "nosuid" in secret_line and "nodev" in secret_line and "noexec" in secret_line
    assert "tmpfs /etc/app/app.conf tmpfs ro," in out
    assert "refused" in out
    assert VALUE not in b"".join(p.read_bytes() for p in Path(spec.bundle_dir).rglob("*") if p.is_file())
    files.release("t2")


def test_a_symlink_of_the_image_never_leads_a_mount_out(runtime: LinuxRuntime, make_spec: Spec,
                                                         files: SecretFiles, tmp_path: Path) -> None:
    """The image's /run is a symlink to a host path: the mountpoint is the
    init layer's own directory, so nothing lands on the host."""
    outside = tmp_path / "host-dir"
    outside.mkdir()
    layer = tmp_path / "layer"
    layer.mkdir()
    os.symlink(str(outside), layer / "run")
    mounts = files.make("t3", [SecretFile("/run/secrets/db", VALUE)])
    spec = make_spec(["/bin/sh", "-c", "cat /run/secrets/db"])
    spec.rootfs.lower_dirs = [str(layer), *spec.rootfs.lower_dirs]
    spec.mounts = mounts
    code, out = run(runtime, spec)
    assert code == 0 and out.encode() == VALUE
    assert list(outside.iterdir()) == []
    files.release("t3")


@pytest.mark.parametrize(("mount", "error"), [
    (Mount("/x", "relative"), "invalid target"),
    (Mount("/x", "/proc/1"), "the node's to make"),
    (Mount("/x", "/a/../b"), "without"),
    (Mount("x", "/a"), "absolute host path"),
])
def test_bad_mounts_are_refused_before_anything_runs(runtime: LinuxRuntime, make_spec: Spec,
                                                     mount: Mount, error: str) -> None:
    spec = make_spec(["/bin/true"])
    spec.mounts = [mount]
    with pytest.raises(InvalidArgument, match=error):
        runtime.create(spec, Stdio())


def test_mounts_survive_the_specs_round_trip(make_spec: Spec) -> None:
    spec = make_spec(["/bin/true"])
    spec.mounts = [Mount("/run/orch/secrets/t/0", "/run/secrets/db")]
    assert ContainerSpec.from_dict(spec.to_dict()) == spec
