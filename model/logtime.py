"""The times `orch logs --since/--until` accept, as `docker logs` does.

- a duration before now: ``42m``, ``1h30m``, ``1.5s``, ``250ms`` (Go's units:
  ns, us, ms, s, m, h);
- Unix seconds: ``1700000000`` or ``1700000000.123456789``;
- RFC 3339: ``2024-05-01``, ``2024-05-01T12:00:00``, with a fraction of up
  to nine digits and ``Z`` or ``+HH:MM`` (no zone: UTC).

Each becomes the form the logs store (``2024-05-01T12:00:00.000000000Z``),
so the agent compares times as strings.
"""

from __future__ import annotations

import calendar
import re
import time

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+")
_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIX = re.compile(r"(\d+)(?:\.(\d{1,9}))?")
_RFC3339 = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)(?:[T ](\d\d):(\d\d)(?::(\d\d)(?:\.(\d{1,9}))?)?)?"
    r"(Z|[+-]\d\d:?\d\d)?", re.IGNORECASE)


def stamp(seconds: int, nanos: int = 0) -> str:
    """Unix ``seconds`` and ``nanos`` as the logs store times."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}Z"


def parse_log_time(text: str, field: str, now: float | None = None) -> str:
    """``text`` (see the module doc) as a stored time; ValueError naming ``field``."""
    text = text.strip()
    if not text:
        return ""
    if _DURATION.fullmatch(text):
        ago = sum(float(n) * _UNITS[u] for n, u in _PART.findall(text))
        at = (time.time() if now is None else now) - ago
        whole = int(at // 1)
        return stamp(whole, min(999_999_999, round((at - whole) * 1e9)))
    if m := _UNIX.fullmatch(text):
        return stamp(int(m[1]), int((m[2] or "0").ljust(9, "0")))
    if m := _RFC3339.fullmatch(text):
        year, month, day, hour, minute, sec = (int(g or 0) for g in m.groups()[:6])
        try:
            whole = calendar.timegm((year, month, day, hour, minute, sec, 0, 0, 0))
            if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and sec < 61):
                raise ValueError
        except (ValueError, OverflowError):
            raise ValueError(f"{field} {text!r}: not a valid date and time") from None
        zone = (m[8] or "Z").upper()
        if zone != "Z":
            sign = -1 if zone[0] == "-" else 1
            digits = zone[1:].replace(":", "")
            whole -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
        return stamp(whole, int((m[7] or "0").ljust(9, "0")))
    raise ValueError(f"{field} {text!r}: expected a duration (10m, 1h30m), Unix seconds, "
                     "or an RFC 3339 time (2024-05-01T12:00:00Z)")


def to_unix(stored: str) -> float:
    """A stored time (``stamp``'s form) as Unix seconds."""
    whole = calendar.timegm(time.strptime(stored[:19], "%Y-%m-%dT%H:%M:%S"))
    return whole + int(stored[20:29]) / 1e9
