"""``bundle.remove_tree``: rm -rf for container bundles, never following symlinks."""

from __future__ import annotations

import os
from pathlib import Path

from nodeagent.runtime.bundle import remove_tree


def test_removes_nested_trees_files_and_empty_dirs(tmp_path: Path) -> None:
    root = tmp_path / "bundle"
    (root / "upper/etc/deep").mkdir(parents=True)
    (root / "upper/etc/deep/file").write_text("x")
    (root / "work/work").mkdir(parents=True)
    (root / "rootfs").mkdir()
    (root / "record.json").write_text("{}")
    os.mkfifo(root / "upper/fifo")
    remove_tree(str(root))
    assert not root.exists()
    assert list(tmp_path.iterdir()) == []


def test_symlinks_are_removed_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("precious")
    root = tmp_path / "bundle"
    (root / "upper").mkdir(parents=True)
    (root / "upper/link-to-dir").symlink_to(outside)
    (root / "upper/link-to-file").symlink_to(outside / "keep")
    remove_tree(str(root))
    assert not root.exists()
    assert (outside / "keep").read_text() == "precious"


def test_missing_path_and_plain_empty_dir(tmp_path: Path) -> None:
    remove_tree(str(tmp_path / "nothing-here"))
    (tmp_path / "empty").mkdir()
    remove_tree(str(tmp_path / "empty"))
    assert list(tmp_path.iterdir()) == []
