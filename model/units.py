"""Quantities and identifiers the user types and reads, with their documented limits.

Memory sizes, CPU counts, seconds, replica and pids counts, numeric uids and
hostnames: the CLI, the manifest parser, the control plane's API and the node
agent check them here, so a value refused in one place is refused in all.

Parsing follows Docker and Compose (``64m``, ``1g``: binary multiples, case
insensitive) and also accepts the Kubernetes binary forms (``64Mi``, ``1Gi``).
Every memory suffix is binary: ``1k == 1Ki == 1024``.

Limits (Docker and Compose set none of these; a value beyond them is a typo
or an attack, and each one keeps the numbers inside what the code, the wire
and the kernel can hold):

- ``MAX_REPLICAS`` = 100,000 tasks per service: a cluster of 1,000 services
  of 1,000 replicas each stays far inside it, and a single big service can
  be 100 times that; beyond it one service's tasks (about 2 KB each in etcd
  and in every control plane's cache) would crowd out everything else.
- ``MAX_MEMORY_BYTES`` = 2**62 (4 EiB): more than any machine, and with room
  below int64 (the wire) for arithmetic.
- ``MIN_CPUS`` = 0.01 (the kernel's smallest CFS quota, 1 ms per 100 ms
  period; Docker's minimum) to ``MAX_CPUS`` = 1024.
- ``MAX_PIDS`` = 4,194,304: the kernel's PID_MAX_LIMIT; it refuses a larger
  ``pids.max``. ``DEFAULT_PIDS_LIMIT`` = 4096 is a node's default for
  containers that set none (``orch agent --default-pids-limit``).
- ``MAX_ID`` = 4,294,967,294 for a numeric uid or gid: 2**32 - 1 is
  ``(uid_t)-1``, which setresuid takes as "leave unchanged" (so root stays).
- Durations, in seconds: ``MAX_STOP_GRACE_PERIOD`` 24 h (longer than any
  drain, and far below the 24.8 days a kernel timeout in milliseconds can
  hold), ``MAX_RESTART_POLICY_DELAY`` 1 h (a task retried less often than
  hourly is better off with condition ``none``), ``MAX_RESTART_POLICY_WINDOW``
  24 h.
- Hostnames: RFC 1123 labels (letters, digits, '-', at most 63 each), at
  most ``MAX_HOSTNAME`` = 64 characters in all: the kernel's HOST_NAME_MAX
  (RFC 1123's 253 cannot be set).

Invariants:
- digits are ASCII only (``\\d`` and ``int()`` also take other scripts'
  digits); no leading or trailing space; a quantity's text is at most
  ``MAX_QUANTITY_TEXT`` characters (so ``int()`` never meets a number too
  long for it);
- ``parse_memory`` returns an int in [1, ``MAX_MEMORY_BYTES``]; fractional
  byte counts are truncated, as Docker does (``1.5k == 1536``);
- ``parse_cpus`` returns a float in [``MIN_CPUS``, ``MAX_CPUS``];
- ``parse_seconds`` returns a finite float in [0, its maximum];
- bad input raises ``QuantityError`` (a ``ValueError``) whose message names
  the bad text and shows the accepted forms.

The CLI imports this module at start-up, so it imports only ``re`` and
``math``.
"""

from __future__ import annotations

import math
import re

__all__ = [
    "DEFAULT_PIDS_LIMIT",
    "MAX_CPUS",
    "MAX_HOSTNAME",
    "MAX_ID",
    "MAX_MEMORY_BYTES",
    "MAX_PIDS",
    "MAX_REPLICAS",
    "MAX_RESTART_POLICY_DELAY",
    "MAX_RESTART_POLICY_WINDOW",
    "MAX_STOP_GRACE_PERIOD",
    "MIN_CPUS",
    "QuantityError",
    "check_cpus",
    "check_hostname",
    "check_memory",
    "check_pids_limit",
    "check_seconds",
    "check_user",
    "format_bytes",
    "format_duration",
    "format_seconds",
    "parse_cpus",
    "parse_memory",
    "parse_pids_limit",
    "parse_seconds",
]

MAX_REPLICAS = 100_000
MAX_MEMORY_BYTES = 1 << 62
MIN_CPUS = 0.01
MAX_CPUS = 1024.0
MAX_PIDS = 4_194_304
DEFAULT_PIDS_LIMIT = 4096
MAX_ID = 4_294_967_294
MAX_STOP_GRACE_PERIOD = 24 * 3600.0
MAX_RESTART_POLICY_DELAY = 3600.0
MAX_RESTART_POLICY_WINDOW = 24 * 3600.0
MAX_HOSTNAME = 64
MAX_QUANTITY_TEXT = 64

