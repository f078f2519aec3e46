"""What a root filesystem adds to a base: the layer of an image on top of it.

    python3 rootfs_diff.py BASE.tar IMAGE.tar OUT.tar

BASE.tar and IMAGE.tar are uncompressed tarballs of whole trees (as
mmdebstrap writes them; scripts/images makes the image's tree from the
base's packages plus its own). OUT.tar gets the members of IMAGE.tar that are
new or differ from BASE.tar, in IMAGE.tar's order, with the directories above
them, so that extracting OUT.tar over BASE.tar's tree gives IMAGE.tar's.

A member differs when its type, mode, owner, link target or content does
(mtimes do not count: mmdebstrap clamps them all to SOURCE_DATE_EPOCH). A
hard link whose target is not in OUT.tar becomes a copy of the target, as a
layer cannot link into the one below it. A path of BASE.tar that IMAGE.tar
lacks cannot be expressed (that would take a whiteout, which ``ADD`` does not
make): the paths are named and the exit status is 1.

Standard library only (runs on the host's python3).
"""

from __future__ import annotations

import hashlib
import sys
import tarfile
from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    """What makes two members the same file."""

    type: bytes
    mode: int
    uid: int
    gid: int
    linkname: str
    digest: str  # sha256 of a regular file's (or a hard link target's) content; "" otherwise


def _name(member: tarfile.TarInfo) -> str:
    name = member.name.removeprefix("./").rstrip("/")
    return name or "."


def _digest(tf: tarfile.TarFile, member: tarfile.TarInfo) -> str:
    f = tf.extractfile(member)
    if f is None:
        return ""
    h = hashlib.sha256()
    while chunk := f.read(1 << 20):
        h.update(chunk)
    return h.hexdigest()


def index(tf: tarfile.TarFile) -> dict[str, tuple[tarfile.TarInfo, Entry]]:
    """Every member by normalised name, with what it is (hard links as their target's content)."""
    out: dict[str, tuple[tarfile.TarInfo, Entry]] = {}
    for member in tf.getmembers():
        name = _name(member)
        if member.islnk():
            target = out.get(_name(tarfile.TarInfo(member.linkname)))
            digest = target[1].digest if target else ""
            entry = Entry(tarfile.REGTYPE, member.mode, member.uid, member.gid, "", digest)
        elif member.isreg():
            entry = Entry(tarfile.REGTYPE, member.mode, member.uid, member.gid, "", _digest(tf, member))
        else:
            entry = Entry(member.type, member.mode, member.uid, member.gid, member.linkname, "")
        out[name] = (member, entry)
    return out


def parents(name: str) -> list[str]:
    parts = name.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def diff(base_path: str, image_path: str, out_path: str) -> list[str]:
    """Write OUT; return the paths of BASE that IMAGE lacks."""
    with tarfile.open(base_path) as base_tf, tarfile.open(image_path) as image_tf:
        base = index(base_tf)
        image = index(image_tf)
        changed = {n for n, (_, e) in image.items() if n not in base or base[n][1] != e}
        wanted = changed | {p for n in changed for p in parents(n) if p in image}
        written: set[str] = set()
        with tarfile.open(out_path, "w", format=tarfile.PAX_FORMAT) as out:
            for name, (member, _) in image.items():
                if name not in wanted:
                    continue
                target = _name(tarfile.TarInfo(member.linkname)) if member.islnk() else ""
                if member.islnk() and target not in written:
                    # Linking into the base layer is not possible: a copy instead.
                    source = image[target][0]
                    copy = tarfile.TarInfo(member.name)
                    copy.mode, copy.uid, copy.gid, copy.mtime = (member.mode, member.uid, member.gid,
                                                                 member.mtime)
                    copy.size = source.size
                    copy.pax_headers = dict(member.pax_headers)
                    out.addfile(copy, image_tf.extractfile(source))
                else:
                    out.addfile(member, image_tf.extractfile(member) if member.isreg() else None)
                written.add(name)
        return sorted(n for n in base if n not in image)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: rootfs_diff.py BASE.tar IMAGE.tar OUT.tar", file=sys.stderr)
        return 2
    try:
        missing = diff(*argv)
    except (OSError, tarfile.TarError) as err:
        print(f"rootfs_diff: {err}", file=sys.stderr)
        return 1
    if missing:
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        print(f"rootfs_diff: {argv[1]} lacks paths of {argv[0]} (a layer cannot remove them): {shown}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
