"""Container logs: JSON lines, partial lines, rotation, reading, following."""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nodeagent.logs import MAX_LINE, LogEntry, LogFollower, LogWriter, format_time, read_logs

# Chunks as a container writes them: text, newlines, bad UTF-8, runs of bytes.
CHUNKS = st.lists(
    st.sampled_from([b"a", b"\n", b"\n\n", b"\xff", b"\xc3", b"\xa9", b"ok\n", b"x" * 90, b"\r"]),
    max_size=8,
).map(b"".join) | st.binary(max_size=200)

TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")


def lines_of(entries: list[LogEntry]) -> list[str]:
    return [e.line for e in entries]


def log_files(path: Path) -> list[Path]:
    return sorted(path.parent.glob(path.name + "*"))


# ------------------------------------------------------------------ format


def test_entry_format_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    with LogWriter(str(path), clock=lambda: 1700000000.5) as w:
        w.write("stdout", b"hello \"world\"\n")
        w.write("stderr", "caf\u00e9\n".encode())
    raw = path.read_bytes().splitlines()
    assert [json.loads(r) for r in raw] == [
        {"time": "2023-11-14T22:13:20.500000000Z", "stream": "stdout", "line": 'hello "world"'},
        {"time": "2023-11-14T22:13:20.500000000Z", "stream": "stderr", "line": "caf\u00e9"},
    ]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "1970-01-01T00:00:00.000000000Z"),
        (1700000000.000001, "2023-11-14T22:13:20.000000954Z"),  # float resolution at 1.7e9 s
        (1.9999999999, "1970-01-01T00:00:02.000000000Z"),  # nanosecond carry
    ],
)
def test_format_time(seconds: float, text: str) -> None:
    assert format_time(seconds) == text
    assert TIME_RE.match(text)


