"""Registry credentials: the config file, and WWW-Authenticate challenges.

The credentials file is Docker's ``config.json`` shape::

    {"auths": {"127.0.0.1:5000": {"auth": "<base64 of user:password>"}}}

Invariants: the file is written whole (temp file + rename) with mode 0600 and
other registries' entries are kept; a password never appears in an error
message or a ``repr``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from typing import Any

from common.errors import InvalidArgument

_PARAM = re.compile(r'([A-Za-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)

    def basic_header(self) -> str:
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return f"Basic {token}"


@dataclass(frozen=True)
class Challenge:
    scheme: str  # "basic" or "bearer" (lowercased)
    params: dict[str, str]


def parse_challenge(header: str) -> Challenge:
    """``Bearer realm="https://auth/token",service="reg",scope="repository:a:pull"``."""
    scheme, _, rest = header.strip().partition(" ")
    params = {
        m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3))
        for m in _PARAM.finditer(rest)
    }
    return Challenge(scheme.lower(), {k: v.replace('\\"', '"') for k, v in params.items()})


def load_credentials(config_path: str, registry: str) -> Credentials | None:
    """The saved credentials for ``registry`` ("host[:port]"), or None."""
    entry = (_read(config_path).get("auths") or {}).get(registry)
    if not entry or not entry.get("auth"):
        return None
    try:
        user, sep, password = base64.b64decode(entry["auth"]).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument(f"{config_path}: auths.{registry}.auth is not base64 of user:password")
    if not sep:
        raise InvalidArgument(f"{config_path}: auths.{registry}.auth lacks the ':' of user:password")
    return Credentials(user, password)


def save_credentials(config_path: str, registry: str, creds: Credentials) -> None:
    """Add or replace ``registry``'s entry; the file ends up mode 0600."""
    data = _read(config_path)
    auths = data.setdefault("auths", {})
    token = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
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
