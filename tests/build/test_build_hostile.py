"""A hostile Containerfile or context cannot make the builder read the host.

Every case plants a secret outside the context (a file and a directory with
a unique marker) and then tries to reach it: ``..`` and absolute sources,
symlinks inside the context leading out (to the file, the directory, "/"),
globs through them, symlink loops, an archive ADDed through a link or
holding escaping members, a Containerfile or .dockerignore that is itself a
link out, a FIFO where the builder reads a file. Each is refused with a
``BuildError`` naming Containerfile:line, or copies the link as a link;
afterwards no layer in the store holds the marker.

Real builds (busybox base from the store, a container for the RUN steps).
"""

from __future__ import annotations

import gzip
import io
import os
import re
import stat
import tarfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nodeagent.images.build import BuildError, build
from nodeagent.images.build.ignore import Glob, _regex_part
from nodeagent.images.model import Image
from nodeagent.images.store import ImageStore

MARKER = b"host-secret-7f3a9c"


class Ctx:
    """A context dir next to a secret file and directory, and a build helper."""

    def __init__(self, store: ImageStore, runtime: Any, cgroup_parent: str, tmp: Path) -> None:
        self.store, self.runtime, self.cgroup_parent = store, runtime, cgroup_parent
        self.dir = tmp / "ctx"
        self.dir.mkdir()
        (self.dir / "ok.txt").write_text("fine\n")
        self.secret = tmp / "secret"
        self.secret.write_bytes(MARKER + b"\n")
        self.secret_dir = tmp / "secret-dir"
        self.secret_dir.mkdir()
        (self.secret_dir / "key").write_bytes(MARKER + b" in a dir\n")
        self.lines: list[str] = []

    def link(self, name: str, target: str | Path) -> None:
        path = self.dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(str(target), path)

    def build(self, text: str, containerfile: Path | None = None) -> Image:
        if containerfile is None:
            containerfile = self.dir / "Containerfile"
            containerfile.write_text(text)
        self.lines = []
        return build(self.store, str(self.dir), str(containerfile), "hostile:1", {}, None, False,
                     self.runtime, self.lines.append, cgroup_parent=self.cgroup_parent)

    def refused(self, text: str, *fragments: str, where: str = "Containerfile:2") -> BuildError:
        with pytest.raises(BuildError) as info:
            self.build(text)
        err = info.value
        assert err.where == where, str(err)
        for fragment in fragments:
            assert fragment in str(err), str(err)
        assert MARKER.decode() not in str(err)
        self.assert_no_secret_in_store()
        return err

    def assert_no_secret_in_store(self) -> None:
        """No file of the store (blobs, unpacked snapshots, the build cache) holds the
        marker, compressed or not; links are not followed (a copied link is fine)."""
        for top, _dirs, files in os.walk(self.store.root):
            for name in files:
                path = os.path.join(top, name)
                if not stat.S_ISREG(os.lstat(path).st_mode):
                    continue
                with open(path, "rb") as f:
                    data = f.read()
                if data[:2] == b"\x1f\x8b":
                    data = gzip.decompress(data)
                assert MARKER not in data, f"{path} holds the host's secret"


@pytest.fixture
def ctx(store: ImageStore, runtime: Any, cgroup_parent: str, tmp_path: Path) -> Ctx:
    return Ctx(store, runtime, cgroup_parent, tmp_path)


def layer_of(ctx: Ctx, image: Image, index: int = -1) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(ctx.store.layout.blob_path(image.layer_digests[index])) as tf:
        return {m.name: m for m in tf.getmembers()}


# ---- sources that name a path outside ------------------------------------------------------

@pytest.mark.parametrize("source", ["../secret", "./../secret", "ok.txt/../../secret", "sub/../../secret",
                                    "..", "../secret-dir/", "../secret-dir/*", "../*"])
def test_a_source_climbing_out_of_the_context_is_refused(ctx: Ctx, source: str) -> None:
    ctx.refused(f"FROM busybox\nCOPY {source} /x\n", "outside the build context")