def test_default_clock_gives_rfc3339_nanos(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    with LogWriter(str(path)) as w:
        w.write("stdout", b"x\n")
    (entry,) = read_logs(str(path))
    assert TIME_RE.match(entry.time)


def test_partial_lines_buffered_per_stream(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    w = LogWriter(str(path))
    w.write("stdout", b"ab")
    w.write("stderr", b"x\ny")
    w.write("stdout", b"c\nd\n\n")
    assert [(e.stream, e.line) for e in read_logs(str(path))] == [
        ("stderr", "x"), ("stdout", "abc"), ("stdout", "d"), ("stdout", ""),
    ]
    w.close()  # flushes the partial "y"
    assert read_logs(str(path))[-1] == LogEntry(read_logs(str(path))[-1].time, "stderr", "y")
    w.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        w.write("stdout", b"late\n")


def test_unknown_stream_rejected(tmp_path: Path) -> None:
    with LogWriter(str(tmp_path / "c.log")) as w, pytest.raises(ValueError, match="stdin"):
        w.write("stdin", b"x\n")


def test_invalid_utf8_replaced(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    with LogWriter(str(path)) as w:
        w.write("stdout", b"\xff\xfeok\r\n")
    assert lines_of(read_logs(str(path))) == ["\ufffd\ufffdok\r"]


def test_entries_visible_before_close(tmp_path: Path) -> None:
    # No user-space buffering: another reader sees each complete line at once.
    path = tmp_path / "c.log"
    w = LogWriter(str(path))
    w.write("stdout", b"one\ntw")
    assert path.read_bytes().endswith(b"\n")
    assert lines_of(read_logs(str(path))) == ["one"]
    w.close()


def test_long_line_split_at_16k(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    data = bytes(range(65, 91)) * 2000  # 52000 bytes, no newline
    with LogWriter(str(path)) as w:
        w.write("stdout", data[:30000])
        # Memory stays bounded: only the part below 16 KiB is held back.
        assert [len(e.line) for e in read_logs(str(path))] == [MAX_LINE]
        w.write("stdout", data[30000:] + b"\n")
    pieces = lines_of(read_logs(str(path)))
    assert [len(p) for p in pieces] == [MAX_LINE, MAX_LINE, MAX_LINE, 52000 - 3 * MAX_LINE]
    assert "".join(pieces).encode() == data


def test_long_line_split_keeps_utf8_characters(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    text = "\u00e9\u20ac\U0001f600" * 5000  # 2-, 3- and 4-byte characters
    with LogWriter(str(path)) as w:
        w.write("stderr", text.encode() + b"\n")
    pieces = lines_of(read_logs(str(path)))
    assert len(pieces) > 1
    assert all(len(p.encode()) <= MAX_LINE for p in pieces)
    assert "".join(pieces) == text  # no character cut in half


def test_reopen_appends(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    with LogWriter(str(path)) as w:
        w.write("stdout", b"first run\n")
    with LogWriter(str(path)) as w:
        w.write("stdout", b"second run\n")
    assert lines_of(read_logs(str(path))) == ["first run", "second run"]


# ---------------------------------------------------------------- rotation


def write_numbered(w: LogWriter, start: int, count: int) -> list[str]:
    lines = [f"line {i:05d}" for i in range(start, start + count)]
    for line in lines:
        w.write("stdout", line.encode() + b"\n")
    return lines


def test_rotation_keeps_max_files_and_sizes(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    w = LogWriter(str(path), max_bytes=1000, max_files=3)
    written = write_numbered(w, 0, 200)
    w.close()
    files = log_files(path)
    assert [f.name for f in files] == ["c.log", "c.log.1", "c.log.2"]
    assert all(f.stat().st_size <= 1000 for f in files)
    got = lines_of(read_logs(str(path)))
    assert got == written[-len(got):]  # the newest lines, in order
    assert len(got) >= 2 * (1000 // 80)  # two full files at least


def test_rotation_single_file(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    with LogWriter(str(path), max_bytes=500, max_files=1) as w:
        written = write_numbered(w, 0, 50)
    assert [f.name for f in log_files(path)] == ["c.log"]
    got = lines_of(read_logs(str(path)))
    assert 0 < len(got) < 50 and got == written[-len(got):]


def test_entry_bigger_than_max_bytes_still_written(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    with LogWriter(str(path), max_bytes=10, max_files=2) as w:
        w.write("stdout", b"a line far longer than ten bytes\nand another\n")
    assert lines_of(read_logs(str(path))) == ["a line far longer than ten bytes", "and another"]


@settings(max_examples=60, deadline=None)
@given(
    chunks=st.lists(CHUNKS, max_size=40),
    max_bytes=st.integers(min_value=50, max_value=2000),
    max_files=st.integers(min_value=1, max_value=6),
)
def test_rotation_property(chunks: list[bytes], max_bytes: int, max_files: int) -> None:
    """Never more than max_files files; what is kept is the newest lines, in order;
    with room for everything, no complete line is lost."""
    data = b"".join(chunks)
    expected = [ln.decode("utf-8", "replace") for ln in data.split(b"\n")[:-1]]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.log"
        w = LogWriter(str(path), max_bytes=max_bytes, max_files=max_files)
        for chunk in chunks:
            w.write("stdout", chunk)
        got = lines_of(read_logs(str(path)))
        assert len(log_files(path)) <= max_files
        if expected:  # lines here are far below 16 KiB, so one entry each
            assert got and got == expected[-len(got):]
        w.close()
        # Same data with room for everything keeps every line.
        big = Path(tmp) / "big.log"
        with LogWriter(str(big), max_bytes=max_bytes, max_files=10_000) as wb:
            for chunk in chunks:
                wb.write("stdout", chunk)
        tail = data.rsplit(b"\n", 1)[-1] if data else b""
        final = [tail.decode("utf-8", "replace")] if tail else []
        assert lines_of(read_logs(str(big))) == expected + final


# ------------------------------------------------------------------ reading


def test_read_logs_missing_is_empty(tmp_path: Path) -> None:
    assert read_logs(str(tmp_path / "nothing.log")) == []
    assert read_logs(str(tmp_path / "nothing.log"), tail=5) == []


def test_read_logs_tail_across_files(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    with LogWriter(str(path), max_bytes=400, max_files=50) as w:
        written = write_numbered(w, 0, 100)
    assert len(log_files(path)) > 5
    assert lines_of(read_logs(str(path))) == written
    for n in (0, 1, 7, 33, 100, 500):
        assert lines_of(read_logs(str(path), tail=n)) == (written[-n:] if n else [])
    with pytest.raises(ValueError):
        read_logs(str(path), tail=-1)


def test_read_logs_tail_long_lines_across_read_chunks(tmp_path: Path) -> None:
    # Entries larger than the backwards-read chunk must still come out whole.
    path = tmp_path / "c.log"
    lines = [(f"{i:03d}" + "x" * 15000) for i in range(40)]
    with LogWriter(str(path)) as w:
        for line in lines:
            w.write("stdout", line.encode() + b"\n")
    assert lines_of(read_logs(str(path), tail=9)) == lines[-9:]
    assert lines_of(read_logs(str(path), tail=1)) == lines[-1:]


def test_read_logs_skips_damaged_and_incomplete_lines(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    with LogWriter(str(path)) as w:
        w.write("stdout", b"good 1\n")
    with path.open("ab") as f:
        f.write(b"{not json\n")
    with LogWriter(str(path)) as w:
        w.write("stdout", b"good 2\n")
    with path.open("ab") as f:
        f.write(b'{"time":"t","stream":"stdout","li')  # a writer died mid-entry
    assert lines_of(read_logs(str(path))) == ["good 1", "good 2"]
    assert lines_of(read_logs(str(path), tail=1)) == ["good 2"]


# ---------------------------------------------------------------- following


def test_follower_starts_at_end_and_sees_new_lines(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    w = LogWriter(str(path))
    write_numbered(w, 0, 5)
    with LogFollower(str(path)) as f:
        assert f.poll() == []
        new = write_numbered(w, 5, 3)
        assert lines_of(f.poll()) == new
        assert f.poll() == []
    w.close()


@pytest.mark.parametrize("tail", [None, 0, 1, 4, 100])
def test_follower_tail_start(tmp_path: Path, tail: int | None) -> None:
    path = tmp_path / "c.log"
    w = LogWriter(str(path), max_bytes=300, max_files=20)
    old = write_numbered(w, 0, 20)
    f = LogFollower(str(path), tail=tail)
    expected = old if tail is None else (old[-tail:] if tail else [])
    new = write_numbered(w, 20, 2)
    assert lines_of(f.poll()) == expected + new
    f.close()
    w.close()


def test_follower_waits_for_complete_line(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    path.write_bytes(b"")
    f = LogFollower(str(path))
    entry = b'{"time":"2024-01-01T00:00:00.000000000Z","stream":"stdout","line":"hi"}\n'
    with path.open("ab", buffering=0) as out:
        out.write(entry[:20])
        assert f.poll() == []
        out.write(entry[20:-1])
        assert f.poll() == []
        out.write(entry[-1:] + entry[:5])
        assert f.poll() == [LogEntry("2024-01-01T00:00:00.000000000Z", "stdout", "hi")]
        out.write(entry[5:])
        assert lines_of(f.poll()) == ["hi"]
    f.close()


def test_follower_log_created_later(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    f = LogFollower(str(path))
    assert f.poll() == []
    with LogWriter(str(path)) as w:
        lines = write_numbered(w, 0, 3)
    assert lines_of(f.poll()) == lines
    f.close()


def test_follower_across_rotations(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    w = LogWriter(str(path), max_bytes=300, max_files=100)
    f = LogFollower(str(path))
    seen: list[str] = []
    written: list[str] = []
    for batch in range(30):
        written += write_numbered(w, len(written), batch % 7)  # 0..6 lines, several rotations
        seen += lines_of(f.poll())
    w.close()
    seen += lines_of(f.poll())
    assert seen == written
    f.close()


def test_follower_single_file_rotation(tmp_path: Path) -> None:
    # max_files=1: the file is replaced; the follower finishes the old one first.
    path = tmp_path / "c.log"
    w = LogWriter(str(path), max_bytes=200, max_files=1)
    f = LogFollower(str(path))
    seen: list[str] = []
    written: list[str] = []
    for _ in range(20):
        written += write_numbered(w, len(written), 1)
        seen += lines_of(f.poll())
    assert seen == written
    w.close()
    f.close()


def test_follower_fell_behind_past_max_files(tmp_path: Path) -> None:
    # Files that fell off unread are gone (except the one still held open);
    # what remains still comes in order, once, ending with the newest line.
    path = tmp_path / "c.log"
    w = LogWriter(str(path), max_bytes=200, max_files=2)
    f = LogFollower(str(path))
    written = write_numbered(w, 0, 40)
    got = lines_of(f.poll())
    assert got[0] == written[0]
    assert got == sorted(set(got))
    assert got[-2:] == written[-2:]
    assert len(got) < len(written)
    more = write_numbered(w, 40, 1)
    assert lines_of(f.poll()) == more
    w.close()
    f.close()


@settings(max_examples=50, deadline=None)
@given(
    steps=st.lists(
        CHUNKS,
        max_size=50,
    ),
    polls=st.lists(st.booleans(), min_size=50, max_size=50),
    max_bytes=st.integers(min_value=60, max_value=1500),
)
def test_follower_exactly_once_property(
    steps: list[bytes], polls: list[bool], max_bytes: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "c.log")
        w = LogWriter(path, max_bytes=max_bytes, max_files=10_000)
        f = LogFollower(path)
        seen: list[str] = []
        for chunk, poll in zip(steps, polls, strict=False):
            w.write("stdout", chunk)
            if poll:
                seen += lines_of(f.poll())
        w.close()
        seen += lines_of(f.poll())
        f.close()
        assert seen == lines_of(read_logs(path))


def test_follower_wait_uses_injected_clock_and_sleep(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    now = [0.0]
    sleeps: list[float] = []
    w = LogWriter(str(path))

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds
        if len(sleeps) == 3:
            w.write("stdout", b"arrived\n")

    f = LogFollower(str(path), clock=lambda: now[0], sleep=sleep)
    assert lines_of(f.wait(timeout=10, interval=0.5)) == ["arrived"]
    assert sleeps == [0.5, 0.5, 0.5]
    assert f.wait(timeout=1, interval=0.25) == []
    assert now[0] == pytest.approx(2.5)
    f.close()
    w.close()


def test_follower_with_concurrent_writer_process(tmp_path: Path) -> None:
    """A real writer process rotating fast while this process follows."""
    path = str(tmp_path / "c.log")
    total = 5000
    f = LogFollower(path)
    pid = os.fork()
    if pid == 0:  # child: write and leave without running pytest's cleanup
        code = 0
        try:
            with LogWriter(path, max_bytes=2000, max_files=100_000) as w:
                for i in range(total):
                    w.write("stdout" if i % 2 else "stderr", f"n{i}\n".encode())
        except BaseException:
            code = 1
        os._exit(code)
    seen: list[str] = []
    try:
        while True:
            seen += lines_of(f.poll())
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                assert os.waitstatus_to_exitcode(status) == 0
                break
    finally:
        if not done:
            os.waitpid(pid, 0)
    seen += lines_of(f.poll())
    f.close()
    assert seen == [f"n{i}" for i in range(total)]
    assert len(log_files(Path(path))) > 10
