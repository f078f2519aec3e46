"""etcd with mutual TLS (``EtcdTLS``) and the store's client over it (``ClientTLS``):
a member serves only clients whose certificate its CA signed, members of a
cluster speak TLS to each other, and /metrics and /health stay plain HTTP on
a listener of their own."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from store_helpers import make_service

from common import pki
from controlplane.etcd import EmbeddedEtcd, EtcdStartError, EtcdTLS, etcdctl_binary
from controlplane.store import Kind, Store, StoreUnavailable
from controlplane.store._client import ClientTLS, connect, endpoint_scheme, parse_endpoint
from tests.ports import free_ports

CLUSTER = "c-tls"


@dataclass(frozen=True)
class Certs:
    dir: Path
    ca: pki.CA
    client: ClientTLS  # signed by the members' CA
    foreign: ClientTLS  # signed by another CA
    no_cert: ClientTLS  # trusts the CA, presents nothing

    def member(self, name: str) -> EtcdTLS:
        cert, key = _write_issued(self.ca, self.dir, name)
        return EtcdTLS(str(self.dir / "ca.pem"), str(cert), str(key))


def _write_issued(ca: pki.CA, where: Path, name: str) -> tuple[Path, Path]:
    key = pki.new_key()
    cert = pki.issue(ca, pki.new_csr(key), name, "controlplane", CLUSTER, time.time(),
                     dns_names=["localhost"], addresses=["127.0.0.1"])
    cert_path, key_path = where / f"{name}.pem", where / f"{name}-key.pem"
    cert_path.write_bytes(cert)
    key_path.touch(mode=0o600)
    key_path.write_bytes(key)
    assert key_path.stat().st_mode & 0o077 == 0
    return cert_path, key_path


@pytest.fixture(scope="module")
def certs() -> Iterator[Certs]:
    with tempfile.TemporaryDirectory(prefix="orch-etcd-tls-") as tmp:
        where = Path(tmp)
        ca = pki.new_ca(CLUSTER, time.time())
        (where / "ca.pem").write_bytes(ca.cert_pem)
        cert, key = _write_issued(ca, where, "client")
        other = pki.new_ca(CLUSTER, time.time())
        foreign_cert, foreign_key = _write_issued(other, where, "intruder")
        yield Certs(where, ca, ClientTLS.from_files(str(where / "ca.pem"), str(cert), str(key)),
                    ClientTLS(ca.cert_pem, foreign_cert.read_bytes(), foreign_key.read_bytes()),
                    ClientTLS(ca.cert_pem, b"", b""))


@pytest.fixture(scope="module")
def member(certs: Certs) -> Iterator[EmbeddedEtcd]:
    """One TLS member, shared by the tests that only talk to it."""
    with tempfile.TemporaryDirectory(prefix="orch-etcd-tls-data-") as tmp:
        etcd = EmbeddedEtcd(Path(tmp) / "etcd", tls=certs.member("etcd"))
        etcd.start()
        try:
            yield etcd
        finally:
            etcd.stop()
            assert not etcd.running()


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return bytes(resp.read())


# ---- one member -------------------------------------------------------------------

def test_a_tls_member_listens_on_https_and_its_metrics_on_plain_http(member: EmbeddedEtcd) -> None:
    assert member.endpoint == f"https://127.0.0.1:{member.client_port}"
    assert member.peer_url == f"https://127.0.0.1:{member.peer_port}"
    assert member.metrics_url == f"http://127.0.0.1:{member.metrics_port}"
    assert len({member.client_port, member.peer_port, member.metrics_port}) == 3
    cmd = member.command()
    tls = member.tls
    assert tls is not None and "--client-cert-auth" in cmd and "--peer-client-cert-auth" in cmd
    files = {"--trusted-ca-file": tls.ca_file, "--peer-trusted-ca-file": tls.ca_file,
             "--cert-file": tls.cert_file, "--peer-cert-file": tls.cert_file,
             "--key-file": tls.key_file, "--peer-key-file": tls.key_file}
    assert {flag: cmd[cmd.index(flag) + 1] for flag in files} == files
    assert cmd[cmd.index("--listen-metrics-urls") + 1] == member.metrics_url
    assert json.loads(_get(member.metrics_url + "/health"))["health"] == "true"
    assert b"etcd_server_has_leader 1" in _get(member.metrics_url + "/metrics")


def test_a_client_certified_by_the_ca_reads_writes_and_watches(member: EmbeddedEtcd, certs: Certs) -> None:
    with Store([member.endpoint], tls=certs.client) as store:
        watch = store.watch(store.revision() + 1)
        try:
            svc = store.create(make_service("tls-web"))
            assert store.get_service(svc.id) == svc
            assert svc in store.list_services()
            events: list = []
            for _ in range(100):
                events.extend(watch.next(timeout=0.1))
                if events:
                    break
            assert [(e.kind, e.type, e.id) for e in events] == [(Kind.SERVICE, "put", svc.id)]
        finally:
            watch.cancel()


def test_etcdctl_reaches_a_tls_member_with_its_flags(member: EmbeddedEtcd, certs: Certs) -> None:
    tls = certs.member("etcdctl")
    ctl = [etcdctl_binary(), "--endpoints", member.endpoint, *tls.etcdctl_args()]
    subprocess.run([*ctl, "put", "/tls-probe", "yes"], capture_output=True, timeout=30, check=True)
    got = subprocess.run([*ctl, "get", "/tls-probe", "--print-value-only"], capture_output=True, timeout=30,
                         check=True)
    assert got.stdout.strip() == b"yes"


@pytest.mark.timeout(60)  # a refused client must fail, never hang
@pytest.mark.parametrize("who", ["no_cert", "foreign"])
def test_a_client_without_a_certificate_of_the_ca_is_refused(member: EmbeddedEtcd, certs: Certs,
                                                             who: str) -> None:
    with Store([member.endpoint], timeout=0.5, tls=getattr(certs, who)) as store:
        # Reads try again until the store's timeout, writes fail at once; both say why.
        with pytest.raises(StoreUnavailable, match=r"(?i)etcd get .*handshake failed"):
            store.get_service("anything")
        with pytest.raises(StoreUnavailable, match=r"(?i)etcd txn .*handshake failed"):
            store.create(make_service())
        with pytest.raises(StoreUnavailable):
            store.watch(1).next(timeout=5)


@pytest.mark.timeout(60)
def test_a_plaintext_client_gets_nothing_from_a_tls_member(member: EmbeddedEtcd) -> None:
    with Store([f"http://127.0.0.1:{member.client_port}"], timeout=0.5) as store, \
            pytest.raises(StoreUnavailable):
        store.get_service("anything")


def test_endpoints_and_tls_must_agree(member: EmbeddedEtcd, certs: Certs) -> None:
    assert parse_endpoint(member.endpoint) == ("127.0.0.1", member.client_port)
    assert parse_endpoint("127.0.0.1:2379") == ("127.0.0.1", 2379)
    assert (endpoint_scheme(member.endpoint), endpoint_scheme("127.0.0.1:2379")) == ("https", "http")
    with pytest.raises(ValueError, match="https:// needs the client's TLS"):
        Store([member.endpoint])
    with pytest.raises(ValueError, match="TLS is given but the endpoint is plain http://"):
        connect(["http://127.0.0.1:2379"], 1.0, certs.client)
    with pytest.raises(ValueError, match="expected http://host:port or https://host:port"):
        parse_endpoint("unix:///run/etcd.sock")
    with pytest.raises(ValueError, match="the CA is not a PEM certificate"):
        ClientTLS(b"junk", certs.client.cert_pem, certs.client.key_pem)
    with pytest.raises(ValueError, match="needs its key"):
        ClientTLS(certs.ca.cert_pem, certs.client.cert_pem, b"")
    with pytest.raises(ValueError, match=r"certificate file .*missing\.pem"):
        ClientTLS.from_files(str(certs.dir / "ca.pem"), str(certs.dir / "missing.pem"), "x")
    with pytest.raises(ValueError, match="peer URLs"):
        EmbeddedEtcd(certs.dir / "x", 1, 2, "a", peers={"a": "http://127.0.0.1:2"}, tls=certs.member("x"))
    missing = EtcdTLS(str(certs.dir / "ca.pem"), str(certs.dir / "missing.pem"), str(certs.dir / "x-key.pem"))
    with pytest.raises(EtcdStartError, match=r"certificate file .*missing\.pem"):
        EmbeddedEtcd(certs.dir / "y", tls=missing).start()


# ---- a cluster ----------------------------------------------------------------------

def test_a_three_member_tls_cluster_serves_through_the_store(certs: Certs) -> None:
    with tempfile.TemporaryDirectory(prefix="orch-etcd-tls-cluster-") as tmp:
        ports = free_ports(6)
        names = ["etcd1", "etcd2", "etcd3"]
        peers = {n: f"https://127.0.0.1:{ports[3 + i]}" for i, n in enumerate(names)}
        members = [EmbeddedEtcd(Path(tmp) / n, ports[i], ports[3 + i], n, peers=peers, tls=certs.member(n),
                                cluster_token="orch-tls-test") for i, n in enumerate(names)]
        try:
            for m in members:
                m.spawn()
            for m in members:
                m.wait_ready(20)
            for m in members:
                assert json.loads(_get(m.metrics_url + "/health"))["health"] == "true"
            with Store([m.endpoint for m in members], tls=certs.client) as store:
                svc = store.create(make_service("tls-cluster"))
                assert store.get_service(svc.id) == svc
                # Every member has it: the peers replicate over TLS.
                for m in members:
                    with Store([m.endpoint], tls=certs.client) as one:
                        assert one.get_service(svc.id) == svc
                # The leader goes: the client follows the new one, over TLS as well.
                [leader] = [m for m in members
                            if b"etcd_server_is_leader 1" in _get(m.metrics_url + "/metrics")]
                leader.stop()
                deadline = time.monotonic() + 20
                while True:
                    try:
                        after = store.create(make_service("after-failover"))
                        break
                    except StoreUnavailable:
                        assert time.monotonic() < deadline, "no new leader took the write"
                        time.sleep(0.02)  # polling: calls fail at once until a member leads
                assert store.get_service(after.id) == after
        finally:
            for m in members:
                m.stop()
        assert not any(m.running() for m in members)
    assert not os.path.exists(tmp)


# ---- orch's members: control planes as clients, members as peers -------------------

def test_orch_members_take_only_control_planes_as_clients(tmp_path: Path) -> None:
    """``controlplane.trust.etcd_tls``: a member's certificate is of role
    etcd, and the member refuses a node's, a user's and another member's
    certificate of the same CA as a client; a control plane's opens it."""
    from controlplane.trust import create_ca, etcd_tls, issue_local

    ca = create_ca(str(tmp_path / "pki"))
    tls = etcd_tls(ca, str(tmp_path / "pki"), "etcd-a", ["127.0.0.1"])
    assert pki.identity(Path(tls.cert_file).read_bytes()).role == "etcd"
    etcd = EmbeddedEtcd(tmp_path / "etcd", tls=tls)
    etcd.start()
    try:
        def ctl(role: str) -> subprocess.CompletedProcess[bytes]:
            if role == "member":
                args = tls.etcdctl_args()
            else:
                cert, key = issue_local(ca, f"probe-{role}", role)
                (tmp_path / f"{role}.crt").write_bytes(cert)
                (tmp_path / f"{role}.key").write_bytes(key)
                args = tls.etcdctl_args(str(tmp_path / f"{role}.crt"), str(tmp_path / f"{role}.key"))
            return subprocess.run([etcdctl_binary(), "--endpoints", etcd.endpoint, "--command-timeout=1s",
                                   "--dial-timeout=1s", *args, "get", "/orch/", "--prefix", "--keys-only"],
                                  capture_output=True, timeout=30)

        assert ctl("controlplane").returncode == 0
        for role in ("node", "user", "member"):
            refused = ctl(role)
            assert refused.returncode != 0, role
    finally:
        etcd.stop()
