from __future__ import annotations

import pytest

from common.errors import InvalidArgument
from nodeagent.images import normalize, parse_reference

GOOD = [
    ("busybox", "busybox:latest"),
    ("busybox:1.36", "busybox:1.36"),
    ("library/busy-box_x.y:V_1.0-rc", "library/busy-box_x.y:V_1.0-rc"),
    ("a__b/c--d:latest", "a__b/c--d:latest"),
]

BAD = [
    ("", "empty"),
    ("Busybox", "lowercase"),
    ("busy box", "lowercase"),
    ("busybox:", "tag ''"),
    ("busybox:-x", "tag '-x'"),
    ("busybox:" + "a" * 129, "1-128"),
    ("/busybox", "component ''"),
    ("a//b", "component ''"),
    ("-abc", "component '-abc'"),
    ("foo@sha256:" + "0" * 64, "digest references"),
    ("foo:bar:baz", "lowercase"),
]


@pytest.mark.parametrize(("text", "want"), GOOD)
def test_normalize_accepts(text: str, want: str) -> None:
    assert normalize(text) == want


@pytest.mark.parametrize(("text", "fragment"), BAD)
def test_parse_rejects_with_clear_message(text: str, fragment: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        parse_reference(text)
    assert fragment in err.value.message
    assert "invalid image reference" in err.value.message
