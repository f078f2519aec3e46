"""Quantities the user types and reads: memory sizes, CPU counts, durations.

Parsing follows Docker and Compose (``64m``, ``1g``: binary multiples, case
insensitive) and also accepts the Kubernetes binary forms (``64Mi``, ``1Gi``).
Every memory suffix is binary: ``1k == 1Ki == 1024``.

Invariants:
- ``parse_memory`` returns a positive int number of bytes (a limit of zero
  makes no sense and is rejected); fractional byte counts are truncated, as
  Docker does (``1.5k == 1536``).
- ``parse_cpus`` returns a float in (0, 1024].
- Bad input raises ``QuantityError`` (a ``ValueError``) whose message names
  the bad text and shows the accepted forms.

The CLI imports this module at start-up, so it imports only ``re`` and
``math``.
"""

from __future__ import annotations

import math
import re

__all__ = [
    "QuantityError",
    "format_bytes",
    "format_duration",
    "parse_cpus",
    "parse_memory",
]

MAX_CPUS = 1024.0

# Suffix (lower-cased) -> multiplier. Docker's b/k/m/g/t/p and their "b" forms,
# Kubernetes' Ki/Mi/Gi/Ti/Pi and the IEC "KiB" forms: all binary.
_MEMORY_UNITS: dict[str, int] = {"": 1, "b": 1}
for _power, _letter in enumerate("kmgtp", start=1):
    for _suffix in (_letter, _letter + "b", _letter + "i", _letter + "ib"):
        _MEMORY_UNITS[_suffix] = 1024**_power

_MEMORY_RE = re.compile(r"^\s*(\d*)(?:\.(\d*))?\s*([a-zA-Z]*)\s*$")
_CPUS_RE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(m?)\s*$")

_MEMORY_HELP = (
    "expected a positive number with an optional unit "
    "(b, k, m, g, t, p, Ki, Mi, Gi, Ti, Pi), e.g. 64Mi"
)
_CPUS_HELP = f"expected a number of CPUs above 0 and at most {MAX_CPUS:g}, e.g. 0.5, 2 or 500m"


class QuantityError(ValueError):
    """A memory, CPU or similar quantity could not be parsed."""


def parse_memory(text: str) -> int:
    """Parse a memory quantity such as ``"64Mi"``, ``"64m"``, ``"1.5g"``, ``"1024"``."""
    match = _MEMORY_RE.match(text)
    if match is None or not (match.group(1) or match.group(2)):
        raise QuantityError(f"invalid memory quantity {text!r}: {_MEMORY_HELP}")
    whole, frac, suffix = match.group(1) or "0", match.group(2) or "", match.group(3)
    unit = _MEMORY_UNITS.get(suffix.lower())
    if unit is None:
        raise QuantityError(
            f"invalid memory quantity {text!r}: unknown unit {suffix!r}; {_MEMORY_HELP}"
        )
    # Exact integer arithmetic: "1.1g" must not pick up float rounding.
    value = int(whole) * unit
    if frac:
        value += int(frac) * unit // 10 ** len(frac)
    if value <= 0:
        raise QuantityError(
            f"invalid memory quantity {text!r}: must be at least 1 byte; {_MEMORY_HELP}"
        )
    return value


def parse_cpus(text: str) -> float:
    """Parse a CPU quantity: ``"0.5"``, ``"2"`` or Kubernetes millicores ``"500m"``."""
    match = _CPUS_RE.match(text)
    if match is None:
        raise QuantityError(f"invalid cpu quantity {text!r}: {_CPUS_HELP}")
    value = float(match.group(1))
    if match.group(2):
        value /= 1000.0
    if not math.isfinite(value) or value <= 0 or value > MAX_CPUS:
        raise QuantityError(f"invalid cpu quantity {text!r}: {_CPUS_HELP}")
    return value


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
