"""Per-container logs: JSON lines on disk, rotated by size, read and followed.

One entry per line::

    {"time":"2024-05-01T12:00:00.123456789Z","stream":"stdout","line":"hello"}

``time`` is RFC 3339 in UTC with nine fractional digits; ``line`` is the text
without its newline, decoded as UTF-8 with bad bytes replaced.

Files: ``path`` is the live file, ``path.1`` the previous one, up to
``path.<max_files-1>``; rotating renames each one up a slot (the oldest falls
off) and starts a new ``path``.

Invariants:
- Each entry reaches the file with a single ``os.write`` on an unbuffered
  O_APPEND descriptor, so a reader sees whole lines as soon as they are logged.
- A file is never larger than ``max_bytes`` unless a single entry is.
- Every file except the live one ends in a complete line.
- A writer holds at most one 16 KiB partial line per stream: the supervisor
  keeps one writer per container, hundreds at a time.
- A ``LogFollower`` returns every entry once, in order, across rotations, as
  long as it polls before an unread file falls off the end.
"""

from __future__ import annotations

import json
import os
import re
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["MAX_LINE", "STREAMS", "LogEntry", "LogFollower", "LogWriter", "batched", "check_time",
           "read_logs", "within"]

STREAMS = ("stdout", "stderr")
# A line longer than this is logged in pieces, like Docker's 16K split.
MAX_LINE = 16 * 1024
_READ_CHUNK = 64 * 1024
# The writer renames files one by one; a scan that raced with it is retried.
_SCAN_ATTEMPTS = 20


@dataclass(frozen=True)
class LogEntry:
    time: str
    stream: str
    line: str

    def to_dict(self) -> dict[str, str]:
        return {"time": self.time, "stream": self.stream, "line": self.line}


