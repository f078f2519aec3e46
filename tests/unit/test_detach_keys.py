"""Docker's --detach-keys (orch run -it, orch attach): the spec's parsing and
the scanner that finds the sequence in what is typed."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orch.cli.interactive import DETACH_KEYS, DetachKeys, parse_detach_keys


@pytest.mark.parametrize(("spec", "keys"), [
    ("", DETACH_KEYS),
    ("ctrl-p,ctrl-q", b"\x10\x11"),
    ("ctrl-x,x", b"\x18x"),
    ("CTRL-A", b"\x01"),
    ("ctrl-@,ctrl-[,ctrl-\\,ctrl-],ctrl-^,ctrl-_", bytes([0, 27, 28, 29, 30, 31])),
    ("a,b,c", b"abc"),
])
def test_specs_read_as_docker_reads_them(spec: str, keys: bytes) -> None:
    assert parse_detach_keys(spec) == keys


@pytest.mark.parametrize("spec", ["ctrl-", "ctrl-ab", "alt-x", "ctrl-1", "x,,y", "é"])
def test_a_bad_spec_names_the_key(spec: str) -> None:
    with pytest.raises(ValueError, match="invalid detach key"):
        parse_detach_keys(spec)


def test_a_sequence_that_overlaps_itself_is_found() -> None:
    assert DetachKeys(b"aab").feed(b"xaaab") == (b"xa", True)
    assert DetachKeys(b"\x10\x10\x11").feed(b"\x10\x10\x10\x11") == (b"\x10", True)


_FEW = st.sampled_from(b"ab\x10")  # a small alphabet: sequences overlap, typed text holds them


@given(st.lists(_FEW, max_size=40).map(bytes), st.lists(_FEW, min_size=1, max_size=3).map(bytes),
       st.integers(1, 5))
def test_the_sequence_is_found_across_reads_and_the_rest_passes(
        typed: bytes, keys: bytes, chunk: int) -> None:
    """Fed in pieces, the scanner passes on exactly what precedes the first
    whole sequence and says detach there; without one, everything passes
    (a partial sequence held at the end)."""
    scanner, out, detached = DetachKeys(keys), b"", False
    for i in range(0, len(typed), chunk):
        got, detached = scanner.feed(typed[i:i + chunk])
        out += got
        if detached:
            break
    at = typed.find(keys)
    if at >= 0:
        assert detached and out == typed[:at]
    else:
        assert not detached and out + scanner.held == typed
