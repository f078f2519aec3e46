"""The CLI's mutual-TLS channel (orch.cli.tlschannel) against a real grpcio
server on loopback with the control plane's TLS (common.tls.ServerTLS and
PeerGuard): the right certificate is served, unary and streaming; a refused
certificate, a wrong CA, a plaintext endpoint, nobody listening and a
listener that never answers all end in one-line errors (never a hang); the
files come from flags, environment variables or $ORCH_CERT_PATH, and a bad
file is named."""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest

from common import pki, tls
from orch.cli import tlschannel
from orch.cli.client import CLIError, Cluster
from orch.cli.h2grpc import DEADLINE_EXCEEDED, PERMISSION_DENIED, UNAVAILABLE, RpcError
from orch.cli.tlschannel import CLITLS, CONTROLPLANE_NAME, TLSChannel, add_tls_flags, tls_from

NOW = time.time()
CLUSTER = "c1"
# The role a CLI's certificate carries: "user" where the CA issues it.
ROLE = "user" if "user" in pki.ROLES else "controlplane"
WAIT = 10.0  # the most a test waits for something that should happen at once


def _pair(ca: pki.CA, node_id: str, role: str, dns: list[str] | None = None) -> tuple[bytes, bytes]:
    key = pki.new_key()
    return pki.issue(ca, pki.new_csr(key), node_id, role, CLUSTER, NOW, days=1, dns_names=dns), key


@pytest.fixture(scope="module")
def ca() -> pki.CA:
    return pki.new_ca(CLUSTER, NOW)


