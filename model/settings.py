"""A container's settings as Docker and Compose name them: one list and one
rule each, shared by the CLI (``orch run``), the manifest (a service's keys)
and the node's engine (``specbuild``, the edge that checks them last), so a
value one of them takes the others take too. Pure."""

from __future__ import annotations

import re

__all__ = ["CONTAINER_NAME_PATTERN", "SYSCTL_PATTERN", "ULIMIT_NAMES", "VOLUME_NAME_PATTERN",
           "container_name_ok", "namespaced_sysctl", "sysctl_name_ok", "volume_name_ok"]

# Docker's --ulimit names (go-units'), Compose's ulimits keys; each is the
# rlimit RLIMIT_<NAME>.
ULIMIT_NAMES = ("core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc",
                "rss", "rtprio", "rttime", "sigpending", "stack", "as")

CONTAINER_NAME_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$"
# Docker's volume names: two characters at least.
VOLUME_NAME_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{1,254}$"
SYSCTL_PATTERN = r"^[a-z0-9_]+(\.[A-Za-z0-9_-]+)+$"

# Namespaced sysctls (Docker's list): the others are the node's, not a container's.
_SYSCTL_NAMES = frozenset({"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
                           "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"})
_SYSCTL_PREFIXES = ("net.", "fs.mqueue.")

_CONTAINER_NAME_RE = re.compile(CONTAINER_NAME_PATTERN)
_VOLUME_NAME_RE = re.compile(VOLUME_NAME_PATTERN)
_SYSCTL_RE = re.compile(SYSCTL_PATTERN)


def container_name_ok(name: str) -> bool:
    return _CONTAINER_NAME_RE.fullmatch(name) is not None


def volume_name_ok(name: str) -> bool:
    return _VOLUME_NAME_RE.fullmatch(name) is not None


def sysctl_name_ok(key: str) -> bool:
    return _SYSCTL_RE.fullmatch(key) is not None


def namespaced_sysctl(key: str) -> bool:
    """Whether a container may set ``key``: net.*, kernel.shm*, kernel.msg*,
    kernel.sem and fs.mqueue.*."""
    return key in _SYSCTL_NAMES or key.startswith(_SYSCTL_PREFIXES)
