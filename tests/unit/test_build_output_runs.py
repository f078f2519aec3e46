"""Build output travels in runs of whole lines: a RUN step's pipe
(nodeagent.images.build.runner._pump) and the builder process's stdout as
the agent reads it (nodeagent.agent.imageapi._whole_lines)."""

from __future__ import annotations

import os
import threading

from hypothesis import given
from hypothesis import strategies as st

from nodeagent.agent.imageapi import _whole_lines
from nodeagent.images.build.runner import _pump

pieces = st.lists(st.binary(max_size=300).map(lambda b: b.replace(b"\r", b"")), max_size=30)


def _through_pipe(chunks: list[bytes], reader: object) -> list[str]:
    read_fd, write_fd = os.pipe()

    def write() -> None:
        with os.fdopen(write_fd, "wb", buffering=0) as f:
            for chunk in chunks:
                f.write(chunk)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        return reader(read_fd)  # type: ignore[operator, no-any-return]
    finally:
        writer.join()
        os.close(read_fd)


@given(pieces)
def test_whole_lines_keep_the_text_and_end_every_run_in_a_newline(chunks: list[bytes]) -> None:
    runs = _through_pipe(chunks, lambda fd: list(_whole_lines(fd)))
    data = b"".join(chunks).decode("utf-8", "replace")
    assert "".join(runs) == (data if not data or data.endswith("\n") else data + "\n")
    assert all(run.endswith("\n") for run in runs)


@given(pieces)
def test_a_run_steps_output_is_forwarded_whole_lines_at_a_time(chunks: list[bytes]) -> None:
    calls: list[str] = []
    _through_pipe(chunks, lambda fd: _pump(fd, calls.append))
    data = b"".join(chunks)
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    assert "\n".join(calls).split("\n") == [ln.decode("utf-8", "replace") for ln in lines] or not data
