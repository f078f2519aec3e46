"""Memory/CPU quantity parsing, the documented limits and the checks of uids, hostnames,
seconds and pids counts, and the CLI's human formats (model/units.py)."""

from __future__ import annotations

import ast
import math
import re
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from model.manifest._values import CPUS_PATTERN, MEMORY_PATTERN
from model.units import (
    MAX_CPUS,
    MAX_MEMORY_BYTES,
    MAX_PIDS,
    MAX_STOP_GRACE_PERIOD,
    MIN_CPUS,
    QuantityError,
    check_cpus,
    check_hostname,
    check_pids_limit,
    check_seconds,
    check_user,
    format_bytes,
    format_duration,
    format_seconds,
    parse_cpus,
    parse_memory,
    parse_pids_limit,
    parse_seconds,
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
    ("64 m", 64 * MI),  # Docker's one space between number and unit
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
     ("10m", 0.01), ("0.01", 0.01)],
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
        "import sys, re, math, __future__; before = set(sys.modules); import model.units; "
        "new = sorted(set(sys.modules) - before - {'model', 'model.units'}); print(new)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=__file__.rsplit("/tests/", 1)[0])
    new = ast.literal_eval(out.stdout)
    # Beyond re and math (and what they import), nothing at all.
    assert new == [], new


# ---- limits: ASCII digits, no surrounding space, documented maxima ---------------------------

@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("99999999999999999999999Ti", "at most 4096Pi"),
        ("4097Pi", "at most 4096Pi"),
        ("\u0666\u0664Mi", "invalid memory quantity"),  # Arabic-Indic digits: int() would take them
        ("\u0666\u0664", "invalid memory quantity"),
        ("64Mi ", "invalid memory quantity"),
        (" 64Mi", "invalid memory quantity"),
        ("64Mi\n", "invalid memory quantity"),
        ("64  Mi", "invalid memory quantity"),
        ("64 ", "invalid memory quantity"),
        ("1_000", "invalid memory quantity"),
        ("9" * 5000, "longer than 64 characters"),  # int() would refuse 4,300 digits with a ValueError
    ],
)
def test_parse_memory_refuses_what_breaks_things(text: str, message: str) -> None:
    with pytest.raises(QuantityError, match=message) as info:
        parse_memory(text)
    assert "\n" not in str(info.value) and len(str(info.value)) < 300


def test_memory_maximum_is_accepted() -> None:
    assert parse_memory("4096Pi") == MAX_MEMORY_BYTES == 2**62
    assert parse_memory(str(2**62)) == 2**62


@pytest.mark.parametrize("text", ["0.0000001", "0.009", "9m", "1m", "\u0661", " 1", "1 ", "1\n", "1_0",
                                  "1e-07", "1025", "inf", "nan"])
def test_parse_cpus_refuses_below_the_kernels_minimum_and_odd_spellings(text: str) -> None:
    with pytest.raises(QuantityError, match=r"from 0\.01 to 1024"):
        parse_cpus(text)


@pytest.mark.parametrize("value", [0.0, 0.001, -1.0, 1024.5, math.inf, math.nan])
def test_check_cpus_bounds(value: float) -> None:
    with pytest.raises(QuantityError):
        check_cpus(value)


@pytest.mark.parametrize(("text", "seconds"), [("0", 0.0), ("10", 10.0), ("2.5", 2.5), (".5", 0.5),
                                               ("86400", 86400.0)])
def test_parse_seconds_table(text: str, seconds: float) -> None:
    assert parse_seconds(text, MAX_STOP_GRACE_PERIOD, "--stop-timeout") == seconds


@pytest.mark.parametrize("text", ["1e400", "inf", "nan", "-1", "86400.5", "1e3", "\u0665", " 5", "5 ", "",
                                  "1_0", "0x10", "9" * 400])
def test_parse_seconds_refuses(text: str) -> None:
    with pytest.raises(QuantityError, match=r"invalid --stop-timeout .*expected a number of seconds "
                                            r"from 0 to 86400 \(24h\)"):
        parse_seconds(text, MAX_STOP_GRACE_PERIOD, "--stop-timeout")


@pytest.mark.parametrize("value", [-0.001, 86400.001, math.inf, -math.inf, math.nan, 1e400])
def test_check_seconds_refuses(value: float) -> None:
    with pytest.raises(QuantityError, match="at most 24h"):
        check_seconds(value, MAX_STOP_GRACE_PERIOD, "stop timeout")