def test_an_absolute_source_is_read_inside_the_context(ctx: Ctx) -> None:
    # Docker's rule: "/x" is the context's x. The host's file of that name is never read.
    ctx.refused(f"FROM busybox\nCOPY {ctx.secret} /x\n", "not found in the build context")
    ctx.refused(f"FROM busybox\nCOPY /../../../../..{ctx.secret} /x\n", "outside the build context")
    ctx.refused(f"FROM busybox\nADD {ctx.secret_dir}/ /x/\n", "not found in the build context")
    image = ctx.build("FROM busybox\nCOPY /ok.txt /x\n")
    assert "x" in layer_of(ctx, image)


def test_a_json_form_source_and_an_arg_are_held_to_the_same_rules(ctx: Ctx) -> None:
    ctx.refused('FROM busybox\nCOPY ["../secret", "/x"]\n', "outside the build context")
    ctx.refused("FROM busybox\nARG UP=..\nCOPY $UP/secret /x\n", "outside the build context",
                where="Containerfile:3")


# ---- symlinks in the context ----------------------------------------------------------------------

@pytest.mark.parametrize("target", ["secret", "secret-dir", "/", "relative"])
def test_a_symlink_leading_out_is_refused_as_a_source(ctx: Ctx, target: str) -> None:
    where: dict[str, str | Path] = {"secret": ctx.secret, "secret-dir": ctx.secret_dir, "/": "/",
                                    "relative": "../secret-dir"}
    ctx.link("out", where[target])
    for source in ("out", "out/", "./out", "o*", "out/."):
        ctx.refused(f"FROM busybox\nCOPY {source} /x/\n", "outside the build context")


def test_a_path_through_a_symlinked_directory_is_refused(ctx: Ctx) -> None:
    ctx.link("out", ctx.secret_dir)
    ctx.link("nested/deeper/out", "../../../secret-dir")
    ctx.refused("FROM busybox\nCOPY out/key /x\n", "outside the build context")
    ctx.refused("FROM busybox\nCOPY nested/deeper/out/key /x\n", "outside the build context")
    # A glob does not descend into a symlinked directory at all.
    ctx.refused("FROM busybox\nCOPY out/* /x/\n", "no source files match")
    ctx.refused("FROM busybox\nCOPY nested/*/out/k* /x/\n", "no source files match")


def test_symlinks_inside_a_copied_directory_are_copied_as_links(ctx: Ctx) -> None:
    ctx.link("tree/to-file", ctx.secret)
    ctx.link("tree/to-dir", ctx.secret_dir)
    ctx.link("tree/to-root", "/")
    ctx.link("tree/sub/up", "../../../secret")
    ctx.link("tree/inside", "sub")
    (ctx.dir / "tree/sub/plain").write_text("plain\n")
    for copy in ("COPY tree /app/", "COPY . /app/", "ADD tree/ /app/"):
        image = ctx.build(f"FROM busybox\n{copy}\n")
        members = layer_of(ctx, image)
        prefix = "app/tree/" if copy.startswith("COPY .") else "app/"
        links = {name[len(prefix):]: m.linkname for name, m in members.items()
                 if m.issym() and name.startswith(prefix)}
        assert links == {"to-file": str(ctx.secret), "to-dir": str(ctx.secret_dir), "to-root": "/",
                         "sub/up": "../../../secret", "inside": "sub"}, copy
        assert not any(name.startswith(f"{prefix}to-dir/") for name in members)
        assert members[f"{prefix}sub/plain"].isreg()
    ctx.assert_no_secret_in_store()


def test_a_symlink_inside_the_context_is_followed_inside_it(ctx: Ctx) -> None:
    ctx.link("alias.txt", "ok.txt")
    ctx.link("dir-alias", "real")
    (ctx.dir / "real").mkdir()
    (ctx.dir / "real/f").write_text("f\n")
    image = ctx.build("FROM busybox\nCOPY alias.txt /a.txt\nCOPY dir-alias/ /d/\n")
    assert layer_of(ctx, image, -2)["a.txt"].isreg()
    assert "d/f" in layer_of(ctx, image)


