"""Secret files (common.auth): made 0600, refused when others can read
them, taken from the environment without leaking to children."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from common.auth import TokenError, read_token, token_from, write_token


def test_a_new_token_file_is_0600_and_kept_on_a_second_write(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "join-token"
    token = write_token(str(path))
    assert len(token) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert write_token(str(path)) == token
    assert read_token(str(path)) == token


def test_an_existing_world_readable_token_is_made_0600_by_write_and_refused_by_read(tmp_path: Path) -> None:
    path = tmp_path / "admin-token"
    path.write_text("s3cret\n")
    path.chmod(0o644)
    with pytest.raises(TokenError, match="readable by others"):
        read_token(str(path))
    assert write_token(str(path)) == "s3cret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_missing_and_empty_token_files_say_so(tmp_path: Path) -> None:
    with pytest.raises(TokenError, match="cannot read the token file"):
        read_token(str(tmp_path / "nope"))
    empty = tmp_path / "empty"
    empty.write_text("\n")
    empty.chmod(0o600)
    with pytest.raises(TokenError, match="is empty"):
        read_token(str(empty))


def test_a_token_from_the_environment_is_not_inherited(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_TEST_TOKEN", " abc ")
    assert token_from("", "ORCH_TEST_TOKEN") == "abc"
    assert "ORCH_TEST_TOKEN" not in os.environ
    assert token_from("", "ORCH_TEST_TOKEN") == ""
