"""Following a task's lines across broken streams (controlplane.api.proxy.LogCursor),
the times `orch logs --since/--until` accept (model.logtime), and the agent's
batching and time window (nodeagent.logs)."""

from __future__ import annotations

import calendar
import time
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controlplane.api.proxy import LogCursor
from model.logtime import parse_log_time, stamp
from nodeagent.logs import LogEntry, batched, check_time, format_time, within


@dataclass(frozen=True)
class Line:
    time: str
    n: int


def _agent(lines: list[Line], since: str) -> list[Line]:
    """What a resumed agent stream sends: the lines with time >= since."""
    return [ln for ln in lines if ln.time >= since]


@given(st.lists(st.integers(0, 3), min_size=1, max_size=60),
       st.lists(st.integers(1, 20), max_size=8), st.integers(1, 7))
def test_every_line_once_in_order_however_the_stream_breaks(
        gaps: list[int], cuts: list[int], batch: int) -> None:
    # Times that repeat (gap 0) as a fast writer's do.
    at, lines = 0, []
    for n, gap in enumerate(gaps):
        at += gap
        lines.append(Line(f"t{at:06d}", n))
    cursor, got = LogCursor(), []
    sent = 0  # lines of the current stream delivered so far
    stream = _agent(lines, cursor.since)
    for cut in [*cuts, 10**9]:
        # The stream delivers `cut` more lines in batches, then breaks.
        end = min(len(stream), sent + cut)
        while sent < end:
            got += cursor.fresh(stream[sent:min(end, sent + batch)])
            sent = min(end, sent + batch)
        cursor.resume()
        stream, sent = _agent(lines, cursor.since), 0
    assert [ln.n for ln in got] == [ln.n for ln in lines]


def test_a_resume_drops_only_the_lines_already_sent_at_the_cursors_time() -> None:
    cursor = LogCursor()
    assert [ln.n for ln in cursor.fresh([Line("a", 0), Line("b", 1), Line("b", 2)])] == [0, 1, 2]
    cursor.resume()
    # The node logged another line at "b" while it was gone.
    assert [ln.n for ln in cursor.fresh([Line("b", 1), Line("b", 2), Line("b", 3), Line("c", 4)])] == [3, 4]
    assert (cursor.since, cursor.at_since) == ("c", 1)


def test_a_cursor_starts_at_since() -> None:
    assert LogCursor("t5").since == "t5"


# ---- model.logtime ------------------------------------------------------------

NOW = calendar.timegm((2024, 5, 1, 12, 0, 0, 0, 0, 0)) + 0.5


@pytest.mark.parametrize(("text", "want"), [
    ("", ""),
    ("10m", "2024-05-01T11:50:00.500000000Z"),
    ("1h30m", "2024-05-01T10:30:00.500000000Z"),
    ("1.5s", "2024-05-01T11:59:59.000000000Z"),
    ("250ms", "2024-05-01T12:00:00.250000000Z"),
    ("1714564800", "2024-05-01T12:00:00.000000000Z"),
    ("1714564800.000000001", "2024-05-01T12:00:00.000000001Z"),
    ("2024-05-01", "2024-05-01T00:00:00.000000000Z"),
    ("2024-05-01T12:00:00Z", "2024-05-01T12:00:00.000000000Z"),
    ("2024-05-01T12:00", "2024-05-01T12:00:00.000000000Z"),
    ("2024-05-01T12:00:00.123Z", "2024-05-01T12:00:00.123000000Z"),
    ("2024-05-01T14:00:00.5+02:00", "2024-05-01T12:00:00.500000000Z"),
    ("2024-05-01T07:30:00-0430", "2024-05-01T12:00:00.000000000Z"),
])
def test_log_times(text: str, want: str) -> None:
    assert parse_log_time(text, "--since", now=NOW) == want


@pytest.mark.parametrize("text", ["yesterday", "10 m", "2024-13-01", "2024-05-01T25:00", "-5m", "1d"])
def test_bad_log_times_name_the_flag(text: str) -> None:
    with pytest.raises(ValueError, match=r"^--until '"):
        parse_log_time(text, "--until", now=NOW)


@given(st.integers(0, 2**33), st.integers(0, 999_999_999))
def test_unix_and_rfc3339_forms_agree_with_the_stored_form(seconds: int, nanos: int) -> None:
    text = stamp(seconds, nanos)
    assert check_time(text, "since") == text
    assert parse_log_time(f"{seconds}.{nanos:09d}", "--since") == text
    assert parse_log_time(text, "--since") == text


def test_stored_times_and_stamps_are_one_form() -> None:
    now = time.time()
    assert check_time(format_time(now), "since")
    assert stamp(0) == "1970-01-01T00:00:00.000000000Z"


# ---- nodeagent.logs -------------------------------------------------------------

def _entries(times: list[str]) -> list[LogEntry]:
    return [LogEntry(t, "stdout", f"line {i}") for i, t in enumerate(times)]


def test_within_keeps_since_and_drops_until() -> None:
    entries = _entries(["a", "b", "c", "d"])
    assert [e.time for e in within(entries, "b", "d")] == ["b", "c"]
    assert within(entries) == entries


def test_a_time_in_another_form_is_refused() -> None:
    with pytest.raises(ValueError, match="since '2024-05-01'"):
        check_time("2024-05-01", "since")


@given(st.lists(st.integers(0, 40_000), max_size=300), st.integers(1, 50), st.integers(1, 100_000))
def test_batches_keep_every_entry_in_order_within_their_limits(
        sizes: list[int], max_lines: int, max_bytes: int) -> None:
    entries = [LogEntry("t", "stdout", "x" * n) for n in sizes]
    runs = batched(entries, max_lines, max_bytes)
    assert [e for run in runs for e in run] == entries
    for run in runs:
        assert run and len(run) <= max_lines
        # Over the byte budget only by its last entry.
        assert sum(len(e.line) + 48 for e in run[:-1]) < max_bytes
