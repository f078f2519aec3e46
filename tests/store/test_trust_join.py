"""The control plane's trust on a real etcd: join tokens (made once, adopted
from the pki dir, sealed in etcd, rotated), revocation, and the join port's
service driven through a real gRPC server by the node side's ``join``,
``obtain`` and ``Renewer`` (common.identity)."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from common import identity, pki
from common import join as joincrypto
from controlplane.envelope import Kek
from controlplane.etcd import EmbeddedEtcd
from controlplane.joinsvc import JoinService
from controlplane.store import Store
from controlplane.trust import TOKEN_FILES, Trust, create_ca, load_ca
from proto import cluster_pb2 as cpb
from proto import cluster_pb2_grpc as cpb_grpc

KEK = Kek(b"k" * 32)


@pytest.fixture
def trust(store: Store, tmp_path: Path) -> Trust:
    return Trust(create_ca(str(tmp_path / "pki")), store, KEK, pki_dir=str(tmp_path / "pki"))


@pytest.fixture
def join_port(trust: Trust) -> Iterator[str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    cpb_grpc.add_JoinServicer_to_server(JoinService(trust, KEK, lambda: ["127.0.0.1:1"]),  # type: ignore[no-untyped-call]
                                        server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port - identity.JOIN_PORT_OFFSET}"  # the API address a node is given
    server.stop(grace=0)


def test_the_ca_is_made_once_with_a_private_key(tmp_path: Path) -> None:
    first = create_ca(str(tmp_path / "pki"))
    assert create_ca(str(tmp_path / "pki")) == first == load_ca(str(tmp_path / "pki"))
    assert os.stat(tmp_path / "pki" / "ca.key").st_mode & 0o077 == 0
    assert pki.identity(first.cert_pem).node_id == "orch-root-ca"


def test_tokens_are_made_once_sealed_in_etcd_and_written_0600(trust: Trust, etcd: EmbeddedEtcd,
                                                              tmp_path: Path) -> None:
    tokens = trust.tokens()
    assert set(tokens) == {"node", "controlplane"} and tokens["node"] != tokens["controlplane"]
    assert all(pki.token_pins(t, trust.ca.cert_pem) for t in tokens.values())
    assert trust.tokens() == tokens
    for role, name in TOKEN_FILES.items():
        path = tmp_path / "pki" / name
        assert path.read_text().strip() == tokens[role] and path.stat().st_mode & 0o077 == 0
    raw = subprocess.run([str(Path(os.environ.get("VIRTUAL_ENV", ".venv")) / "bin" / "etcdctl"),
                          "--endpoints", etcd.endpoint, "get", "--prefix", "/orch/"],
                         capture_output=True, timeout=30)
    secrets = [pki.parse_token(t)[1].encode() for t in tokens.values()]
    assert raw.returncode == 0 and raw.stdout and not any(s in raw.stdout for s in secrets)


def test_a_first_replica_adopts_the_token_files_it_finds(store: Store, tmp_path: Path) -> None:
    ca = create_ca(str(tmp_path / "pki"))
    written = pki.make_token(ca.cert_pem)
    (tmp_path / "pki" / "node-token").write_text(written + "\n")
    (tmp_path / "pki" / "controlplane-token").write_text(pki.make_token(pki.new_ca("other", 0).cert_pem))
    tokens = Trust(ca, store, KEK, pki_dir=str(tmp_path / "pki")).tokens()
    assert tokens["node"] == written  # another CA's token is not adopted
    assert pki.token_pins(tokens["controlplane"], ca.cert_pem)


def test_rotation_replaces_one_role_only(trust: Trust) -> None:
    before = trust.tokens()
    after = trust.rotate("node")
    assert after["node"] != before["node"] and after["controlplane"] == before["controlplane"]
    assert trust.tokens() == after


def test_revocation_is_seen_fresh_at_once(trust: Trust, store: Store) -> None:
    other = Trust(trust.ca, store, KEK)  # another replica
    assert other.revoked() == frozenset()
    trust.revoke("n-1")
    assert trust.revoked() == {"n-1"}
    assert other.revoked(fresh=True) == {"n-1"}


def test_a_node_joins_keeps_its_certificate_and_renews_it(trust: Trust, join_port: str,
                                                          tmp_path: Path) -> None:
    token = trust.tokens()["node"]
    joined = identity.join(str(tmp_path / "n1"), [join_port], token, "n1", pb=cpb)
    who = pki.identity(joined.identity.creds.cert_pem)
    assert (who.role, who.cluster_id) == ("node", trust.cluster_id)
    assert joined.api_addresses == ["127.0.0.1:1"]
    assert pki.SERVER_NAMES["node"] in pki.x509.load_pem_x509_certificate(
        joined.identity.creds.cert_pem).extensions.get_extension_for_class(
        pki.x509.SubjectAlternativeName).value.get_values_for_type(pki.x509.DNSName)
    assert os.stat(tmp_path / "n1" / "node.key").st_mode & 0o077 == 0
    kept = identity.load(str(tmp_path / "n1"), token)
    assert kept is not None and kept.node_id == who.node_id
    # Joining again with the id it had keeps it; a removed id is not given back.
    again = identity.join(str(tmp_path / "n1b"), [join_port], token, "n1", who.node_id, pb=cpb)
    assert again.identity.node_id == who.node_id
    trust.revoke(who.node_id)
    fresh = identity.join(str(tmp_path / "n1c"), [join_port], token, "n1", who.node_id, pb=cpb)
    assert fresh.identity.node_id != who.node_id
    # Renewal: a new key and certificate, same identity, swapped in place.
    stopped = threading.Event()
    renewer = identity.Renewer(kept, lambda csr: trust.issue(csr, kept.node_id, "node"), stopped)
    old_serial = who.serial
    renewer.renew_now()
    renewed = pki.identity(kept.creds.cert_pem)
    assert renewed.node_id == who.node_id and renewed.serial != old_serial
    assert (tmp_path / "n1" / "node.crt").read_bytes() == kept.creds.cert_pem
    assert pki.matches_key(kept.creds.cert_pem, kept.creds.key_pem)


def test_a_wrong_token_or_another_ca_is_refused_before_anything_is_sent(trust: Trust, join_port: str,
                                                                        tmp_path: Path) -> None:
    good = trust.tokens()["node"]
    digest = pki.parse_token(good)[0]
    wrong_secret = f"SWMTKN-1-{digest}-{'0' * 25}"
    with pytest.raises(identity.JoinRefused, match="wrong join token"):
        identity.join(str(tmp_path / "a"), [join_port], wrong_secret, "n1", pb=cpb)
    other_ca = pki.make_token(pki.new_ca("other", time.time()).cert_pem)
    with pytest.raises(identity.JoinRefused, match="not the one the join token pins"):
        identity.join(str(tmp_path / "b"), [join_port], other_ca, "n1", pb=cpb)
    with pytest.raises(identity.JoinRefused, match="wrong join token for role controlplane"):
        identity.join(str(tmp_path / "c"), [join_port], good, "cp2", role="controlplane", pb=cpb)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_control_plane_gets_the_ca_key_sealed_under_its_token(trust: Trust, join_port: str,
                                                                tmp_path: Path) -> None:
    token = trust.tokens()["controlplane"]
    joined = identity.join(str(tmp_path / "cp2"), [join_port], token, "cp2", role="controlplane", pb=cpb)
    assert joined.identity.node_id == "cp2" and joined.sealed
    assert trust.ca.key_pem not in joined.sealed
    bundle = json.loads(joincrypto.open_from(pki.parse_token(token)[1], joined.sealed, joined.csr))
    assert bundle == {"ca_key": trust.ca.key_pem.decode(), "secrets_key": KEK.key.hex()}


def test_obtain_waits_for_a_join_port_and_stops_when_told(tmp_path: Path) -> None:
    stopped = threading.Event()
    token = pki.make_token(pki.new_ca("c", time.time()).cert_pem)
    threading.Timer(0.3, stopped.set).start()
    assert identity.obtain(str(tmp_path / "x"), ["127.0.0.1:9"], token, "n", "", stopped, pb=cpb) is None
