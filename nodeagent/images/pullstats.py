"""Counts of the node's image pulls (``orch pull`` and a task's registry
image alike), for the agent's metrics: how many ended well or not, and
the seconds they took. Process-wide and thread-safe; nothing is kept but
three numbers."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

__all__ = ["counting", "snapshot"]

_lock = threading.Lock()
_counts = {"ok": 0, "failed": 0}
_seconds = 0.0


@contextlib.contextmanager
def counting() -> Iterator[None]:
    """Count the pull the body runs: failed if it raises (or is abandoned)."""
    global _seconds
    started = time.monotonic()
    result = "failed"
    try:
        yield
        result = "ok"
    finally:
        with _lock:
            _counts[result] += 1
            _seconds += time.monotonic() - started


def snapshot() -> tuple[dict[str, int], float]:
    """(pulls by result, seconds spent pulling) so far."""
    with _lock:
        return dict(_counts), _seconds
