"""COPY/ADD into the image: destination rules and the layer they produce.

Docker's destination rules: a relative destination is below WORKDIR; the
destination is a directory when it ends in "/", when there are several
sources, when a source is a directory (its *contents* are copied), or when it
already is a directory in the image; otherwise a single file is written at
the destination path. Copied entries are owned by 0:0 unless ``--chown``.
Missing parent directories are created 0755 root; existing ones are written
with their current metadata, so a COPY never changes e.g. /tmp's mode.
"""

from __future__ import annotations

import os
import posixpath
import stat
import tarfile
from dataclasses import dataclass

from nodeagent.images.build.layers import LayerTar, info_from_stat
from nodeagent.images.build.rootview import lstat_in_root, resolve_in_root
from nodeagent.images.build.sources import Source
from nodeagent.images.extract import check_member
from nodeagent.images.layerbuild import LayerBlob
from nodeagent.images.layout import OciLayout


@dataclass(frozen=True)
class Owner:
    uid: int | None = None  # None: keep 0:0 (Docker's default for COPY)
    gid: int | None = None
    mode: int | None = None  # --chmod


def resolve_dest(root: str, dest: str, workdir: str) -> str:
    """Absolute image path (trailing "/" kept as a marker of "directory")."""
    is_dir = dest.endswith("/") or dest.endswith("/.") or dest in (".", "..")
    full = dest if dest.startswith("/") else posixpath.join(workdir or "/", dest)
    full = posixpath.normpath(full)
    return full.rstrip("/") + "/" if is_dir else full


def write_copy_layer(layout: OciLayout, root: str, sources: list[Source], dest: str,
                     owner: Owner, extract_tars: bool = False) -> LayerBlob:
    """Write the layer of one COPY/ADD; ``root`` is the current rootfs (read-only)."""
    existing = lstat_in_root(root, dest)
    dest_is_dir = (dest.endswith("/") or len(sources) > 1 or any(s.is_dir for s in sources)
                   or (existing is not None and stat.S_ISDIR(existing.st_mode))
                   or (extract_tars and any(_is_tar(s) for s in sources)))
    dest_rel = _in_root(root, dest.rstrip("/") or "/", dest_is_dir)
    planned: dict[str, tuple[tarfile.TarInfo, str | None]] = {}
    tars: list[str] = []
    if dest_is_dir and dest_rel:
        planned[dest_rel] = (_dir_info(root, dest_rel, owner, created=existing is None), None)
    for src in sources:
        if extract_tars and _is_tar(src):
            tars.append(src.host)
            continue
        for entry in src.entries:
            if src.is_dir or dest_is_dir:
                target = posixpath.join(dest_rel, entry.rel) if dest_rel else entry.rel
            else:
                target = dest_rel
            linkname = os.readlink(entry.host) if stat.S_ISLNK(entry.st.st_mode) else ""
            info = info_from_stat(target, entry.st, linkname)
            _apply_owner(info, owner)
            planned[target] = (info, entry.host if info.isreg() else None)
    for name in list(planned):
        _add_parents(root, name, planned)
    layer = LayerTar(layout)
    try:
        for name in sorted(planned):
            info, host = planned[name]
            if host is not None:
                layer.add_file(info, host)
            else:
                layer.add(info)
        for tar_path in tars:
            _extract_into(layer, tar_path, dest_rel)
        return layer.commit()
    except BaseException:
        layer.abort()
        raise


def _in_root(root: str, path: str, is_dir: bool) -> str:
    """Image-relative path of ``path`` with symlinks in it resolved inside ``root``."""
    if is_dir:
        host = resolve_in_root(root, path, confine=False)
        rel = os.path.relpath(host, root) if host else path.strip("/")
    else:
        parent, base = posixpath.split(path)
        host = resolve_in_root(root, parent, confine=False)
        prel = os.path.relpath(host, root) if host else parent.strip("/")
        rel = posixpath.join(prel, base)
    rel = posixpath.normpath(rel)
    return "" if rel in (".", "/") else rel.lstrip("/")


def _apply_owner(info: tarfile.TarInfo, owner: Owner) -> None:
    info.uid = owner.uid if owner.uid is not None else 0
    info.gid = owner.gid if owner.gid is not None else 0
    if owner.mode is not None and not info.issym():
        info.mode = owner.mode


def _dir_info(root: str, rel: str, owner: Owner, created: bool) -> tarfile.TarInfo:
    st = lstat_in_root(root, rel)
    if st is not None and stat.S_ISDIR(st.st_mode):
        return info_from_stat(rel, st)
    info = tarfile.TarInfo(rel)
    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
    if created:
        info.uid = owner.uid if owner.uid is not None else 0
        info.gid = owner.gid if owner.gid is not None else 0
    return info


def _add_parents(root: str, name: str, planned: dict[str, tuple[tarfile.TarInfo, str | None]]) -> None:
    parent = posixpath.dirname(name)
    while parent and parent not in planned:
        planned[parent] = (_dir_info(root, parent, Owner(), created=False), None)
        parent = posixpath.dirname(parent)


def _is_tar(src: Source) -> bool:
    return not src.is_dir and stat.S_ISREG(src.entries[0].st.st_mode) and tarfile.is_tarfile(src.host)


def _extract_into(layer: LayerTar, tar_path: str, dest_rel: str) -> None:
    """ADD of a local archive: its members below the destination (checked like a layer)."""
    with tarfile.open(tar_path, mode="r|*") as tf:
        for member in tf:
            rel = check_member(member)
            if not rel:
                continue
            target = posixpath.join(dest_rel, rel) if dest_rel else rel
            info = tarfile.TarInfo(target)
            info.type = tarfile.REGTYPE if member.type == tarfile.CONTTYPE else member.type
            info.mode, info.uid, info.gid = member.mode & 0o7777, member.uid, member.gid
            info.mtime = int(member.mtime)
            if member.islnk():
                link = check_member(tarfile.TarInfo(member.linkname))
                info.linkname = posixpath.join(dest_rel, link) if dest_rel else link
            else:
                info.linkname = member.linkname
            info.size = member.size if member.isreg() else 0
            layer.add(info, tf.extractfile(member) if member.isreg() else None)
