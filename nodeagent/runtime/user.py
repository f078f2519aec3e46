"""User resolution through the container's own /etc/passwd and /etc/group.

Accepted forms (Docker's): "", "uid", "uid:gid", "name", "name:group" (either
side numeric or a name). "" means root. Runs in the container's mount
namespace after pivot_root, so the files read are the image's. A name that
is not in the files is an error; a number need not be.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field


@dataclass
class ResolvedUser:
    uid: int
    gid: int
    groups: list[int] = field(default_factory=list)
    home: str = "/"


def _read_db(path: str) -> list[list[str]]:
    # Plain os.read: this runs in every container's setup, where a text-mode
    # file object costs more than the (small) file's parsing.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return []
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    text = b"".join(chunks).decode("utf-8", errors="replace")
    return [line.split(":") for line in text.splitlines()
            if line.strip() and not line.startswith("#")]


def _lookup_user(entries: list[list[str]], key: str) -> list[str] | None:
    numeric = key.isdigit()
    for entry in entries:
        if len(entry) >= 6 and ((entry[2] == key) if numeric else (entry[0] == key)):
            return entry
    return None


def _lookup_group(entries: list[list[str]], key: str) -> list[str] | None:
    numeric = key.isdigit()
    for entry in entries:
        if len(entry) >= 3 and ((entry[2] == key) if numeric else (entry[0] == key)):
            return entry
    return None


def resolve(spec: str, passwd: str = "/etc/passwd", group: str = "/etc/group") -> ResolvedUser:
    """Resolve a user spec; raises LookupError naming what was not found."""
    user_part, _, group_part = (spec or "0").partition(":")
    users = _read_db(passwd)
    entry = _lookup_user(users, user_part)
    if entry is None:
        if not user_part.isdigit():
            raise LookupError(f"user {user_part!r}: no matching entries in {passwd}")
        uid, gid, name, home = int(user_part), 0, "", "/"
    else:
        uid, gid, name, home = int(entry[2]), int(entry[3]), entry[0], entry[5] or "/"
    groups_db = _read_db(group)
    if group_part:
        gentry = _lookup_group(groups_db, group_part)
        if gentry is None:
            if not group_part.isdigit():
                raise LookupError(f"group {group_part!r}: no matching entries in {group}")
            gid = int(group_part)
        else:
            gid = int(gentry[2])
    extra = [gid]
    if name and not group_part:
        for gentry in groups_db:
            if len(gentry) >= 4 and name in gentry[3].split(",") and gentry[2].isdigit():
                g = int(gentry[2])
                if g not in extra:
                    extra.append(g)
    return ResolvedUser(uid, gid, extra, home)