class Handlers:
    """The served methods; ``cancelled`` is set when a call is cancelled."""

    def __init__(self) -> None:
        self.cancelled = threading.Event()

    def say(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        return request

    def count(self, request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        for i in range(3):
            yield request + b"-%d" % i

    def endless(self, request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        """One reply, then nothing until the client goes: the call ends only
        by being cancelled (the server may never resume the generator)."""
        ended = threading.Event()
        context.add_callback(ended.set)
        context.add_callback(self.cancelled.set)
        yield b"first"
        ended.wait(WAIT)

    def hold(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        ended = threading.Event()
        context.add_callback(ended.set)
        ended.wait(WAIT)
        return b"late"

    def busy(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        context.abort(grpc.StatusCode.UNAVAILABLE, "the cluster store is unavailable; try again later")
        raise AssertionError("abort returns not")

    def who(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        value = dict(context.invocation_metadata()).get("authorization", "")
        return value if isinstance(value, bytes) else value.encode()


@pytest.fixture(scope="module")
def server(ca: pki.CA) -> Iterator[tuple[str, Handlers]]:
    cert, key = _pair(ca, "cp-1", "controlplane", dns=[CONTROLPLANE_NAME, "localhost"])
    handlers = Handlers()
    srv = grpc.server(futures.ThreadPoolExecutor(8),
                      interceptors=[tls.PeerGuard(CLUSTER, roles={"user", "controlplane"})])
    srv.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("t.Echo", {
        "Say": grpc.unary_unary_rpc_method_handler(handlers.say),
        "Count": grpc.unary_stream_rpc_method_handler(handlers.count),
        "Endless": grpc.unary_stream_rpc_method_handler(handlers.endless),
        "Hold": grpc.unary_unary_rpc_method_handler(handlers.hold),
        "Busy": grpc.unary_unary_rpc_method_handler(handlers.busy),
        "Who": grpc.unary_unary_rpc_method_handler(handlers.who),
    })])
    port = srv.add_secure_port("127.0.0.1:0", tls.ServerTLS(ca.cert_pem, cert, key).credentials())
    srv.start()
    try:
        yield f"127.0.0.1:{port}", handlers
    finally:
        srv.stop(None)


def _files(tmp: Path, ca_pem: bytes, cert: bytes, key: bytes) -> CLITLS:
    for name, data in (("ca.pem", ca_pem), ("cert.pem", cert), ("key.pem", key)):
        (tmp / name).write_bytes(data)
    return CLITLS(str(tmp / "ca.pem"), str(tmp / "cert.pem"), str(tmp / "key.pem"))


@pytest.fixture
def user(ca: pki.CA, tmp_path: Path) -> CLITLS:
    return _files(tmp_path, ca.cert_pem, *_pair(ca, "alice", ROLE))


@pytest.fixture
def channel(server: tuple[str, Handlers], user: CLITLS) -> Iterator[TLSChannel]:
    ch = TLSChannel(server[0], user)
    try:
        yield ch
    finally:
        ch.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---- calls -------------------------------------------------------------------------


def test_the_right_certificate_is_served_unary_and_streaming(channel: TLSChannel) -> None:
    assert channel.unary("/t.Echo/Say", b"hi") == b"hi"
    assert channel.unary("/t.Echo/Say", b"", timeout=WAIT) == b""
    assert list(channel.stream("/t.Echo/Count", b"n")) == [b"n-0", b"n-1", b"n-2"]
    token = [("authorization", "Bearer t0k3n")]
    assert channel.unary("/t.Echo/Who", b"", metadata=token) == b"Bearer t0k3n"
    # Closed, it connects again at the next call.
    channel.close()
    assert list(channel.stream("/t.Echo/Count", b"m", timeout=WAIT)) == [b"m-0", b"m-1", b"m-2"]


def test_a_consumer_that_stops_reading_cancels_the_stream(
        channel: TLSChannel, server: tuple[str, Handlers]) -> None:
    replies = channel.stream("/t.Echo/Endless", b"")
    assert next(replies) == b"first"
    replies.close()  # type: ignore[attr-defined]
    assert server[1].cancelled.wait(WAIT)


def test_statuses_the_server_sent_pass_through(channel: TLSChannel) -> None:
    with pytest.raises(RpcError) as err:
        channel.unary("/t.Echo/Busy", b"")
    assert (err.value.code, err.value.transport) == (UNAVAILABLE, False)
    assert err.value.details == "the cluster store is unavailable; try again later"
    with pytest.raises(RpcError) as err:
        channel.unary("/t.Echo/Hold", b"", timeout=0.2)
    assert (err.value.code, err.value.transport) == (DEADLINE_EXCEEDED, False)
    assert err.value.details == f"/t.Echo/Hold: no answer from {channel.address} within the 0.2 s deadline"
    with pytest.raises(RpcError) as err:
        channel.unary("/t.Echo/Say", b"", metadata=[("Bad Name", "x")])
    assert "metadata name" in err.value.details


def test_a_role_the_api_does_not_serve_gets_the_guards_line(
        ca: pki.CA, server: tuple[str, Handlers], tmp_path: Path) -> None:
    ch = TLSChannel(server[0], _files(tmp_path, ca.cert_pem, *_pair(ca, "worker-7", "node")))
    try:
        with pytest.raises(RpcError) as err:
            ch.unary("/t.Echo/Say", b"hi")
        assert (err.value.code, err.value.transport) == (PERMISSION_DENIED, False)
        assert err.value.details.startswith("worker-7 is a node: this API serves ")
        with pytest.raises(RpcError) as err:
            list(ch.stream("/t.Echo/Count", b"n"))
        assert err.value.code == PERMISSION_DENIED
    finally:
        ch.close()


# ---- failed handshakes and connections ------------------------------------------------


def _failure(address: str, files: CLITLS, timeout: float | None = None, stream: bool = False) -> RpcError:
    ch = TLSChannel(address, files, timeout=timeout)
    try:
        with pytest.raises(RpcError) as err:
            if stream:
                list(ch.stream("/t.Echo/Count", b"n"))
            else:
                ch.unary("/t.Echo/Say", b"hi")
        return err.value
    finally:
        ch.close()


def test_a_certificate_of_another_ca_is_refused_in_the_handshake(
        ca: pki.CA, server: tuple[str, Handlers], tmp_path: Path) -> None:
    stranger = pki.new_ca(CLUSTER, NOW)
    files = _files(tmp_path, ca.cert_pem, *_pair(stranger, "mallory", ROLE))
    for stream in (False, True):
        err = _failure(server[0], files, stream=stream)
        assert (err.code, err.transport) == (UNAVAILABLE, True)
        assert err.details.startswith(
            f"TLS handshake with {server[0]} failed: the control plane refused this client certificate "
            f"({files.cert_file}), or its own certificate is not from the CA in {files.ca_file} (")
        assert "\n" not in err.details


def test_a_wrong_ca_file_fails_the_handshake(
        ca: pki.CA, server: tuple[str, Handlers], tmp_path: Path) -> None:
    other = pki.new_ca(CLUSTER, NOW)
    files = _files(tmp_path, other.cert_pem, *_pair(other, "alice", ROLE))
    err = _failure(server[0], files)
    assert (err.code, err.transport) == (UNAVAILABLE, True)
    assert err.details.startswith(f"TLS handshake with {server[0]} failed:")
    assert f"not from the CA in {files.ca_file}" in err.details
    assert "CERTIFICATE_VERIFY_FAILED" in err.details


def test_a_server_certificate_without_the_control_plane_name_is_refused(
        ca: pki.CA, user: CLITLS) -> None:
    cert, key = _pair(ca, "cp-2", "controlplane", dns=["elsewhere.example"])
    srv = grpc.server(futures.ThreadPoolExecutor(1))
    port = srv.add_secure_port("127.0.0.1:0", tls.ServerTLS(ca.cert_pem, cert, key).credentials())
    srv.start()
    try:
        err = _failure(f"127.0.0.1:{port}", user)
    finally:
        srv.stop(None)
    assert (err.code, err.transport) == (UNAVAILABLE, True)
    assert err.details == (f"TLS handshake with 127.0.0.1:{port} failed: its certificate does not name "
                           "controlplane.orch (not a control plane's certificate?)")


def test_grpc_logs_nothing_under_the_error(ca: pki.CA, server: tuple[str, Handlers], tmp_path: Path) -> None:
    """The CLI's stderr holds its one line only: grpc-core's own handshake
    logging is off in a process where this module imports grpc."""
    other = pki.new_ca(CLUSTER, NOW)
    files = _files(tmp_path, other.cert_pem, *_pair(other, "alice", ROLE))
    script = ("import sys\n"
              "from orch.cli.tlschannel import CLITLS, TLSChannel\n"
              "from orch.cli.h2grpc import RpcError\n"
              "ch = TLSChannel(sys.argv[1], CLITLS(*sys.argv[2:5]))\n"
              "try:\n    ch.unary('/t.Echo/Say', b'hi')\n"
              "except RpcError as err:\n    print(err.details)\n")
    env = {k: v for k, v in os.environ.items() if k != "GRPC_VERBOSITY"}
    done = subprocess.run([sys.executable, "-c", script, server[0], files.ca_file, files.cert_file,
                           files.key_file], capture_output=True, text=True, timeout=60, env=env,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.stdout.startswith(f"TLS handshake with {server[0]} failed:"), done.stderr
    assert done.stderr == ""
    assert "GRPC_VERBOSITY" not in os.environ


def test_a_plaintext_endpoint_is_named_as_such(user: CLITLS) -> None:
    plain = grpc.server(futures.ThreadPoolExecutor(1))
    port = plain.add_insecure_port("127.0.0.1:0")
    plain.start()
    try:
        err = _failure(f"127.0.0.1:{port}", user)
    finally:
        plain.stop(None)
    assert (err.code, err.transport) == (UNAVAILABLE, True)
    assert err.details.startswith(f"TLS handshake with 127.0.0.1:{port} failed: it does not speak TLS")


def test_nobody_listening_is_an_error_not_a_hang(user: CLITLS) -> None:
    address = f"127.0.0.1:{_free_port()}"
    err = _failure(address, user, timeout=WAIT)
    assert (err.code, err.transport) == (UNAVAILABLE, True)
    assert err.details.startswith(f"cannot connect to {address}: ")
    assert "refused" in err.details.lower()


def test_a_listener_that_never_answers_times_out(user: CLITLS) -> None:
    with socket.socket() as mute:  # the kernel completes the connect; nobody ever speaks TLS
        mute.bind(("127.0.0.1", 0))
        mute.listen(8)
        address = f"127.0.0.1:{mute.getsockname()[1]}"
        err = _failure(address, user, timeout=0.3)
        assert (err.code, err.transport) == (UNAVAILABLE, True)
        assert err.details == (f"no connection to {address}: the connect or the TLS handshake timed out "
                               "(unreachable, or it does not answer TLS)")
        # A call's own shorter timeout ends the wait first.
        ch = TLSChannel(address, user)
        try:
            with pytest.raises(RpcError) as err_info:
                list(ch.stream("/t.Echo/Count", b"", timeout=0.2))
            assert (err_info.value.code, err_info.value.transport) == (DEADLINE_EXCEEDED, False)
            assert err_info.value.details == (f"/t.Echo/Count: no answer from {address} "
                                              "within the 0.2 s deadline")
        finally:
            ch.close()


def test_the_cluster_client_fails_over_to_a_replica_that_answers(
        server: tuple[str, Handlers], user: CLITLS) -> None:
    """client.Cluster over TLSChannel: a replica nobody listens at is skipped,
    a refusal becomes its one-line CLIError."""

    class TLSCluster(Cluster):
        SERVICE = "t.Echo"

        def _connect(self, host: str) -> Any:
            return TLSChannel(host, user)

    api = TLSCluster([f"127.0.0.1:{_free_port()}", server[0]])
    try:
        assert api.call_bytes("Say", b"hi") == b"hi"
        assert api.host == server[0]
        assert list(api.stream_bytes("Count", b"s")) == [b"s-0", b"s-1", b"s-2"]
        with pytest.raises(CLIError) as err:
            api.call_bytes("Busy", b"")
        assert err.value.message == "the cluster store is unavailable; try again later"
    finally:
        api.close()


# ---- where the files come from -------------------------------------------------------


ENV = ("ORCH_TLS_CACERT", "ORCH_TLS_CERT", "ORCH_TLS_KEY", "ORCH_CERT_PATH")


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_tls_flags(parser)
    return parser.parse_args(list(argv))


def test_nothing_set_is_no_tls(env: pytest.MonkeyPatch) -> None:
    assert _args().tlscacert is None
    assert tls_from(_args()) is None
    assert tls_from(argparse.Namespace()) is None  # a command without the flags


def test_flags_then_variables_then_the_cert_path(env: pytest.MonkeyPatch) -> None:
    flags = tls_from(_args("--tlscacert", "/f/ca", "--tlscert", "/f/cert", "--tlskey", "/f/key"))
    assert flags == CLITLS("/f/ca", "/f/cert", "/f/key")
    assert flags is not None and flags.origins == ("--tlscacert", "--tlscert", "--tlskey")
    env.setenv("ORCH_CERT_PATH", "/d/")
    assert tls_from(_args()) == CLITLS("/d/ca.pem", "/d/cert.pem", "/d/key.pem")
    env.setenv("ORCH_TLS_CERT", "/e/cert")
    env.setenv("ORCH_TLS_KEY", "/e/key")
    mixed = tls_from(_args("--tlskey", "/f/key"))
    assert mixed == CLITLS("/d/ca.pem", "/e/cert", "/f/key")
    assert mixed is not None and mixed.origins == ("$ORCH_CERT_PATH", "$ORCH_TLS_CERT", "--tlskey")
    env.setenv("ORCH_TLS_CACERT", "/e/ca")
    assert tls_from(_args()) == CLITLS("/e/ca", "/e/cert", "/e/key")


def test_partial_settings_name_what_is_missing(env: pytest.MonkeyPatch) -> None:
    with pytest.raises(CLIError) as err:
        tls_from(_args("--tlscacert", "/f/ca", "--tlscert", "/f/cert"))
    assert "the client key (--tlskey or $ORCH_TLS_KEY) is not set" in err.value.message
    assert "$ORCH_CERT_PATH" in err.value.message
    env.setenv("ORCH_TLS_CERT", "/e/cert")
    with pytest.raises(CLIError) as err:
        tls_from(_args())
    assert ("the CA certificate (--tlscacert or $ORCH_TLS_CACERT) and the client key "
            "(--tlskey or $ORCH_TLS_KEY) are not set") in err.value.message
    env.setenv("ORCH_TLS_CERT", "")  # empty is unset
    assert tls_from(_args()) is None


# ---- the files themselves --------------------------------------------------------------


def _load_error(files: CLITLS) -> str:
    with pytest.raises(CLIError) as err:
        files.load()
    assert "\n" not in err.value.message
    return err.value.message


def test_load_reads_the_files_and_names_a_bad_one(ca: pki.CA, user: CLITLS, tmp_path: Path,
                                                  env: pytest.MonkeyPatch) -> None:
    ca_pem, cert, key = user.load()
    assert ca_pem == ca.cert_pem and cert.startswith(b"-----BEGIN CERTIFICATE-----")
    assert b"PRIVATE KEY" in key
    bad = tmp_path / "bad"
    bad.mkdir()

    missing = CLITLS(str(bad / "none.pem"), user.cert_file, user.key_file)
    assert _load_error(missing) == (f"TLS CA certificate {bad / 'none.pem'} (from --tlscacert or "
                                    "$ORCH_TLS_CACERT): cannot read it: No such file or directory")
    env.setenv("ORCH_CERT_PATH", str(bad))
    from_dir = tls_from(_args())
    assert from_dir is not None
    assert _load_error(from_dir).startswith(f"TLS CA certificate {bad / 'ca.pem'} (from $ORCH_CERT_PATH): ")
    assert "is a directory" in _load_error(CLITLS(user.ca_file, str(bad), user.key_file)).lower()

    swapped = CLITLS(user.ca_file, user.key_file, user.cert_file)
    assert _load_error(swapped) == (f"TLS client certificate {user.key_file} (from --tlscert or "
                                    "$ORCH_TLS_CERT): not a PEM certificate (it holds a private key: "
                                    "swapped with the key?)")
    (bad / "text").write_text("hello\n")
    assert _load_error(CLITLS(user.ca_file, user.cert_file, str(bad / "text"))).endswith(
        ": not a PEM private key")
    assert _load_error(CLITLS(user.ca_file, user.cert_file, user.cert_file)).endswith(
        "not a PEM private key (it holds a certificate: swapped with the certificate?)")

    damaged = bad / "damaged.pem"
    damaged.write_bytes(cert[:40] + b"A" * 20 + cert[60:])
    assert _load_error(CLITLS(str(damaged), user.cert_file, user.key_file)) == (
        f"TLS CA certificate {damaged} (from --tlscacert or $ORCH_TLS_CACERT): "
        "a damaged or truncated PEM certificate")
    assert _load_error(CLITLS(user.ca_file, str(damaged), user.key_file)).endswith(
        "(from --tlscert or $ORCH_TLS_CERT): a damaged or truncated PEM certificate")
    damaged_key = bad / "damaged.key"
    damaged_key.write_bytes(key[:40] + b"A" * 20 + key[60:])
    assert _load_error(CLITLS(user.ca_file, user.cert_file, str(damaged_key))).endswith(
        "(from --tlskey or $ORCH_TLS_KEY): a damaged or truncated PEM private key")

    _, other_key = _pair(ca, "bob", ROLE)
    (bad / "other.key").write_bytes(other_key)
    assert _load_error(CLITLS(user.ca_file, user.cert_file, str(bad / "other.key"))) == (
        f"TLS client key {bad / 'other.key'} (from --tlskey or $ORCH_TLS_KEY): not the key of the "
        f"certificate {user.cert_file} (from --tlscert or $ORCH_TLS_CERT)")
    (bad / "enc.key").write_text("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n"
                                 "-----END ENCRYPTED PRIVATE KEY-----\n")
    assert _load_error(CLITLS(user.ca_file, user.cert_file, str(bad / "enc.key"))).endswith(
        ": the key is encrypted; orch needs it unencrypted")


def test_the_channel_loads_its_files_when_built(user: CLITLS, tmp_path: Path) -> None:
    with pytest.raises(CLIError) as err:
        TLSChannel("127.0.0.1:1", CLITLS(user.ca_file, user.cert_file, str(tmp_path / "gone.key")))
    assert err.value.message.startswith(f"TLS client key {tmp_path / 'gone.key'} ")
    assert tlschannel.CONTROLPLANE_NAME == "controlplane.orch"