@pytest.mark.parametrize(("seconds", "text"), [(86400, "24h"), (3600, "1h"), (90, "90s"), (120, "2m"),
                                               (0.5, "0.5s")])
def test_format_seconds(seconds: float, text: str) -> None:
    assert format_seconds(seconds) == text


@pytest.mark.parametrize(("text", "value"), [("1", 1), ("-1", -1), ("0", 0), (str(MAX_PIDS), MAX_PIDS)])
def test_parse_pids_limit(text: str, value: int) -> None:
    assert parse_pids_limit(text) == value


@pytest.mark.parametrize("text", ["-2", str(MAX_PIDS + 1), "1.5", "\u0661", " 1", "", "max", "9" * 100])
def test_parse_pids_limit_refuses(text: str) -> None:
    with pytest.raises(QuantityError, match="invalid pids limit"):
        parse_pids_limit(text)


def test_pids_limit_without_a_node_default() -> None:
    check_pids_limit(0)
    with pytest.raises(QuantityError, match=r"-1 for unlimited$"):
        check_pids_limit(0, node_default=False)


@pytest.mark.parametrize("user", ["", "0", "1000", "1000:1000", "4294967294", "4294967294:4294967294",
                                  "nobody", "www-data:www-data", "1000:", "app:0", "\u0661"])
def test_check_user_accepts(user: str) -> None:
    check_user(user)


@pytest.mark.parametrize(
    ("user", "message"),
    [
        ("4294967295", "0 to 4294967294"),  # (uid_t)-1: "unchanged", so the process stays root
        ("99999999999", "0 to 4294967294"),  # truncated to 32 bits by the kernel's types
        ("0:4294967295", "0 to 4294967294"),
        ("-1", "0 to 4294967294"),
        ("+5", "0 to 4294967294"),
        ("a:b:c", "USER or USER:GROUP"),
        ("a b", "spaces and control characters"),
        ("root\0", "spaces and control characters"),
    ],
)
def test_check_user_refuses(user: str, message: str) -> None:
    with pytest.raises(QuantityError, match=message):
        check_user(user)


@pytest.mark.parametrize("name", ["web", "web-1", "web.1.abcdef12", "A1", "1", "a" * 63, "a." * 31 + "bc"])
def test_check_hostname_accepts(name: str) -> None:
    check_hostname(name)


@pytest.mark.parametrize("name", ["", "a b", "-web", "web-", "web_1", "a..b", "web.", ".web", "a" * 64,
                                  "a." * 32 + "b", "w\u00e9b", "web\n"])
def test_check_hostname_refuses(name: str) -> None:
    with pytest.raises(QuantityError, match="invalid hostname"):
        check_hostname(name)


quantity_chars = st.text("0123456789.kKmMgGtTpPiIbB \u0666\u00b2_-+e", max_size=12)


@given(quantity_chars)
def test_any_memory_that_parses_is_within_bounds_and_matches_the_schema(text: str) -> None:
    try:
        value = parse_memory(text)
    except QuantityError:
        return
    assert 1 <= value <= MAX_MEMORY_BYTES
    assert re.fullmatch(MEMORY_PATTERN, text), text  # the schema accepts what the parser does


@given(quantity_chars)
def test_any_cpus_that_parse_are_within_bounds_and_match_the_schema(text: str) -> None:
    try:
        value = parse_cpus(text)
    except QuantityError:
        return
    assert MIN_CPUS <= value <= MAX_CPUS
    assert re.fullmatch(CPUS_PATTERN, text), text


@given(st.integers(1, MAX_MEMORY_BYTES))
def test_memory_round_trips_in_bytes_and_in_its_largest_unit(n: int) -> None:
    assert parse_memory(str(n)) == n
    for unit, size in (("Pi", 1 << 50), ("Ti", 1 << 40), ("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)):
        if n % size == 0:
            assert parse_memory(f"{n // size}{unit}") == n
            break


@given(st.floats(0, MAX_STOP_GRACE_PERIOD, allow_nan=False))
def test_seconds_round_trip(seconds: float) -> None:
    text = format(seconds, "f")
    assert parse_seconds(text, MAX_STOP_GRACE_PERIOD) == float(text)