# Suffix (lower-cased) -> multiplier. Docker's b/k/m/g/t/p and their "b" forms,
# Kubernetes' Ki/Mi/Gi/Ti/Pi and the IEC "KiB" forms: all binary.
_MEMORY_UNITS: dict[str, int] = {"": 1, "b": 1}
for _power, _letter in enumerate("kmgtp", start=1):
    for _suffix in (_letter, _letter + "b", _letter + "i", _letter + "ib"):
        _MEMORY_UNITS[_suffix] = 1024**_power

# Docker's RAMInBytes allows one space between the number and the unit.
_MEMORY_RE = re.compile(r"([0-9]*)(?:\.([0-9]*))?(?: ?([a-zA-Z]+))?")
_CPUS_RE = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(m?)")
_SECONDS_RE = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")
_PIDS_RE = re.compile(r"-?[0-9]+")
_NUMERIC_ID_RE = re.compile(r"[+-]?[0-9]+")
_HOST_LABEL_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")

_MEMORY_HELP = (
    "expected a positive number with an optional unit "
    "(b, k, m, g, t, p, Ki, Mi, Gi, Ti, Pi), e.g. 64Mi"
)
_CPUS_HELP = f"expected a number of CPUs from {MIN_CPUS:g} to {MAX_CPUS:g}, e.g. 0.5, 2 or 500m"


class QuantityError(ValueError):
    """A quantity or identifier (memory, CPUs, seconds, uid, hostname) is malformed or out of range."""


def _show(text: str) -> str:
    """``text`` for an error message: quoted, and cut when long (the message stays one short line)."""
    return repr(text if len(text) <= MAX_QUANTITY_TEXT else text[:MAX_QUANTITY_TEXT] + "...")


def _too_long(text: str, kind: str) -> QuantityError:
    return QuantityError(f"invalid {kind} {_show(text)}: longer than {MAX_QUANTITY_TEXT} characters")


def parse_memory(text: str) -> int:
    """Parse a memory quantity such as ``"64Mi"``, ``"64m"``, ``"1.5g"``, ``"1024"``."""
    if len(text) > MAX_QUANTITY_TEXT:
        raise _too_long(text, "memory quantity")
    match = _MEMORY_RE.fullmatch(text)
    if match is None or not (match.group(1) or match.group(2)):
        raise QuantityError(f"invalid memory quantity {_show(text)}: {_MEMORY_HELP}")
    whole, frac, suffix = match.group(1) or "0", match.group(2) or "", match.group(3) or ""
    unit = _MEMORY_UNITS.get(suffix.lower())
    if unit is None:
        raise QuantityError(
            f"invalid memory quantity {_show(text)}: unknown unit {suffix!r}; {_MEMORY_HELP}"
        )
    # Exact integer arithmetic: "1.1g" must not pick up float rounding.
    value = int(whole) * unit
    if frac:
        value += int(frac) * unit // 10 ** len(frac)
    if value <= 0:
        raise QuantityError(
            f"invalid memory quantity {_show(text)}: must be at least 1 byte; {_MEMORY_HELP}"
        )
    check_memory(value, text)
    return value


def check_memory(value: int, text: str = "") -> None:
    """``value`` bytes is within ``MAX_MEMORY_BYTES``; ``text`` is how the user wrote it."""
    if value > MAX_MEMORY_BYTES:
        raise QuantityError(f"invalid memory quantity {_show(text or str(value))}: at most "
                            f"{MAX_MEMORY_BYTES >> 50}Pi (2^62 bytes)")


def parse_cpus(text: str) -> float:
    """Parse a CPU quantity: ``"0.5"``, ``"2"`` or Kubernetes millicores ``"500m"``."""
    if len(text) > MAX_QUANTITY_TEXT:
        raise _too_long(text, "cpu quantity")
    match = _CPUS_RE.fullmatch(text)
    if match is None:
        raise QuantityError(f"invalid cpu quantity {_show(text)}: {_CPUS_HELP}")
    value = float(match.group(1))
    if match.group(2):
        value /= 1000.0
    check_cpus(value, text)
    return value


def check_cpus(value: float, text: str = "") -> None:
    """``value`` CPUs is finite and within [``MIN_CPUS``, ``MAX_CPUS``]."""
    if not math.isfinite(value) or not MIN_CPUS <= value <= MAX_CPUS:
        raise QuantityError(f"invalid cpu quantity {_show(text or repr(value))}: {_CPUS_HELP}")


