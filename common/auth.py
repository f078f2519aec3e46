"""Secret files: a join token (``SWMTKN-1-...``, ``common.pki``) is kept
in a 0600 file and never in argv, where every user could read it.

``read_token`` refuses a file others can read; ``token_from`` takes a file
or an environment variable (removed from the process's environment, so
children do not inherit it); ``write_token`` makes a 0600 file with a new
token; ``write_private`` writes any secret (a key, a certificate, a token, the
cluster record) 0600 from its first byte, atomically. The TCP
links themselves are mutual TLS (``common.tls``), not bearer tokens.
"""

from __future__ import annotations

import contextlib
import os
import secrets

__all__ = ["JOIN_TOKEN_ENV", "TokenError", "join_token", "read_token", "token_from", "write_private",
           "write_token"]

JOIN_TOKEN_ENV = "ORCH_JOIN_TOKEN"

TOKEN_BYTES = 24


class TokenError(Exception):
    """A token file is missing, unreadable, empty or readable by others."""


def write_private(path: str, data: bytes) -> None:
    """Write ``path`` (0600 from its first byte), atomically."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, mode=0o700, exist_ok=True)
    temp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(4)}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)


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


def join_token(path: str, role: str) -> str:
    """A join token for ``role`` from file ``path`` or $ORCH_JOIN_TOKEN,
    checked for its shape (``common.pki.parse_token``); TokenError saying
    which is wrong, or that there is none."""
    from common.pki import TokenError as Malformed
    from common.pki import parse_token

    token = token_from(path, JOIN_TOKEN_ENV)
    if not token:
        raise TokenError(f"--join needs the {role} join token: --token-file FILE or ${JOIN_TOKEN_ENV} "
                         "(`orch token` on a control-plane host prints it)")
    try:
        parse_token(token)
    except Malformed as err:
        raise TokenError(f"the join token{' in ' + path if path else ''}: {err}") from None
    return token
