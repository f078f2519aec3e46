"""Daemon logs: one JSON object per line on stderr, with context fields.

The agent uses structlog (``configure_logging``). The supervisor, which must
stay small (structlog pulls in asyncio and ssl: ~10 MB of RSS per process),
uses :class:`JsonLogger`, which writes the same shape of line.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any


def configure_logging(level: int = 20) -> None:  # logging.INFO, without importing logging
    import structlog

    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )


class JsonLogger:
    """``log.info("event", key=value)`` -> ``{"event": ..., "level": ..., ...}``."""

    def __init__(self, name: str, stream: Any = None) -> None:
        self.name = name
        self.stream = stream

    def _write(self, level: str, event: str, fields: dict[str, Any]) -> None:
        now = time.time()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z"
        line = json.dumps({**fields, "event": event, "level": level, "logger": self.name,
                           "timestamp": stamp}, default=str)
        stream = self.stream or sys.stderr
        stream.write(line + "\n")
        stream.flush()

    def info(self, event: str, **fields: Any) -> None:
        self._write("info", event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._write("warning", event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._write("error", event, fields)

    def exception(self, event: str, **fields: Any) -> None:
        import traceback

        self._write("error", event, {**fields, "exception": traceback.format_exc()})
