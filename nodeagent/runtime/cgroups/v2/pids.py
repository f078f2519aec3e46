"""v2 ``pids`` controller: the files are the same as in v1 (``pids.max``, ``pids.current``)."""

from ..v1.pids import apply, current, limit

__all__ = ["apply", "current", "limit"]
