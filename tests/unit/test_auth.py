"""Bearer tokens on orch's TCP APIs (common.auth): token files and the
server interceptor, against a real grpcio server on loopback."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from common.auth import TokenError, bearer, interceptor, read_token, token_from, write_token

SERVICE = "/test.Guarded/"


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


def _echo(request: bytes, context: grpc.ServicerContext) -> bytes:
    return b"echo:" + request


def _stream(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
    yield b"one"
    yield b"two"


@pytest.fixture
def server() -> Iterator[str]:
    handlers = {
        "Open": grpc.unary_unary_rpc_method_handler(_echo),
        "Closed": grpc.unary_unary_rpc_method_handler(_echo),
        "Stream": grpc.unary_stream_rpc_method_handler(_stream),
    }
    other = {"Ping": grpc.unary_unary_rpc_method_handler(_echo)}
    guard = interceptor(lambda: "right", (SERVICE,), {SERVICE + "Open", SERVICE + "Stream"},
                        what="the test API")
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=4), interceptors=[guard])
    srv.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Guarded", handlers),
                                  grpc.method_handlers_generic_handler("test.Other", other)))
    port = srv.add_insecure_port("127.0.0.1:0")
    srv.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        srv.stop(grace=0).wait()


def _call(address: str, method: str, metadata: list[tuple[str, str]] | None) -> bytes:
    with grpc.insecure_channel(address) as channel:
        return bytes(channel.unary_unary(method)(b"hi", metadata=metadata, timeout=10))


def test_the_right_token_passes_and_others_are_unauthenticated(server: str) -> None:
    assert _call(server, SERVICE + "Open", bearer("right")) == b"echo:hi"
    for metadata in (None, bearer("wrong"), bearer(""), [("authorization", "Basic right")],
                     [("authorization", "Bearer right-but-longer")]):
        with pytest.raises(grpc.RpcError) as err:
            _call(server, SERVICE + "Open", metadata)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "the test API needs a valid token" in (err.value.details() or "")


def test_methods_not_offered_are_refused_even_with_the_token(server: str) -> None:
    with pytest.raises(grpc.RpcError) as err:
        _call(server, SERVICE + "Closed", bearer("right"))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "Closed is not served on the test API" in (err.value.details() or "")


def test_streams_are_guarded_and_unguarded_services_pass(server: str) -> None:
    with grpc.insecure_channel(server) as channel:
        stream = channel.unary_stream(SERVICE + "Stream")
        assert list(stream(b"", metadata=bearer("right"), timeout=10)) == [b"one", b"two"]
        with pytest.raises(grpc.RpcError) as err:
            list(stream(b"", timeout=10))
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert _call(server, "/test.Other/Ping", None) == b"echo:hi"
