"""Secrets' and configs' names, sizes and files: the rules every way in
shares (manifests, `orch secret create`, the API, the node that mounts them).

- A name: Docker's (``SECRET_NAME_PATTERN``: letters and digits, with ``_``,
  ``.`` and ``-`` inside), at most 64 characters; a stack's secret (config)
  ``KEY`` is ``<stack>_<KEY>`` (Compose's, as for networks).
- A value: at most :data:`MAX_BYTES` (500 KiB, Docker's limit), empty allowed.
- A file in the container (``target``): a secret's relative target is under
  ``/run/secrets`` (Docker's), a config's under ``/`` (Docker's default is
  ``/<name>``). After that, an absolute, normalised path of at most
  :data:`MAX_TARGET` characters, without control characters, neither ``/``
  nor under ``/proc``, ``/sys`` or ``/dev``, nor one of the files the node
  writes itself (``/etc/hosts``, ``/etc/hostname``, ``/etc/resolv.conf``).
- Ownership and mode: ``uid``/``gid`` 0 to 2^32-2, ``mode`` 0 to 0o777
  (Docker's default 0o444; no set-id or sticky bits).

Pure: no I/O. Errors are ``ValueError`` whose message names the value and
says what is expected; callers add where it came from.
"""

from __future__ import annotations

import re

__all__ = [
    "KINDS",
    "MAX_BYTES",
    "MAX_ID",
    "MAX_MODE",
    "MAX_TARGET",
    "SECRETS_DIR",
    "SECRET_KEY_PATTERN",
    "SECRET_NAME_PATTERN",
    "check_id",
    "check_mode",
    "check_name",
    "check_size",
    "resolve_target",
    "stack_secret",
]

KINDS = ("secret", "config")
MAX_BYTES = 500 * 1024
SECRETS_DIR = "/run/secrets"
SECRET_NAME_PATTERN = r"^[a-zA-Z0-9]([a-zA-Z0-9_.-]{0,62}[a-zA-Z0-9])?$"
SECRET_KEY_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$"  # a manifest's key, as a network's
MAX_TARGET = 1024
MAX_ID = 2**32 - 2  # (uid_t)-1 means "unchanged"
MAX_MODE = 0o777
# The files the node makes itself in every container, and the kernel's trees.
_RESERVED_FILES = ("/etc/hosts", "/etc/hostname", "/etc/resolv.conf")
_RESERVED_TREES = ("/proc", "/sys", "/dev")

_NAME_RE = re.compile(SECRET_NAME_PATTERN)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_name(name: str, kind: str = "secret") -> str:
    if not _NAME_RE.fullmatch(name):
        raise ValueError(f"invalid {kind} name {name!r}: use at most 64 letters, digits, '_', '.' and '-', "
                         "starting and ending with a letter or digit")
    return name


def stack_secret(stack: str, key: str) -> str:
    """A stack's secret (config) ``key`` in the cluster: ``<stack>_<key>``."""
    return f"{stack}_{key}"


def check_size(size: int, kind: str = "secret") -> None:
    if size > MAX_BYTES:
        raise ValueError(f"the {kind} is {size} bytes: at most {MAX_BYTES} (500 KiB)")


def check_id(value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_ID:
        raise ValueError(f"invalid {what} {value!r}: expected a number from 0 to {MAX_ID}")
    return value


def check_mode(mode: int) -> int:
    if isinstance(mode, bool) or not isinstance(mode, int) or not 0 <= mode <= MAX_MODE:
        shown = f"{mode:#o}" if isinstance(mode, int) and not isinstance(mode, bool) else repr(mode)
        raise ValueError(f"invalid mode {shown}: expected permission bits from 0 to 0o777, such as 0o440")
    return mode


def resolve_target(kind: str, target: str) -> str:
    """The file's absolute path in the container (see the module docstring)."""
    if not target:
        raise ValueError(f"a {kind}'s target cannot be empty")
    if _CONTROL.search(target):
        raise ValueError(f"invalid target {target!r}: no control characters")
    path = target if target.startswith("/") else f"{SECRETS_DIR if kind == 'secret' else ''}/{target}"
    parts = path.split("/")[1:]
    if any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"invalid target {target!r}: a path without '.', '..', '//' or a trailing '/'")
    if len(path) > MAX_TARGET:
        raise ValueError(f"invalid target {target[:40]!r}...: at most {MAX_TARGET} characters")
    if path in _RESERVED_FILES or any(path == t or path.startswith(t + "/") for t in _RESERVED_TREES):
        raise ValueError(f"invalid target {target!r}: {path} is the node's to make (/proc, /sys, /dev, "
                         "/etc/hosts, /etc/hostname and /etc/resolv.conf are)")
    return path
