"""keys: builders and parse are inverse; bad keys and ids are named."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controlplane.store import keys
from controlplane.store.keys import BadKey, Kind

ids = st.text(alphabet=st.characters(blacklist_characters="/", blacklist_categories=["Cs"]), min_size=1)


@given(kind=st.sampled_from(list(Kind)), ident=ids)
def test_object_keys_round_trip(kind: Kind, ident: str) -> None:
    key = keys.object_key(kind, ident)
    assert key.startswith(keys.prefix(kind))
    assert keys.parse(key) == (kind, ident)
    assert keys.parse(key.encode()) == (kind, ident)


@given(ident=ids)
def test_prefix_range_covers_exactly_one_kind(ident: str) -> None:
    for kind in Kind:
        key = keys.object_key(kind, ident).encode()
        lo, hi = keys.prefix(kind).encode(), keys.range_end(keys.prefix(kind)).encode()
        assert lo <= key < hi
        for other in set(Kind) - {kind}:
            assert not (keys.prefix(other).encode() <= key < keys.range_end(keys.prefix(other)).encode())


@pytest.mark.parametrize(("builder", "kind"), [
    (keys.service_key, Kind.SERVICE), (keys.task_key, Kind.TASK), (keys.node_key, Kind.NODE),
])
def test_typed_builders(builder: object, kind: Kind) -> None:
    assert callable(builder)
    assert keys.parse(builder("abc")) == (kind, "abc")


def test_leader_and_meta_keys_parse_to_their_segment() -> None:
    assert keys.parse(keys.leader_key("controllers")) == ("leader", "controllers")
    assert keys.parse(keys.meta_key("join-token")) == ("meta", "join-token")


@pytest.mark.parametrize("bad", ["/other/tasks/x", "/orch/tasks/", "/orch/tasks", "/orch/tasks/a/b",
                                 "/orch/widgets/x"])
def test_parse_rejects_foreign_keys(bad: str) -> None:
    with pytest.raises(BadKey, match="key"):
        keys.parse(bad)


@pytest.mark.parametrize("bad", ["", "a/b"])
def test_builders_reject_bad_ids(bad: str) -> None:
    with pytest.raises(BadKey, match="invalid id"):
        keys.task_key(bad)
