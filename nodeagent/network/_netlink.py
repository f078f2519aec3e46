"""Shared netlink plumbing: one place that turns a failed rtnetlink request
into a :class:`SetupError` naming the step and its arguments."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from typing import Any

from common.errors import SetupError


@contextlib.contextmanager
def netlink_step(step: str, args: Any) -> Iterator[None]:
    """Report a failing request as ``SetupError(step, args, strerror, errno)``."""
    try:
        yield
    except OSError as exc:
        raise SetupError(step, args, exc.strerror or str(exc), exc.errno or 0)


def index_of(ifname: str) -> int | None:
    """The interface index of ``ifname`` in the current namespace, or None.

    One ioctl (if_nametoindex), not a netlink dump of every link: with a
    veth per container, a dump parsed in Python made each lookup O(links).
    """
    try:
        return socket.if_nametoindex(ifname)
    except OSError:
        return None
