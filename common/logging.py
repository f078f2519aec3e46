"""Daemon logs: one JSON object per line on stderr, with context fields.

The agent and the control plane use structlog (``configure_logging``) and
bind context fields (node, service, task, ...) to their loggers. The
supervisor, which must stay small (structlog pulls in asyncio and ssl: 12 MB
more RSS, see :class:`JsonLogger`), uses :class:`JsonLogger`, which writes the
same shape of line. The agent names its loggers with :func:`get_logger`,
which imports structlog on first use and without its console extras.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import MutableMapping
from types import ModuleType
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger


def configure_logging(level: int = 20) -> None:  # logging.INFO, without importing logging
    """structlog's lines: ``{...context, "event", "level", "logger", "timestamp"}``,
    where ``logger`` is the name given to ``structlog.get_logger(name)``."""
    import structlog

    class NamedPrintLogger(structlog.PrintLogger):
        def __init__(self, name: str) -> None:
            super().__init__(sys.stderr)
            self.name = name

    def named(*args: Any) -> NamedPrintLogger:  # get_logger's arguments
        return NamedPrintLogger(str(args[0]) if args else "orch")

    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            _add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=named,
        cache_logger_on_first_use=True,
    )


def _add_logger_name(logger: Any, method: str,
                     event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    event_dict.setdefault("logger", getattr(logger, "name", "orch"))
    return event_dict


# structlog's console renderer (structlog.dev) looks for these optional
# packages when structlog is imported. JSON lines need none of them, and rich
# (with pygments) alone adds about 5.5 MB to a process's RSS.
_CONSOLE_EXTRAS = ("rich", "better_exceptions", "colorama")


def import_structlog() -> ModuleType:
    """structlog, imported without its console extras (unless something
    loaded them already). The agent calls it first thing, while no other
    thread imports: an extra is absent only while structlog loads."""
    if "structlog" not in sys.modules:
        blocked = [name for name in _CONSOLE_EXTRAS if name not in sys.modules]
        for name in blocked:
            sys.modules[name] = None  # type: ignore[assignment]  # ImportError, which structlog.dev expects
        try:
            import structlog
        finally:
            for name in blocked:
                del sys.modules[name]
    import structlog

    return structlog


def get_logger(name: str) -> FilteringBoundLogger:
    """``structlog.get_logger(name)``, with structlog imported (as
    :func:`import_structlog` does) when the logger is first used, not when a
    module names it: the CLI imports the agent's daemon module for its
    options, and must not pay for structlog there."""
    return cast("FilteringBoundLogger", _Deferred(name))


class _Deferred:
    __slots__ = ("_logger", "_name")

    def __init__(self, name: str) -> None:
        self._name = name
        self._logger: Any = None

    def __getattr__(self, attr: str) -> Any:
        if self._logger is None:
            self._logger = import_structlog().get_logger(self._name)
        return getattr(self._logger, attr)


class JsonLogger:
    """``log.info("event", key=value)`` -> ``{"event": ..., "level": ..., ...}``.

    The supervisor's logger: it keeps this one, not structlog, because
    importing structlog raised the supervisor's RSS from 16.1 MB to 28.3 MB
    (structlog loads asyncio, which loads ssl, and rich where installed; the
    supervisor needs none of them). Its lines have the same shape as
    :func:`configure_logging`'s.
    """

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
