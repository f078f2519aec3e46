"""The runtime's side of orch-init: the plan's encoding, and a clear error
when the binary is not built."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.errors import FailedPrecondition, SetupError
from nodeagent.runtime import LinuxRuntime, native


def test_plan_entries_are_nul_terminated_key_values() -> None:
    assert native.encode([("arg", "sh"), ("arg", "a=b"), ("nnp", 1)]) == b"arg=sh\0arg=a=b\0nnp=1\0"


def test_a_nul_in_the_plan_is_refused_naming_the_key() -> None:
    with pytest.raises(SetupError) as info:
        native.encode([("env", "A=x\0y")])
    assert info.value.step == "plan" and info.value.args_repr == "env"


def test_a_runtime_without_the_binary_says_how_to_build_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(native, "BINARY", str(tmp_path / "orch-init"))
    with pytest.raises(FailedPrecondition, match="run scripts/setup"):
        LinuxRuntime()


def test_the_built_binary_is_from_the_current_source() -> None:
    """scripts/setup rebuilds it when anything in its source directory (a
    file, or the directory itself: a file added or removed) is newer."""
    binary, source = Path(native.BINARY), Path(native.SOURCE)
    sources = sorted(source.glob("*.c"))
    assert sources and (source / "init.h").is_file()
    built = binary.stat().st_mtime
    stale = [p.name for p in [source, *source.iterdir()] if p.stat().st_mtime > built]
    assert not stale, f"{binary} is older than {stale}: run scripts/setup"


def test_a_ready_report_before_the_pid_is_kept_not_taken_for_an_error() -> None:
    """PID 1 and the helper share the report pipe: with nothing to wait for,
    PID 1's "R" can arrive before the helper's "P<pid>" (seen under load).
    Taken for an error, the runtime then waited for an EOF that never came."""
    import os

    from nodeagent.runtime import channel
    from nodeagent.runtime.linux import _read_pid

    r, w = os.pipe()
    os.write(w, b"R\nP4242\n")  # the write end stays open, as PID 1 keeps it
    reader = channel.Reader(r)
    early: list[bytes] = []
    try:
        assert _read_pid(reader, early) == (4242, None)
        assert early == [b"R"]
    finally:
        reader.close()
        os.close(w)
