"""Real builds: busybox base, RUN in containers, COPY from the context and other
stages, the cache, and refusals (failing RUN, hostile sources)."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path
from typing import Any

import pytest

from nodeagent.images import apply_layer
from nodeagent.images.build import BuildError, build
from nodeagent.images.model import Image
from nodeagent.images.store import ImageStore
from tests.build.conftest import write_tree


class Builder:
    def __init__(self, store: ImageStore, runtime: Any, cgroup_parent: str, ctx: Path) -> None:
        self.store, self.runtime, self.cgroup_parent, self.ctx = store, runtime, cgroup_parent, ctx
        self.lines: list[str] = []

    def __call__(self, text: str, tag: str | None = "test:1", no_cache: bool = False,
                 target: str | None = None, args: dict[str, str] | None = None) -> Image:
        (self.ctx / "Containerfile").write_text(text)
        self.lines = []
        return build(self.store, str(self.ctx), str(self.ctx / "Containerfile"), tag, args or {},
                     target, no_cache, self.runtime, self.lines.append, cgroup_parent=self.cgroup_parent)

    def verdicts(self) -> list[str]:
        return [ln.split()[1] for ln in self.lines
                if ln.startswith(" ---> ") and ln.split()[1] in ("CACHED", "done")]


@pytest.fixture
def b(store: ImageStore, runtime: Any, cgroup_parent: str, tmp_path: Path) -> Builder:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    return Builder(store, runtime, cgroup_parent, ctx)


def layer_members(store: ImageStore, digest: str) -> list[str]:
    with tarfile.open(store.layout.blob_path(digest)) as tf:
        return tf.getnames()


def flatten(store: ImageStore, image: Image, dest: Path) -> Path:
    dest.mkdir()
    for digest in image.layer_digests:
        apply_layer(store.layout.blob_path(digest), str(dest))
    return dest


MAIN = """\
FROM busybox
ARG GREETING=hello
ENV APP=/app MODE="a b"
WORKDIR $APP
RUN echo "$GREETING $MODE" > greet && mkdir -p /data && echo x > /data/gone && rm /etc/group
RUN test ! -e /etc/group && rm /data/gone && test ! -e /data/gone
COPY src/*.txt ./
COPY src/sub /app/sub/
USER 1000:1000
CMD ["cat", "greet"]
ENTRYPOINT ["/bin/sh", "-c"]
CMD cat greet
EXPOSE 80 53/udp
LABEL org.example.name=demo "other"="x y"
STOPSIGNAL SIGINT
HEALTHCHECK --interval=5s --retries=3 CMD wget -q -O- localhost || exit 1
"""


def main_context(ctx: Path) -> None:
    write_tree(ctx, {"src/a.txt": "A\n", "src/b.txt": "B\n", "src/skip.txt": "no\n",
                     "src/sub/c.txt": "C\n", "src/sub/debug.log": "no\n",
                     ".dockerignore": "src/skip.txt\n**/*.log\n"})


