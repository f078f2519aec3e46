"""Registry credentials in Docker's ``config.json`` shape::

    {"auths": {"127.0.0.1:5000": {"auth": "<base64 of user:password>"}}}

A key may also be written as a URL (``https://host:5000/v1/``), as Docker
writes Docker Hub's (``https://index.docker.io/v1/``); lookups compare the
host[:port] only, and ``docker.io`` also finds Docker Hub's other names.
Credential helpers (``credsStore``, ``credHelpers``) are not run.

Invariants: the file is written whole (temp file + rename) with mode 0600 and
other registries' entries, and any other keys, are kept; a password never
appears in an error message or a ``repr``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from typing import Any

from common.errors import InvalidArgument

_HUB_NAMES = ("docker.io", "index.docker.io", "registry-1.docker.io")


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)

    def basic_header(self) -> str:
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return f"Basic {token}"


def load_credentials(config_path: str, registry: str) -> Credentials | None:
    """The saved credentials for ``registry`` ("host[:port]"), or None."""
    auths = _read(config_path).get("auths") or {}
    wanted = _HUB_NAMES if registry in _HUB_NAMES else (registry,)
    key = next((k for k in auths if _host_key(k) in wanted), None)
    entry = auths.get(key) if key is not None else None
    if not isinstance(entry, dict) or not entry.get("auth"):
        return None
    try:
        user, sep, password = base64.b64decode(entry["auth"]).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument(f"{config_path}: auths.{key}.auth is not base64 of user:password")
    if not sep:
        raise InvalidArgument(f"{config_path}: auths.{key}.auth lacks the ':' of user:password")
    return Credentials(user, password)


def save_credentials(config_path: str, registry: str, creds: Credentials) -> None:
    """Add or replace ``registry``'s entry; the file ends up mode 0600."""
    data = _read(config_path)
    auths = data.setdefault("auths", {})
    token = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
    for key in [k for k in auths if _host_key(k) == registry and k != registry]:
        del auths[key]  # one entry per registry, whichever way it was written
    auths[registry] = {"auth": token}
    directory = os.path.dirname(os.path.abspath(config_path))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-auth-")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2)
        os.rename(tmp, config_path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _host_key(key: str) -> str:
    """ "https://host:5000/v1/" -> "host:5000"; a plain key is itself."""
    rest = key.split("://", 1)[1] if "://" in key else key
    return rest.split("/", 1)[0]


def _read(config_path: str) -> dict[str, Any]:
    try:
        with open(config_path) as f:
            data = json.load(f)
    except FileNotFoundError:
        return {}
    except json.JSONDecodeError as e:
        raise InvalidArgument(f"{config_path}:{e.lineno}: not valid JSON: {e.msg}")
    if not isinstance(data, dict):
        raise InvalidArgument(f"{config_path}: expected a JSON object")
    return data
