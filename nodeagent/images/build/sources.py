"""COPY/ADD sources: choose files from the context (or another rootfs) safely.

Context rules: a source is relative to the context root; one that leads
outside it (``..`` or a symlink whose target is outside) is refused, as are
paths excluded by ``.dockerignore``. Globs (``*``, ``?``, ``[...]``) match
within one path component. Inside a copied directory symlinks are copied as
symlinks, never followed. Another stage's or image's rootfs is read with
chroot semantics (symlinks resolved inside it).
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import stat
from dataclasses import dataclass

from nodeagent.images.build.ignore import IgnoreRules, _compile
from nodeagent.images.build.rootview import resolve_in_root

_GLOB = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class SourceFile:
    """One file system entry to copy: ``rel`` is its path below the copy's destination."""

    rel: str
    host: str
    st: os.stat_result


@dataclass(frozen=True)
class Source:
    """One matched source: a file (``is_dir`` False, entries = itself with rel
    = basename) or a directory (entries = its contents, rel below it)."""

    name: str  # path as matched, for messages
    is_dir: bool
    host: str
    entries: list[SourceFile]


class SourceError(ValueError):
    """A source is missing, excluded or escapes (the caller adds file:line)."""


def select(root: str, patterns: list[str], rules: IgnoreRules | None, confine: bool) -> list[Source]:
    out: list[Source] = []
    for pattern in patterns:
        try:
            out += _select(root, pattern, rules, confine)
        except OSError as err:  # a path too long for the kernel, a directory that cannot be listed
            raise SourceError(f"source {pattern!r}: {err.strerror or err}")
    return out


def _select(root: str, pattern: str, rules: IgnoreRules | None, confine: bool) -> list[Source]:
    clean = posixpath.normpath("/" + pattern if not confine else pattern)
    if confine and (clean == ".." or clean.startswith("../") or pattern.startswith("/")):
        if clean == ".." or clean.startswith("../"):
            raise SourceError(f"source {pattern!r} is outside the build context")
        clean = posixpath.normpath(pattern.lstrip("/")) or "."
    clean = clean.lstrip("/") or "."
    if _GLOB.search(clean):
        matches = _glob(root, clean, rules, confine)
        if not matches:
            raise SourceError(f"no source files match {pattern!r}")
    else:
        matches = [clean]
    return [_source(root, rel, rules, confine, pattern) for rel in matches]


def _source(root: str, rel: str, rules: IgnoreRules | None, confine: bool, pattern: str) -> Source:
    host = resolve_in_root(root, rel if rel != "." else "", confine)
    if host is None:
        raise SourceError(f"source {pattern!r} leads outside the build context (via a symlink or '..')")
    real_rel = os.path.relpath(host, root)
    real_rel = "" if real_rel == "." else real_rel
    if rules is not None and rules.ignored(real_rel):
        raise SourceError(f"source {pattern!r} is excluded by .dockerignore")
    try:
        st = os.stat(host) if not confine else os.lstat(host)
    except FileNotFoundError:
        where = "the build context" if confine else "the source image"
        raise SourceError(f"source {pattern!r} not found in {where}")
    if stat.S_ISDIR(st.st_mode):
        return Source(rel, True, host, list(_walk(host, "", real_rel, rules)))
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
        raise SourceError(f"source {pattern!r} is not a regular file or directory")
    return Source(rel, False, host, [SourceFile(posixpath.basename(rel) or rel, host, st)])


def _walk(host: str, rel: str, ctx_rel: str, rules: IgnoreRules | None) -> list[SourceFile]:
    out: list[SourceFile] = []
    with os.scandir(os.path.join(host, rel) if rel else host) as it:
        names = sorted(e.name for e in it)
    for name in names:
        child = f"{rel}/{name}" if rel else name
        ctx_child = f"{ctx_rel}/{child}" if ctx_rel else child
        st = os.lstat(os.path.join(host, child))
        ignored = rules is not None and rules.ignored(ctx_child)
        if stat.S_ISDIR(st.st_mode):
            below = _walk(host, child, ctx_rel, rules) if (
                not ignored or (rules is not None and rules.may_contain_exceptions())) else []
            if not ignored or below:
                out.append(SourceFile(child, os.path.join(host, child), st))
            out.extend(below)
        elif not ignored and (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
            out.append(SourceFile(child, os.path.join(host, child), st))
    return out


def _glob(root: str, pattern: str, rules: IgnoreRules | None, confine: bool) -> list[str]:
    """Context paths matching ``pattern`` component by component (no symlink following)."""
    parts = pattern.split("/")
    found = [""]
    for depth, part in enumerate(parts):
        regex = _compile(part) if _GLOB.search(part) else None
        nxt: list[str] = []
        for base in found:
            host = os.path.join(root, base) if base else root
            if depth > 0 and (os.path.islink(host) or not os.path.isdir(host)):
                continue
            if regex is None:
                cand = f"{base}/{part}" if base else part
                if os.path.lexists(os.path.join(root, cand)):
                    nxt.append(cand)
                continue
            try:
                names = sorted(os.listdir(host))
            except (NotADirectoryError, FileNotFoundError):
                continue
            nxt.extend(f"{base}/{n}" if base else n for n in names if regex.match(n))
        found = nxt
    return [f for f in found if rules is None or not rules.ignored(f)]


def digest(sources: list[Source]) -> str:
    """Content digest of what would be copied: paths, types, modes, owners, data."""
    h = hashlib.sha256()
    for src in sources:
        h.update(f"source {src.name} dir={src.is_dir}\n".encode())
        for entry in src.entries:
            st = entry.st
            h.update(f"{entry.rel}\0{st.st_mode:o}\0{st.st_uid}:{st.st_gid}\0".encode())
            if stat.S_ISLNK(st.st_mode):
                h.update(os.readlink(entry.host).encode())
            elif stat.S_ISREG(st.st_mode):
                h.update(_file_digest(entry.host).encode())
            h.update(b"\n")
    return "sha256:" + h.hexdigest()


def _file_digest(path: str) -> str:
    fh = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        while chunk := f.read(1 << 20):
            fh.update(chunk)
    return fh.hexdigest()
