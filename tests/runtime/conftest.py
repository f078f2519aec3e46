"""Fixtures for the runtime tests: a busybox rootfs (the single lower dir),
a LinuxRuntime on the host's cgroups, and a spec factory with unique ids."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from nodeagent.runtime.spec import ContainerSpec, ProcessSpec, RootfsSpec
from tests.runtime_fixtures import cgroup_parent, runtime

__all__ = ["cgroup_parent", "runtime"]  # fixtures shared with tests/build

BUSYBOX = "/bin/busybox"


def build_busybox_rootfs(root: Path) -> Path:
    (root / "bin").mkdir(parents=True)
    (root / "etc").mkdir()
    shutil.copy(BUSYBOX, root / "bin" / "busybox")
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True)
    for applet in applets.stdout.split():
        if applet != "busybox":
            os.symlink("busybox", root / "bin" / applet)
    (root / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\napp:x:1000:app\nextra:x:2000:app,other\n")
    return root


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.geteuid() != 0:
        pytest.skip("runtime tests need root")
    if not os.path.exists(BUSYBOX):
        pytest.skip("busybox-static is not installed")
    return build_busybox_rootfs(tmp_path_factory.mktemp("lower") / "rootfs")


@pytest.fixture
def make_spec(tmp_path: Path, busybox_rootfs: Path,
              cgroup_parent: str) -> Callable[..., ContainerSpec]:
    def make(args: list[str], **process: object) -> ContainerSpec:
        cid = uuid.uuid4().hex + uuid.uuid4().hex
        return ContainerSpec(
            id=cid,
            name=f"orch-test-{cid[:8]}",
            hostname=f"box-{cid[:6]}",
            bundle_dir=str(tmp_path / f"bundle-{cid[:12]}"),
            rootfs=RootfsSpec(lower_dirs=[str(busybox_rootfs)]),
            process=ProcessSpec(args=args, **process),  # type: ignore[arg-type]
            cgroup_name=f"{cgroup_parent}/{cid[:16]}",
        )

    return make


@pytest.fixture
def kernel_cgroupfs(monkeypatch: pytest.MonkeyPatch) -> Callable[..., list[str]]:
    """Make a fake cgroupfs act as the kernel's: ``files(dir)`` appear in a
    group when it is made. Returns the list that records each control file
    written, by name."""
    from nodeagent.runtime.cgroups import _fs

    def install(files: Callable[[Path], dict[str, str]]) -> list[str]:
        real_mkdir, real_write, written = _fs.mkdir, _fs.write, []

        def mkdir(path: str) -> bool:
            created = real_mkdir(path)
            for filename, content in files(Path(path)).items():
                (Path(path) / filename).write_text(content)
            return created

        def write(path: str, value: str) -> None:
            written.append(Path(path).name)
            real_write(path, value)

        monkeypatch.setattr(_fs, "mkdir", mkdir)
        monkeypatch.setattr(_fs, "write", write)
        return written

    return install
