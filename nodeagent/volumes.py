"""The engine's local volumes, as Docker's ``local`` driver keeps them.

A volume is a directory on the node, under the agent's state dir::

    <state>/volumes/<name>/_data        what containers see (bound at their targets)
    <state>/volumes/<name>/volume.json  name, created_at, labels, anonymous (written once)
    <state>/volumes/<name>/users/<id>   an empty file per container that uses it

Named volumes are made by ``orch volume create`` or on a container's first
use of the name; anonymous ones (a random 64-hex name) for one container: an
image's ``VOLUME`` path, ``-v /path``. A new, empty volume is filled from
the image's content at its target on first use (``populate``), unless the
mount says ``volume_nocopy``, as Docker does.

Invariants:
- ``users/`` names the containers that use the volume; the engine adds
  a container before it hands its record to the supervisor and takes it out
  once the container is removed. A listed container the supervisor no longer
  has (the agent missed its removal) does not count: every check intersects
  the list with the containers that exist (``live``).
- A volume some existing container uses, in any state, is never removed,
  with or without ``force`` (Docker's rule: ``force`` only makes a missing
  volume no error). The check and the removal hold the store's lock, as does
  every change of the list, so no container can take a volume being removed.
- ``volume.json`` is written whole (beside, then renamed) and never
  changed: a directory without it is no volume (yet, or any more).

Errors are ``common.errors`` kinds: ``InvalidArgument`` for a bad name,
``NotFound``, ``Conflict`` for a volume in use.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from common.errors import Conflict, InvalidArgument, NotFound
from model.settings import volume_name_ok

__all__ = ["Volume", "VolumeStore", "populate"]

META = "volume.json"
DATA = "_data"
ROOT = "volumes"  # under the state dir
USERS = "users"  # a file per container that uses the volume


@dataclass
class Volume:
    name: str
    mountpoint: str
    created_at: float = 0.0
    labels: dict[str, str] = field(default_factory=dict)
    anonymous: bool = False
    # Anonymous volumes of an auto-remove container go with it (``--rm``).
    auto_remove: bool = False
    owner: str = ""  # an anonymous volume's container
    containers: list[str] = field(default_factory=list)  # ids, as recorded (see the module docstring)

    def to_json(self) -> dict[str, Any]:
        """``volume.json``: written once, when the volume is made (users are files beside it)."""
        return {"name": self.name, "created_at": self.created_at, "labels": self.labels,
                "anonymous": self.anonymous, "auto_remove": self.auto_remove, "owner": self.owner}


def check_name(name: str) -> str:
    if not volume_name_ok(name):
        raise InvalidArgument(f"invalid volume name {name!r}: at least two characters, "
                              "[a-zA-Z0-9][a-zA-Z0-9_.-]+")
    return name


class VolumeStore:
    """The volumes under ``root`` (``<state>/volumes``); thread-safe."""

    def __init__(self, root: str) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._fills: dict[str, threading.Lock] = {}

    @contextlib.contextmanager
    def filling(self, name: str) -> Iterator[None]:
        """Held while volume ``name`` is filled from an image: two containers
        that start with the same new volume fill it once."""
        with self._lock:
            lock = self._fills.setdefault(name, threading.Lock())
        with lock:
            yield

    def data_dir(self, name: str) -> str:
        return os.path.join(self.root, name, DATA)

    def _users_dir(self, name: str) -> str:
        return os.path.join(self.root, name, USERS)

    # ---- reading ------------------------------------------------------------

    def _load(self, name: str) -> Volume | None:
        try:
            with open(os.path.join(self.root, name, META)) as f:
                data = json.load(f)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            # A volume whose record cannot be read still exists: shown, never lost.
            data = {"labels": {"orch.error": f"unreadable {META}: {err}"}}
        try:
            users = sorted(os.listdir(self._users_dir(name)))
        except FileNotFoundError:
            users = []
        return Volume(name=name, mountpoint=self.data_dir(name),
                      created_at=float(data.get("created_at") or 0.0),
                      labels=dict(data.get("labels") or {}), anonymous=bool(data.get("anonymous")),
                      auto_remove=bool(data.get("auto_remove")), owner=str(data.get("owner") or ""),
                      containers=users)

    def get(self, name: str) -> Volume:
        vol = self._load(check_name(name)) if volume_name_ok(name) else None
        if vol is None:
            raise NotFound(f"no such volume: {name}")
        return vol

    def all(self) -> list[Volume]:
        return [v for v in (self._load(n) for n in self._names()) if v is not None]

    def _names(self) -> list[str]:
        try:
            return sorted(n for n in os.listdir(self.root) if volume_name_ok(n))
        except FileNotFoundError:
            return []

    # ---- creating -----------------------------------------------------------

    def create(self, name: str = "", labels: dict[str, str] | None = None) -> Volume:
        """A named volume (a random name if ""); an existing one is returned as it is, as Docker does."""
        with self._lock:
            return self._create(check_name(name) if name else os.urandom(32).hex(), labels or {})

    def _create(self, name: str, labels: dict[str, str], anonymous: bool = False,
                auto_remove: bool = False, owner: str = "") -> Volume:
        vol = self._load(name)
        if vol is not None:
            return vol
        vol = Volume(name=name, mountpoint=self.data_dir(name), created_at=time.time(),
                     labels=dict(labels), anonymous=anonymous, auto_remove=auto_remove, owner=owner)
        os.makedirs(vol.mountpoint, mode=0o755, exist_ok=True)
        os.makedirs(self._users_dir(name), mode=0o700, exist_ok=True)
        os.chmod(os.path.join(self.root, name), 0o700)  # the data dir's parent: root's alone
        # volume.json last, whole (written beside, then renamed): it makes the volume one.
        path = os.path.join(self.root, name, META)
        with open(path + ".tmp", "w") as f:
            json.dump(vol.to_json(), f)
        os.replace(path + ".tmp", path)
        return vol

    def attach(self, cid: str, named: Iterable[str], anonymous: Iterable[str],
               auto_remove: bool) -> list[str]:
        """Record container ``cid`` as a user of its volumes (an empty file
        ``users/<cid>``: no rewrite of the record on a container's hot path),
        making those that do not exist (named ones on first use, its
        anonymous ones); returns the names it made, which start empty."""
        made = []
        with self._lock:
            for name, anon in [*((n, False) for n in named), *((n, True) for n in anonymous)]:
                if not os.path.exists(os.path.join(self.root, name, META)):
                    self._create(name, {}, anonymous=anon, auto_remove=anon and auto_remove,
                                 owner=cid if anon else "")
                    made.append(name)
                os.close(os.open(os.path.join(self._users_dir(name), cid),
                                 os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
        return made

    def detach(self, cid: str, remove_anonymous: bool | None) -> list[str]:
        """Container ``cid`` is gone: it no longer uses its volumes. Its own
        anonymous volumes are removed too with ``remove_anonymous`` (None:
        those made for an auto-remove container); one kept stays marked as
        its container's (a user that no longer exists counts for nothing),
        so a later ``rm -v`` still finds it. The names removed."""
        removed = []
        with self._lock:
            for name in self._names():
                mark = os.path.join(self._users_dir(name), cid)
                if not os.path.exists(mark):
                    continue
                vol = self._load(name)
                if vol is None:
                    continue
                if vol.anonymous and vol.owner == cid:
                    drop = vol.auto_remove if remove_anonymous is None else remove_anonymous
                    if drop and vol.containers == [cid]:
                        self._delete(name)
                        removed.append(name)
                    continue
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(mark)
        return removed

    # ---- removing -----------------------------------------------------------

    def remove(self, name: str, live: Mapping[str, str], force: bool = False) -> bool:
        """Remove volume ``name`` unless a container of ``live`` (the ids that
        exist, by id, with their names) uses it; with ``force`` a missing
        volume is no error (False)."""
        with self._lock:
            try:
                vol = self.get(name)
            except NotFound:
                if force:
                    return False
                raise
            users = [f"{live[c]} ({c[:12]})" for c in vol.containers if c in live]
            if users:
                raise Conflict(f"volume {name} is in use by container(s) {', '.join(users)}: "
                               "remove them first (orch rm)")
            self._delete(vol.name)
            return True

    def prune(self, live: Mapping[str, str], all: bool = False) -> list[str]:
        """Remove the volumes no container of ``live`` uses: the anonymous ones,
        with ``all`` the named ones too (Docker's ``volume prune -a``)."""
        removed = []
        with self._lock:
            for vol in self.all():
                if (vol.anonymous or all) and not any(c in live for c in vol.containers):
                    self._delete(vol.name)
                    removed.append(vol.name)
        return removed

    def _delete(self, name: str) -> None:
        path = os.path.join(self.root, name)
        # Out of the way first: a half-deleted volume is never seen as one.
        trash = os.path.join(self.root, f".removing-{name}")
        os.rename(path, trash)
        shutil.rmtree(trash, ignore_errors=True)


def _in_layer(layer: str, target: str) -> bool:
    """Whether ``layer`` has a directory at ``target``, reached without a
    symlink (one could lead out of the image, onto the node's files)."""
    path = layer
    for part in target.strip("/").split("/"):
        path = os.path.join(path, part)
        try:
            st = os.lstat(path)
        except OSError:
            return False
        if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
            return False
    return True


def populate(volume_dir: str, lower_dirs: list[str], target: str) -> bool:
    """Copy the image's content at ``target`` into the empty ``volume_dir``
    (ownership, modes and xattrs kept, with ``cp -a``), as Docker fills a new
    volume. ``lower_dirs``: the image's layers, topmost first. Nothing is
    copied when the volume is not empty, or no layer has a directory there
    (a path through a symlink included). Whether anything was copied."""
    if os.listdir(volume_dir) or not any(_in_layer(d, target) for d in lower_dirs):
        return False
    # Several layers: their merged view (whiteouts, opaque directories), from
    # a read-only overlay of them alone, in the agent's mount namespace.
    from nodeagent.images.build.rootview import merged_lowers

    with merged_lowers(lower_dirs, tempfile.gettempdir()) as root:
        if _in_layer(root, target):
            _copy(os.path.join(root, target.lstrip("/")), volume_dir)
    return True


def _copy(src: str, dest: str) -> None:
    proc = subprocess.run(["cp", "-a", "--", src + "/.", dest + "/"], capture_output=True, text=True)
    if proc.returncode != 0:
        with contextlib.suppress(OSError):  # never half-filled: empty again, for the next try
            for entry in os.listdir(dest):
                path = os.path.join(dest, entry)
                shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.unlink(path)
        raise OSError(f"cannot fill volume {dest} from the image: {proc.stderr.strip()}")


def volume_dir(state_dir: str, name: str) -> str:
    """Where volume ``name`` of the agent with ``state_dir`` keeps its files."""
    return os.path.join(state_dir, ROOT, name, DATA)