def format_time(seconds: float) -> str:
    """RFC 3339 UTC with nanoseconds, e.g. ``2024-05-01T12:00:00.000000001Z``."""
    whole = int(seconds // 1)
    nanos = round((seconds - whole) * 1e9)
    if nanos >= 1_000_000_000:
        whole, nanos = whole + 1, nanos - 1_000_000_000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{nanos:09d}Z"


def _encode(stamp: str, stream: str, raw: bytes) -> bytes:
    text = raw.decode("utf-8", errors="replace")
    obj = {"time": stamp, "stream": stream, "line": text}
    return (json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


def _split_point(buf: bytes) -> int:
    """Where to cut an over-long line: at MAX_LINE, backed off so no UTF-8 character splits."""
    cut = MAX_LINE
    # Continuation bytes are 0b10xxxxxx; a character is at most 4 bytes long.
    while cut > MAX_LINE - 3 and (buf[cut] & 0xC0) == 0x80:
        cut -= 1
    return cut if (buf[cut] & 0xC0) != 0x80 else MAX_LINE


def _rotated(path: str, index: int) -> str:
    return path if index == 0 else f"{path}.{index}"


class LogWriter:
    """Append a container's output to ``path`` as JSON lines, rotating by size."""

    def __init__(
        self,
        path: str,
        max_bytes: int = 10 << 20,
        max_files: int = 3,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_bytes <= 0 or max_files < 1:
            raise ValueError(f"need max_bytes > 0 and max_files >= 1, got {max_bytes}, {max_files}")
        self.path = path
        self.max_bytes = max_bytes
        self.max_files = max_files
        self._clock = clock
        self._partial: dict[str, bytes] = {}
        self._fd = -1
        self._size = 0
        self._open()

    def write(self, stream: str, data: bytes) -> None:
        """Log ``data`` read from ``stream``; an unfinished last line waits for more."""
        if stream not in STREAMS:
            raise ValueError(f"unknown log stream {stream!r}: expected one of {STREAMS}")
        if self._fd < 0:
            raise ValueError(f"log writer for {self.path} is closed")
        buf = self._partial.pop(stream, b"") + data
        *lines, rest = buf.split(b"\n")
        for line in lines:
            self._emit(stream, self._emit_long(stream, line))
        rest = self._emit_long(stream, rest)
        if rest:
            self._partial[stream] = rest

    def close(self) -> None:
        """Log any unfinished lines and close the file; idempotent."""
        if self._fd < 0:
            return
        for stream in STREAMS:
            rest = self._partial.pop(stream, b"")
            if rest:
                self._emit(stream, rest)
        os.close(self._fd)
        self._fd = -1

    def __enter__(self) -> LogWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open(self) -> None:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        self._fd = os.open(self.path, flags, 0o640)
        self._size = os.fstat(self._fd).st_size

    def _emit_long(self, stream: str, line: bytes) -> bytes:
        """Log 16 KiB pieces off the front of ``line``; return the rest (at most 16 KiB)."""
        while len(line) > MAX_LINE:
            cut = _split_point(line)
            self._emit(stream, line[:cut])
            line = line[cut:]
        return line

    def _emit(self, stream: str, raw: bytes) -> None:
        entry = _encode(format_time(self._clock()), stream, raw)
        if self._size > 0 and self._size + len(entry) > self.max_bytes:
            self._rotate()
        view = memoryview(entry)
        while view:  # one write for a regular file; the loop only guards short writes
            written = os.write(self._fd, view)
            view = view[written:]
        self._size += len(entry)

    def _rotate(self) -> None:
        """Shift path.(i-1) -> path.i from the top down; the last slot's file is replaced."""
        os.close(self._fd)
        self._fd = -1
        top = 1
        while top < self.max_files - 1 and os.path.exists(_rotated(self.path, top)):
            top += 1
        if self.max_files == 1:
            os.unlink(self.path)
        for index in range(min(top, self.max_files - 1), 0, -1):
            try:
                os.replace(_rotated(self.path, index - 1), _rotated(self.path, index))
            except FileNotFoundError:
                pass
        self._open()


# ---------------------------------------------------------------- reading

# A stored time: every one has this shape, so comparing them as strings
# compares the instants.
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z")
BATCH_LINES = 4096
BATCH_BYTES = 256 << 10


def check_time(text: str, field: str) -> str:
    """``text`` if it is empty or a time as stored (``format_time``); else ValueError."""
    if text and not _TIME.fullmatch(text):
        raise ValueError(f"{field} {text!r}: expected a time like 2024-05-01T12:00:00.000000000Z")
    return text


def within(entries: list[LogEntry], since: str = "", until: str = "") -> list[LogEntry]:
    """The entries with ``since <= time < until`` (an empty bound is open)."""
    if since:
        entries = [e for e in entries if e.time >= since]
    if until:
        entries = [e for e in entries if e.time < until]
    return entries


def batched(entries: list[LogEntry], max_lines: int = BATCH_LINES,
            max_bytes: int = BATCH_BYTES) -> list[list[LogEntry]]:
    """``entries`` cut into runs of at most ``max_lines`` and about
    ``max_bytes`` of text each (a single longer entry is a run of its own)."""
    out: list[list[LogEntry]] = []
    start, size = 0, 0
    for index, entry in enumerate(entries):
        size += len(entry.line) + 48
        if index - start + 1 >= max_lines or size >= max_bytes:
            out.append(entries[start:index + 1])
            start, size = index + 1, 0
    if start < len(entries):
        out.append(entries[start:])
    return out


@dataclass
class _File:
    """One open log file of the chain; ``end`` is just past its last complete line."""

    fd: int
    ino: tuple[int, int]
    size: int


def _open_file(name: str) -> _File | None:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        return None
    return _File(fd, (st.st_dev, st.st_ino), st.st_size)


def _stat_id(name: str) -> tuple[int, int] | None:
    try:
        st = os.stat(name)
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino)


def _scan_once(path: str) -> tuple[list[_File], list[tuple[str, tuple[int, int] | None]]]:
    # Probe upwards until two names in a row are missing: while the writer
    # shifts files, exactly one slot of the chain is briefly empty.
    names = [path]
    index, missing = 1, 0
    while missing < 2:
        name = _rotated(path, index)
        missing = missing + 1 if _stat_id(name) is None else 0
        names.append(name)
        index += 1
    files: list[_File] = []
    seen: list[tuple[str, tuple[int, int] | None]] = []
    for name in reversed(names):  # oldest first
        opened = _open_file(name)
        seen.append((name, opened.ino if opened else None))
        if opened is not None:
            files.append(opened)
    return files, seen


def _scan(path: str) -> list[_File]:
    """Open every file of the chain, oldest first, as one consistent snapshot.

    A rotation during the scan shows up as a name now naming another file;
    the scan is then repeated so no file is missed or read twice.
    """
    for _ in range(_SCAN_ATTEMPTS):
        files, seen = _scan_once(path)
        if all(_stat_id(name) == ino for name, ino in seen):
            return files
        _close_all(files)
    return _scan_once(path)[0]


def _close_all(files: list[_File]) -> None:
    for f in files:
        os.close(f.fd)


def _pread_all(fd: int, start: int, end: int) -> bytes:
    parts: list[bytes] = []
    pos = start
    while pos < end:
        chunk = os.pread(fd, min(_READ_CHUNK, end - pos), pos)
        if not chunk:
            break
        parts.append(chunk)
        pos += len(chunk)
    return b"".join(parts)


def _complete_lines(fd: int, start: int, end: int | None = None) -> tuple[list[bytes], int]:
    """Complete lines from ``start`` up to ``end`` (default: end of file).

    Returns them and the offset just past the last one.
    """
    if end is None:
        end = os.fstat(fd).st_size
    data = _pread_all(fd, start, end)
    last = data.rfind(b"\n")
    if last < 0:
        return [], start
    return data[:last].split(b"\n"), start + last + 1


def _complete_end(fd: int, size: int) -> int:
    """Offset just past the last newline before ``size`` (0 if none)."""
    pos = size
    while pos > 0:
        start = max(0, pos - _READ_CHUNK)
        last = _pread_all(fd, start, pos).rfind(b"\n")
        if last >= 0:
            return start + last + 1
        pos = start
    return 0


def _last_lines(fd: int, end: int, count: int) -> list[bytes]:
    """The last ``count`` complete lines before ``end``, reading backwards in chunks."""
    chunks: list[bytes] = []
    newlines = 0
    pos = end
    while pos > 0 and newlines <= count:
        start = max(0, pos - _READ_CHUNK)
        chunk = _pread_all(fd, start, pos)
        chunks.append(chunk)
        newlines += chunk.count(b"\n")
        pos = start
    data = b"".join(reversed(chunks))
    last = data.rfind(b"\n")
    if last < 0 or count <= 0:
        return []
    lines = data[:last].split(b"\n")
    if pos > 0:  # the first piece may be the tail of a longer line
        lines = lines[1:]
    return lines[-count:]


def _parse(raw: bytes) -> LogEntry | None:
    """Decode one stored line; a damaged one (e.g. after a crash) is skipped."""
    try:
        obj = json.loads(raw)
        return LogEntry(str(obj["time"]), str(obj["stream"]), str(obj["line"]))
    except (ValueError, KeyError, TypeError):
        return None


def _parse_all(lines: list[bytes]) -> list[LogEntry]:
    entries = (_parse(raw) for raw in lines if raw)
    return [e for e in entries if e is not None]


def read_logs(path: str, tail: int | None = None) -> list[LogEntry]:
    """Entries across ``path`` and its rotated files, oldest first.

    ``tail=N`` returns the last N entries overall, reading backwards so a big
    log is not read whole. A missing log reads as empty.
    """
    files = _scan(path)
    try:
        if tail is None:
            return _parse_all([ln for f in files for ln in _complete_lines(f.fd, 0)[0]])
        if tail < 0:
            raise ValueError(f"tail must be >= 0, got {tail}")
        return _tail_entries(files, tail)
    finally:
        _close_all(files)


def _tail_entries(files: list[_File], tail: int) -> list[LogEntry]:
    """The last ``tail`` entries of the chain; each file is read up to its ``size``."""
    collected: list[LogEntry] = []
    for f in reversed(files):  # newest first
        want = tail - len(collected)
        if want <= 0:
            break
        # A few extra lines so damaged ones do not shorten the answer.
        collected = _parse_all(_last_lines(f.fd, f.size, want + 8))[-want:] + collected
    return collected


class LogFollower:
    """Follow a container log: ``poll()`` returns entries appended since the last call.

    ``tail`` picks where to start: 0 = only new entries, N = the last N
    existing ones first, None = everything already logged. A trailing
    incomplete line is left until its newline arrives. Rotation is followed by
    keeping the current file open: when ``path`` names another file, the old
    one is read to its end, then every newer file in order.
    """

    def __init__(
        self,
        path: str,
        tail: int | None = 0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.path = path
        self._clock = clock
        self._sleep = sleep
        self._current: _File | None = None
        self._offset = 0
        self._pending: list[LogEntry] = []
        self._start(tail)

    def _start(self, tail: int | None) -> None:
        files = _scan(self.path)
        if not files:
            return
        current, older = files[-1], files[:-1]
        self._current = current
        self._offset = _complete_end(current.fd, current.size)
        # What is already logged ends at _offset: later lines come from poll().
        snapshot = [*older, _File(current.fd, current.ino, self._offset)]
        if tail is None:
            self._pending = _parse_all(
                [ln for f in snapshot for ln in _complete_lines(f.fd, 0, f.size)[0]]
            )
        elif tail > 0:
            self._pending = _tail_entries(snapshot, tail)
        _close_all(older)

    def poll(self) -> list[LogEntry]:
        out, self._pending = self._pending, []
        if self._current is not None:
            out += self._read_current()
        files = _scan(self.path)
        successors = self._successors(files)
        if successors is None:  # still the live file
            _close_all(files)
            return out
        if self._current is not None:
            # Rotated after the read above: take what was written before the rename.
            out += self._read_current()
            os.close(self._current.fd)
        keep = successors[-1]
        newer = {id(f) for f in successors}
        for f in files:
            if f is not keep:
                if id(f) in newer:  # a finished file between ours and the live one
                    out += _parse_all(_complete_lines(f.fd, 0)[0])
                os.close(f.fd)
        self._current, self._offset = keep, 0
        out += self._read_current()
        return out

    def wait(self, timeout: float, interval: float = 0.1) -> list[LogEntry]:
        """Poll until something arrives or ``timeout`` seconds pass."""
        deadline = self._clock() + timeout
        while True:
            entries = self.poll()
            if entries or self._clock() >= deadline:
                return entries
            self._sleep(interval)

    def close(self) -> None:
        if self._current is not None:
            os.close(self._current.fd)
            self._current = None

    def __enter__(self) -> LogFollower:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read_current(self) -> list[LogEntry]:
        assert self._current is not None
        if os.fstat(self._current.fd).st_size < self._offset:
            self._offset = 0  # truncated in place by someone else: start over
        lines, self._offset = _complete_lines(self._current.fd, self._offset)
        return _parse_all(lines)

    def _successors(self, files: list[_File]) -> list[_File] | None:
        """Files newer than the current one, oldest first; None if there are none."""
        if not files:
            return None
        if self._current is None:
            return files
        ids = [f.ino for f in files]
        if self._current.ino not in ids:
            # Our file fell off the end: everything left is newer than it.
            return files
        index = ids.index(self._current.ino)
        return files[index + 1 :] or None