def test_build_layers_config_and_rootfs(b: Builder, store: ImageStore, tmp_path: Path) -> None:
    main_context(b.ctx)
    image = b(MAIN)
    assert image.repo_tags == ["test:1"]
    base = store.get("busybox")
    assert image.layer_digests[0] == base.layer_digests[0]
    run1, run2 = (layer_members(store, d) for d in image.layer_digests[2:4])
    assert "etc/.wh.group" in run1 and "app/greet" in run1 and "data/gone" in run1
    assert "data/.wh.gone" in run2
    # runtime mountpoints and placeholders never land in a layer
    for names in (run1, run2):
        assert not {"etc/hosts", "etc/hostname", "etc/resolv.conf", "proc", "sys", "dev"} & set(names)
    copy_names = layer_members(store, image.layer_digests[4])
    assert sorted(copy_names) == ["app", "app/a.txt", "app/b.txt"]
    assert sorted(layer_members(store, image.layer_digests[5])) == ["app", "app/sub", "app/sub/c.txt"]

    root = flatten(store, image, tmp_path / "flat")
    assert (root / "app/greet").read_text() == "hello a b\n"
    assert not (root / "data/gone").exists() and not (root / "etc/group").exists()
    assert (root / "etc/passwd").exists()
    assert os.stat(root / "tmp").st_mode & 0o7777 == 0o1777

    cfg = store.layout.read_json(image.id)["config"]
    assert cfg["Env"] == ["APP=/app", "MODE=a b"]
    assert cfg["WorkingDir"] == "/app" and cfg["User"] == "1000:1000"
    assert cfg["Entrypoint"] == ["/bin/sh", "-c"] and cfg["Cmd"] == ["/bin/sh", "-c", "cat greet"]
    assert cfg["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert cfg["Labels"] == {"org.example.name": "demo", "other": "x y"}
    assert cfg["StopSignal"] == "SIGINT"
    assert cfg["Healthcheck"] == {"Test": ["CMD-SHELL", "wget -q -O- localhost || exit 1"],
                                  "Interval": 5_000_000_000, "Retries": 3}
    assert store.manifest(image)["layers"][-1]["digest"] == image.layer_digests[-1]


def test_rebuild_cached_and_late_change(b: Builder) -> None:
    main_context(b.ctx)
    first = b(MAIN)
    assert "CACHED" not in b.verdicts()
    second = b(MAIN)
    assert b.verdicts() == ["CACHED"] * 15
    assert second.id == first.id
    (b.ctx / "src/sub/c.txt").write_text("changed\n")  # input of the 7th step after FROM
    third = b(MAIN)
    verdicts = b.verdicts()
    assert verdicts[:6] == ["CACHED"] * 6 and "CACHED" not in verdicts[6:]
    assert third.id != first.id and third.layer_digests[:5] == first.layer_digests[:5]
    (b.ctx / "src/sub/debug.log").write_text("ignored change\n")
    b(MAIN)
    assert b.verdicts() == ["CACHED"] * 15
    b(MAIN, no_cache=True)
    assert "CACHED" not in b.verdicts()


MULTI = """\
FROM busybox AS builder
WORKDIR /src
COPY app.c .
RUN mkdir -p /out && tr a-z A-Z < app.c > /out/app && echo built > /out/stamp

FROM busybox AS unused
RUN exit 3

FROM busybox
COPY --from=builder /out/app /srv/app
CMD ["cat", "/srv/app"]
"""


def test_multi_stage(b: Builder, store: ImageStore, tmp_path: Path) -> None:
    write_tree(b.ctx, {"app.c": "int main;\n"})
    image = b(MULTI)
    base = store.get("busybox")
    assert len(image.layer_digests) == 2 and image.layer_digests[0] == base.layer_digests[0]
    assert sorted(layer_members(store, image.layer_digests[1])) == ["srv", "srv/app"]
    root = flatten(store, image, tmp_path / "flat")
    assert (root / "srv/app").read_text() == "INT MAIN;\n"
    assert not (root / "out").exists() and not (root / "src").exists()
    assert not any("RUN exit 3" in ln for ln in b.lines)  # the unused stage was not built
    target = b(MULTI, tag="test:builder", target="builder")
    assert (flatten(store, target, tmp_path / "t") / "out/stamp").read_text() == "built\n"


def test_failing_run_names_line(b: Builder) -> None:
    with pytest.raises(BuildError) as err:
        b("FROM busybox\nENV X=1\n\nRUN echo oops && exit 7\n")
    assert err.value.where == "Containerfile:4"
    assert "exit code 7" in str(err.value)
    assert "  | oops" in b.lines


def test_hostile_sources_refused(b: Builder, tmp_path: Path) -> None:
    outside = tmp_path / "secret"
    outside.write_text("secret\n")
    os.symlink(str(outside), b.ctx / "link")
    os.symlink("../secret", b.ctx / "rel-link")
    for src, message in (("../secret", "outside the build context"),
                         ("link", "outside the build context"),
                         ("rel-link", "outside the build context"),
                         ("missing", "not found")):
        with pytest.raises(BuildError) as err:
            b(f"FROM busybox\nCOPY {src} /x\n")
        assert err.value.where == "Containerfile:2"
        assert message in str(err.value)


def test_add_tar_and_arg_in_from(b: Builder, store: ImageStore, tmp_path: Path) -> None:
    payload = tmp_path / "p"
    write_tree(payload, {"d/f.txt": "in tar\n"})
    with tarfile.open(b.ctx / "p.tar.gz", "w:gz") as tf:
        tf.add(payload / "d", arcname="d")
    image = b("ARG BASE=busybox\nFROM $BASE\nARG BASE\nADD p.tar.gz /opt/\nRUN test \"$BASE\" = busybox\n"
              "COPY --chown=app:app p.tar.gz /opt/raw.tgz\n")
    root = flatten(store, image, tmp_path / "flat")
    assert (root / "opt/d/f.txt").read_text() == "in tar\n"
    st = os.stat(root / "opt/raw.tgz")
    assert (st.st_uid, st.st_gid) == (1000, 1000)
