"""Memory/CPU quantity parsing and the CLI's human formats (orch/units.py)."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orch.units import (
    QuantityError,
    format_bytes,
    format_duration,
    parse_cpus,
    parse_memory,
)

KI, MI, GI, TI = 1 << 10, 1 << 20, 1 << 30, 1 << 40

MEMORY_CASES = [
    ("1024", 1024),
    ("1", 1),
    ("10b", 10),
    ("10B", 10),
    ("512k", 512 * KI),
    ("512K", 512 * KI),
    ("512kb", 512 * KI),
    ("512Ki", 512 * KI),
    ("512KiB", 512 * KI),
    ("64m", 64 * MI),
    ("64M", 64 * MI),
    ("64MB", 64 * MI),
    ("64Mi", 64 * MI),
    ("64mib", 64 * MI),
    ("1g", GI),
    ("1G", GI),
    ("1Gi", GI),
    ("1gb", GI),
    ("2t", 2 * TI),
    ("2Ti", 2 * TI),
    ("1p", 1 << 50),
    ("1PiB", 1 << 50),
    ("1.5g", GI + GI // 2),
    ("0.5m", MI // 2),
    (".5k", 512),
    ("1.", 1),
    (" 64m ", 64 * MI),
    ("64 m", 64 * MI),
    ("1.1g", 1181116006),  # exact: int(1.1 * 2**30), no float rounding up
    ("1.9", 1),  # fractional bytes truncate, as in Docker
]


@pytest.mark.parametrize(("text", "expected"), MEMORY_CASES)
def test_parse_memory_table(text: str, expected: int) -> None:
    assert parse_memory(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", " ", "m", "64x", "64mm", "-1", "-64m", "0", "0m", "0.0g", "0.1b", "1e3", "1.2.3", "1,5g",
     "64 Mi B", "..5", ".", "k.", "inf", "nan", "64kibi"],
)
def test_parse_memory_rejects(text: str) -> None:
    with pytest.raises(QuantityError) as info:
        parse_memory(text)
    message = str(info.value)
    assert repr(text) in message
    assert "Mi" in message  # shows the accepted forms


def test_quantity_error_is_value_error() -> None:
    with pytest.raises(ValueError, match=r"invalid memory quantity '64x'.*unknown unit 'x'"):
        parse_memory("64x")


UNITS = {"": 1, "b": 1, "k": KI, "kb": KI, "ki": KI, "kib": KI, "m": MI, "mb": MI, "mi": MI,
         "mib": MI, "g": GI, "gb": GI, "gi": GI, "gib": GI, "t": TI, "tb": TI, "ti": TI, "tib": TI}


@given(
    n=st.integers(min_value=1, max_value=10**6),
    suffix=st.sampled_from(sorted(UNITS)),
    upper=st.booleans(),
)
def test_parse_memory_every_unit(n: int, suffix: str, upper: bool) -> None:
    text = f"{n}{suffix.upper() if upper else suffix}"
    assert parse_memory(text) == n * UNITS[suffix]


@given(st.integers(min_value=1, max_value=1 << 50))
def test_format_bytes_parses_back_closely(n: int) -> None:
    back = parse_memory(format_bytes(n))
    # One decimal of a unit at most 1023.9: within 5% (exact below 1 KiB).
    assert abs(back - n) <= max(n * 0.05, 0)
    if n < KI:
        assert back == n


@given(st.integers(min_value=1, max_value=1023), st.sampled_from([1, KI, MI, GI, TI]))
def test_format_bytes_exact_multiples_round_trip(k: int, unit: int) -> None:
    assert parse_memory(format_bytes(k * unit)) == k * unit


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0B"),
        (512, "512B"),
        (1023, "1023B"),
        (1024, "1KiB"),
        (1536, "1.5KiB"),
        (64 * MI, "64MiB"),
        (GI + GI // 2, "1.5GiB"),
        (MI - 1, "1MiB"),  # 1023.999KiB rounds up into the next unit
        (3 * TI, "3TiB"),
    ],
)
def test_format_bytes_table(n: int, text: str) -> None:
    assert format_bytes(n) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0.5", 0.5), ("2", 2.0), ("500m", 0.5), ("1500m", 1.5), (".25", 0.25), ("1024", 1024.0),
     (" 1 ", 1.0), ("1m", 0.001)],
)
def test_parse_cpus_table(text: str, expected: float) -> None:
    assert parse_cpus(text) == pytest.approx(expected)


@pytest.mark.parametrize(
    "text",
    ["", "0", "0.0", "0m", "-1", "1025", "abc", "1.5x", "inf", "nan", "1e2", "2 cpus", "1" * 400],
)
def test_parse_cpus_rejects(text: str) -> None:
    with pytest.raises(QuantityError, match="invalid cpu quantity"):
        parse_cpus(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "Less than a second"),
        (0.9, "Less than a second"),
        (1, "1 second"),
        (3, "3 seconds"),
        (59.9, "59 seconds"),
        (60, "About a minute"),
        (119, "About a minute"),
        (120, "2 minutes"),
        (59 * 60, "59 minutes"),
        (3600, "About an hour"),
        (5 * 3600, "5 hours"),
        (47 * 3600, "47 hours"),
        (3 * 86400, "3 days"),
        (20 * 86400, "2 weeks"),
        (90 * 86400, "3 months"),
        (800 * 86400, "2 years"),
    ],
)
def test_format_duration_table(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_units_imports_nothing_heavy() -> None:
    # The CLI imports this module at start-up.
    code = (
        "import sys, re, math, __future__; before = set(sys.modules); import orch.units; "
        "new = sorted(set(sys.modules) - before - {'orch', 'orch.units'}); print(new)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=__file__.rsplit("/tests/", 1)[0])
    new = ast.literal_eval(out.stdout)
    # Beyond re and math (and what they import), nothing at all.
    assert new == [], new