def test_a_symlink_loop_is_refused(ctx: Ctx) -> None:
    ctx.link("a", "b")
    ctx.link("b", "a")
    ctx.link("self", "self/x")
    ctx.refused("FROM busybox\nCOPY a /x\n", "build context")
    ctx.refused("FROM busybox\nCOPY self /x\n", "build context")


# ---- ADD of archives --------------------------------------------------------------------------

def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> None:
    with tarfile.open(path, "w") as tf:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tf.addfile(info, io.BytesIO(data) if data is not None else None)


def _member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, linkname, 0o644
    return info


def test_add_of_an_archive_through_a_link_out_is_refused(ctx: Ctx, tmp_path: Path) -> None:
    _tar(tmp_path / "outside.tar", [(_member("f"), MARKER)])
    ctx.link("in.tar", tmp_path / "outside.tar")
    ctx.refused("FROM busybox\nADD in.tar /x/\n", "outside the build context")


@pytest.mark.parametrize(("members", "fragment"), [
    ([(_member("../escape"), b"x")], "'..' path component refused"),
    ([(_member("/etc/escape"), b"x")], "absolute path refused"),
    ([(_member("dev", tarfile.CHRTYPE), None)], "device nodes are refused"),
    ([(_member("hard", tarfile.LNKTYPE, "../../etc/passwd"), None)], "'..' path component refused"),
])
def test_add_of_an_archive_with_escaping_members_is_refused(ctx: Ctx, members: list[Any],
                                                            fragment: str) -> None:
    _tar(ctx.dir / "evil.tar", members)
    ctx.refused("FROM busybox\nADD evil.tar /x/\n", fragment)


def test_add_keeps_an_archives_symlinks_as_links(ctx: Ctx) -> None:
    # "link -> /etc" then "link/passwd": both land in the layer as written;
    # the layer's extraction (never following links) refuses to write through it.
    _tar(ctx.dir / "links.tar", [(_member("link", tarfile.SYMTYPE, "/etc"), None),
                                 (_member("ok"), b"ok\n")])
    image = ctx.build("FROM busybox\nADD links.tar /x/\n")
    members = layer_of(ctx, image)
    assert members["x/link"].issym() and members["x/link"].linkname == "/etc"


# ---- the Containerfile and .dockerignore themselves ---------------------------------------------

@pytest.mark.parametrize("target", ["secret", "dev-zero", "fifo"])
def test_a_default_containerfile_leading_out_or_not_a_file_is_refused(ctx: Ctx, target: str) -> None:
    cf = ctx.dir / "Containerfile"
    if target == "secret":
        os.symlink(ctx.secret, cf)
    elif target == "dev-zero":
        os.symlink("/dev/zero", cf)
    else:
        os.mkfifo(cf)
    with pytest.raises(BuildError) as info:
        ctx.build("", containerfile=cf)
    assert info.value.where.endswith("Containerfile")
    assert MARKER.decode() not in str(info.value)
    assert ("outside the build context" if target != "fifo" else "not a regular file") in str(info.value)


def test_an_explicit_containerfile_outside_the_context_is_read(ctx: Ctx, tmp_path: Path) -> None:
    cf = tmp_path / "elsewhere.Containerfile"
    cf.write_text("FROM busybox\nCOPY ok.txt /ok.txt\n")
    image = ctx.build("", containerfile=cf)
    assert "ok.txt" in layer_of(ctx, image)


@pytest.mark.parametrize("target", ["secret", "/dev/zero", "fifo"])
def test_a_dockerignore_leading_out_or_not_a_file_is_refused(ctx: Ctx, target: str) -> None:
    ignore = ctx.dir / ".dockerignore"
    if target == "fifo":
        os.mkfifo(ignore)
    else:
        os.symlink(ctx.secret if target == "secret" else target, ignore)
    with pytest.raises(BuildError) as info:
        ctx.build("FROM busybox\nCOPY ok.txt /ok.txt\n")
    assert ".dockerignore" in str(info.value)
    assert MARKER.decode() not in str(info.value)


