"""Fixtures: a real single-member etcd per test, on free loopback ports, in tmp_path;
a store on it, and an informer following that store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from controlplane.etcd import EmbeddedEtcd
from controlplane.store import Informer, Store


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[EmbeddedEtcd]:
    server = EmbeddedEtcd(tmp_path / "etcd")
    server.start()
    try:
        yield server
    finally:
        server.stop()
        assert not server.running()


@pytest.fixture
def store(etcd: EmbeddedEtcd) -> Iterator[Store]:
    s = Store([etcd.endpoint])
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def informer(store: Store) -> Iterator[Informer]:
    informer = Informer(store).start()
    assert informer.wait_synced(10)
    yield informer
    informer.stop()
