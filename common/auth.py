"""Secret files: a join token (``SWMTKN-1-...``, ``common.pki``) is kept
in a 0600 file and never in argv, where every user could read it.

``read_token`` refuses a file others can read; ``token_from`` takes a file
or an environment variable (removed from the process's environment, so
children do not inherit it); ``write_token`` makes a 0600 file. The TCP
links themselves are mutual TLS (``common.tls``), not bearer tokens.
"""

from __future__ import annotations

import os
import secrets

__all__ = ["TokenError", "read_token", "token_from", "write_token"]

TOKEN_BYTES = 24


class TokenError(Exception):
    """A token file is missing, unreadable, empty or readable by others."""


def write_token(path: str) -> str:
    """Create ``path`` with a new random token, 0600 from the first byte (an
    existing file is kept and made 0600); the token."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        os.chmod(path, 0o600)
        return read_token(path)
    token = secrets.token_hex(TOKEN_BYTES)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


def read_token(path: str) -> str:
    """The token in ``path``; refuses a file others can read (it would leak)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as err:
        raise TokenError(f"cannot read the token file {path}: {err.strerror or err}")
    with os.fdopen(fd) as f:
        mode = os.fstat(f.fileno()).st_mode
        if mode & 0o077:
            raise TokenError(f"token file {path} is readable by others (mode {mode & 0o777:o}): "
                             f"run chmod 600 {path}")
        token = f.read().strip()
    if not token:
        raise TokenError(f"token file {path} is empty")
    return token


def token_from(path: str, env: str) -> str:
    """A token from file ``path`` if given, else from the environment
    variable ``env`` (removed from this process's environment, so children
    do not inherit it); "" if neither."""
    if path:
        return read_token(path)
    return os.environ.pop(env, "").strip()