# ---- files the builder reads in the image --------------------------------------------------------

def test_chown_reading_a_fifo_or_a_link_out_in_the_image_does_not_hang_or_leak(ctx: Ctx) -> None:
    ctx.refused("FROM busybox\nRUN rm /etc/passwd && mkfifo /etc/passwd\nCOPY --chown=app ok.txt /x\n",
                "--chown: 'app' not found", where="Containerfile:3")
    # chroot semantics: the image's /etc/group -> /<secret> is the image's own path.
    ctx.refused(f"FROM busybox\nRUN ln -sf {ctx.secret} /etc/group\nCOPY --chown=0:app ok.txt /x\n",
                "--chown: 'app' not found", where="Containerfile:3")


def test_copy_from_a_stage_resolves_its_links_inside_that_stage(ctx: Ctx) -> None:
    text = (f"FROM busybox AS evil\nRUN ln -s {ctx.secret_dir} /out && ln -s / /root-link\n"
            "FROM busybox\nCOPY --from=evil /out/ /x/\n")
    ctx.refused(text, "not found in the source image", where="Containerfile:4")
    # As Docker: a source link is followed, inside that stage's root.
    image = ctx.build(f"FROM busybox AS evil\nRUN mkdir /d && echo stage > /d/f && ln -s /d /link && "
                      f"ln -s ../../../../..{ctx.secret_dir} /d/up\n"
                      "FROM busybox\nCOPY --from=evil /link/ /x/\n")
    members = layer_of(ctx, image)
    assert members["x/f"].isreg() and members["x/up"].issym()
    assert not any(name.startswith("x/up/") for name in members)
    ctx.assert_no_secret_in_store()


def test_overlong_and_odd_source_paths_give_a_build_error(ctx: Ctx) -> None:
    long_path = "/".join(["a" * 200] * 40)
    ctx.refused(f"FROM busybox\nCOPY {long_path} /x\n", "")
    ctx.refused(f"FROM busybox\nCOPY {'b' * 5000} /x\n", "")


# ---- patterns from the context and the Containerfile --------------------------------------------

BACKTRACKING = "*a" * 12 + "*b"  # Python's re takes years on it against "aaaa...": no b anywhere


@pytest.mark.timeout(120)
def test_a_pattern_built_to_backtrack_does_not_hang_the_build(ctx: Ctx) -> None:
    (ctx.dir / ("a" * 200)).write_text("a\n")
    (ctx.dir / "sub").mkdir()
    (ctx.dir / "sub" / ("a" * 200)).write_text("a\n")
    ctx.refused(f"FROM busybox\nCOPY {BACKTRACKING} /x/\n", "no source files match")
    (ctx.dir / ".dockerignore").write_text(f"{BACKTRACKING}\n**/{BACKTRACKING}\n**/**/**/**/**/**/**/x\n")
    image = ctx.build("FROM busybox\nCOPY . /app/\n")
    assert f"app/sub/{'a' * 200}" in layer_of(ctx, image)


def test_a_bad_character_class_is_a_build_error(ctx: Ctx) -> None:
    ctx.refused("FROM busybox\nCOPY [z-a]* /x/\n", "bad pattern")
    (ctx.dir / ".dockerignore").write_text("[z-a]\n")
    with pytest.raises(BuildError) as info:
        ctx.build("FROM busybox\nCOPY ok.txt /x\n")
    assert ".dockerignore" in str(info.value) and "bad pattern" in str(info.value)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab/*?[]!\\", max_size=10), st.text(alphabet="ab/", max_size=12))
def test_glob_matches_as_the_regular_expression_does(pattern: str, text: str) -> None:
    """The automaton (patterns with two or more wildcards) and the regular
    expression (the rest) agree with the pattern's expression on short texts."""
    try:
        glob = Glob(pattern)
    except ValueError:
        return
    expression = "".join(_regex_part(t) for t in glob.tokens)
    assert glob.match(text) == (re.fullmatch(expression, text, re.DOTALL) is not None), expression