def format_seconds(seconds: float) -> str:
    """A limit in the largest whole unit: ``"24h"``, ``"90s"``."""
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def parse_seconds(text: str, maximum: float, what: str = "duration") -> float:
    """A plain number of seconds (``"10"``, ``"2.5"``) from 0 to ``maximum``: no exponent,
    sign, ``inf`` or ``nan``."""
    value = float(text) if len(text) <= MAX_QUANTITY_TEXT and _SECONDS_RE.fullmatch(text) else math.nan
    if not 0 <= value <= maximum:  # also false for nan
        raise QuantityError(f"invalid {what} {_show(text)}: expected a number of seconds "
                            f"from 0 to {maximum:g} ({format_seconds(maximum)})")
    return value


def check_seconds(value: float, maximum: float, what: str = "duration", text: str = "") -> None:
    """``value`` seconds is finite and within [0, ``maximum``]."""
    if not math.isfinite(value) or not 0 <= value <= maximum:
        raise QuantityError(f"invalid {what} {_show(text or repr(value))}: at most "
                            f"{format_seconds(maximum)}, and not negative")


def parse_pids_limit(text: str, what: str = "pids limit") -> int:
    """``"100"``, ``"-1"`` (unlimited) or ``"0"`` (the node's default)."""
    if len(text) > MAX_QUANTITY_TEXT or _PIDS_RE.fullmatch(text) is None:
        raise QuantityError(f"invalid {what} {_show(text)}: expected a number of processes "
                            f"from 1 to {MAX_PIDS}, -1 for unlimited or 0 for the node's default")
    value = int(text)
    check_pids_limit(value, what)
    return value


def check_pids_limit(value: int, what: str = "pids limit", node_default: bool = True) -> None:
    """1..``MAX_PIDS``, -1 (unlimited), and 0 (the node's default) when ``node_default``."""
    if value == -1 or 1 <= value <= MAX_PIDS or (value == 0 and node_default):
        return
    default = ", or 0 for the node's default" if node_default else ""
    raise QuantityError(f"invalid {what} {value}: expected a number of processes from 1 to "
                        f"{MAX_PIDS} (the kernel's maximum), -1 for unlimited{default}")


def check_user(text: str) -> None:
    """Docker's user forms: ``uid``, ``uid:gid``, ``name``, ``name:group``. A numeric id
    must be 0..``MAX_ID``: larger ones wrap around or mean "unchanged" to the kernel."""
    parts = text.split(":")
    bad = ""
    if len(parts) > 2:
        bad = "expected USER or USER:GROUP"
    elif any(ch.isspace() or not ch.isprintable() for ch in text):
        bad = "spaces and control characters are not allowed"
    for part in parts:
        if not bad and _NUMERIC_ID_RE.fullmatch(part) and (not part.isdigit() or int(part) > MAX_ID):
            bad = f"a numeric uid or gid is 0 to {MAX_ID}"
    if bad:
        raise QuantityError(f"invalid user {_show(text)}: {bad}")


def check_hostname(text: str) -> None:
    """RFC 1123: dot-separated labels of letters, digits and '-' (not first or last), each
    at most 63 characters, at most ``MAX_HOSTNAME`` in all."""
    if len(text) > MAX_HOSTNAME or not all(_HOST_LABEL_RE.fullmatch(label) for label in text.split(".")):
        raise QuantityError(
            f"invalid hostname {_show(text)}: expected labels of letters, digits and '-' "
            f"(not at either end) separated by dots, at most {MAX_HOSTNAME} characters in all"
        )


_BYTE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def format_bytes(n: int) -> str:
    """Human form of a byte count: ``"512B"``, ``"64MiB"``, ``"1.5GiB"``.

    One decimal where needed; the output parses back with ``parse_memory``.
    """
    if n < 0:
        return "-" + format_bytes(-n)
    index = 0
    while index < len(_BYTE_UNITS) - 1 and n >= 1024 ** (index + 1):
        index += 1
    value = round(n / 1024**index, 1)
    # 1023.96KiB rounds to 1024.0: show it as 1MiB instead.
    if value >= 1024 and index < len(_BYTE_UNITS) - 1:
        index += 1
        value = round(n / 1024**index, 1)
    text = f"{value:.1f}".removesuffix(".0")
    return f"{text}{_BYTE_UNITS[index]}"


def format_duration(seconds: float) -> str:
    """Docker's human duration, as in ``docker ps`` "Up 3 seconds".

    Same thresholds as Docker's ``units.HumanDuration``.
    """
    whole = int(seconds)
    if whole < 1:
        return "Less than a second"
    if whole == 1:
        return "1 second"
    if whole < 60:
        return f"{whole} seconds"
    minutes = whole // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = math.floor(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"
