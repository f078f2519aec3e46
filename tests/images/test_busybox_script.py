"""examples/images/busybox.sh builds a usable rootfs that imports and runs."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from nodeagent.images import ImageConfig, ImageStore

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "images" / "busybox.sh"

pytestmark = pytest.mark.skipif(not os.path.exists("/bin/busybox"), reason="no busybox-static")


def _build(out: Path) -> str:
    done = subprocess.run(["sh", str(SCRIPT), str(out)], check=True, capture_output=True, text=True)
    return done.stdout.strip()


def test_busybox_rootfs_layout_and_idempotence(tmp_path: Path) -> None:
    out = tmp_path / "bb"
    assert _build(out) == str(out)
    assert _build(out) == str(out)  # second run succeeds on the existing tree
    assert os.access(out / "bin/busybox", os.X_OK)
    for applet in ["sh", "ls", "cat", "httpd", "sleep"]:
        assert os.readlink(out / "bin" / applet) == "busybox"
    for d in ["sbin", "usr/bin", "usr/sbin", "root", "var", "etc"]:
        assert (out / d).is_dir()
    assert stat.S_IMODE(os.stat(out / "tmp").st_mode) == 0o1777
    passwd = (out / "etc/passwd").read_text().splitlines()
    assert "root:x:0:0:root:/root:/bin/sh" in passwd
    assert any(line.startswith("nobody:") for line in passwd)
    assert any(line.startswith("app:x:1000:1000:") for line in passwd)
    assert "app:x:1000:" in (out / "etc/group").read_text()
    assert "hello from orch" in (out / "www/index.html").read_text()


def test_busybox_rebuild_changes_nothing_so_the_layer_is_the_same(tmp_path: Path) -> None:
    """`orch up` on a kept state dir rebuilds the tree and imports it again:
    the same tree must give the same layer (a new one would replace the
    image under the containers the restored tasks run)."""
    out = tmp_path / "bb"
    _build(out)
    store = ImageStore(str(tmp_path / "state"))
    (out / "www/index.html").write_text("changed")
    _build(out)  # puts the page back: a changed file is refreshed
    assert "hello from orch" in (out / "www/index.html").read_text()
    before = {p: os.lstat(p).st_mtime_ns for p in out.rglob("*")}
    _build(out)
    assert {p: os.lstat(p).st_mtime_ns for p in out.rglob("*")} == before
    again = store.import_rootfs(str(out), "busybox")
    _build(out)
    assert store.import_rootfs(str(out), "busybox").diff_ids == again.diff_ids


def test_busybox_rootfs_imports_and_runs_from_its_snapshot(tmp_path: Path) -> None:
    out = _build(tmp_path / "bb")
    store = ImageStore(str(tmp_path / "state"))
    image = store.import_rootfs(out, "busybox", ImageConfig(cmd=["/bin/sh"]))
    [lower] = store.lower_dirs(image)
    done = subprocess.run(
        [
            shutil.which("chroot") or "/usr/sbin/chroot",
            lower,
            "/bin/sh",
            "-c",
            "cat /www/index.html; id -un",
        ],
        check=True,
        capture_output=True,
        text=True,
        env={"PATH": "/bin"},
    )
    assert "hello from orch" in done.stdout
    assert done.stdout.strip().endswith("root")
