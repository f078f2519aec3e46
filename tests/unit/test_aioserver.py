"""common.aioserver: sync servicers on the loop server behave as on grpc's
own sync server (the library it stands in for), async ones run on its loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest

from common.aioserver import LoopServer

SERVICE = "t.Echo"


class Servicer:
    """Raw-bytes handlers of every kind, sync, as the API's are."""

    def __init__(self) -> None:
        self.polling = threading.Event()  # a follower polls is_active()
        self.left = threading.Event()  # and saw it turn false
        self.called_back = threading.Event()  # add_callback's callback ran

    def Echo(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        if request == b"abort":
            context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")
        if request == b"raise":
            raise RuntimeError("a bug")
        return b"echo:" + request

    def Count(self, request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        for i in range(int(request)):
            if i == 2 and int(request) > 10:
                context.abort(grpc.StatusCode.OUT_OF_RANGE, "at most 10")
            yield str(i).encode()

    def Follow(self, request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        context.add_callback(self.called_back.set)
        yield b"first"
        while context.is_active():
            self.polling.set()
            self.called_back.wait(0.05)
        self.left.set()

    def Sum(self, requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
        return str(sum(int(r) for r in requests)).encode()

    def Upper(self, requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        for r in requests:
            yield r.upper()


class AsyncServicer:
    async def Tick(self, request: bytes, context: Any) -> None:
        for i in range(int(request)):
            await context.write(str(i).encode())
            await asyncio.sleep(0)


class Deny(grpc.ServerInterceptor):  # type: ignore[misc]
    """A sync interceptor that refuses one method, as PeerGuard refuses a role."""

    def intercept_service(self, continuation: Any, details: Any) -> Any:
        handler = continuation(details)
        if handler is None or not details.method.endswith("/Denied"):
            return handler

        def refuse(request: bytes, context: grpc.ServicerContext) -> bytes:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "not you")
            return b""
        return grpc.unary_unary_rpc_method_handler(refuse)


def _add(servicer: Servicer, server: Any) -> None:
    handlers = {
        "Echo": grpc.unary_unary_rpc_method_handler(servicer.Echo),
        "Denied": grpc.unary_unary_rpc_method_handler(servicer.Echo),
        "Count": grpc.unary_stream_rpc_method_handler(servicer.Count),
        "Follow": grpc.unary_stream_rpc_method_handler(servicer.Follow),
        "Sum": grpc.stream_unary_rpc_method_handler(servicer.Sum),
        "Upper": grpc.stream_stream_rpc_method_handler(servicer.Upper),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))


@pytest.fixture(params=["grpc.server", "LoopServer"])
def served(request: pytest.FixtureRequest) -> Iterator[tuple[grpc.Channel, Servicer]]:
    servicer = Servicer()
    if request.param == "LoopServer":
        server: Any = LoopServer(interceptors=[Deny()], api_threads=4)
    else:
        server = grpc.server(futures.ThreadPoolExecutor(8), interceptors=[Deny()])
    _add(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield channel, servicer
    finally:
        channel.close()
        server.stop(0).wait()


def _code(call: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value.code(), err.value.details()


def test_unary_calls_reply_abort_and_fail_as_on_the_sync_server(
        served: tuple[grpc.Channel, Servicer]) -> None:
    channel, _ = served
    echo = channel.unary_unary(f"/{SERVICE}/Echo")
    assert echo(b"hi", timeout=10) == b"echo:hi"
    assert _code(lambda: echo(b"abort", timeout=10)) == (grpc.StatusCode.NOT_FOUND, "no such thing")
    assert _code(lambda: echo(b"raise", timeout=10))[0] == grpc.StatusCode.UNKNOWN
    denied = channel.unary_unary(f"/{SERVICE}/Denied")
    assert _code(lambda: denied(b"hi", timeout=10)) == (grpc.StatusCode.PERMISSION_DENIED, "not you")
    assert _code(lambda: channel.unary_unary(f"/{SERVICE}/Nope")(b"", timeout=10))[0] == \
        grpc.StatusCode.UNIMPLEMENTED


def test_streams_both_ways(served: tuple[grpc.Channel, Servicer]) -> None:
    channel, _ = served
    count = channel.unary_stream(f"/{SERVICE}/Count")
    assert list(count(b"3", timeout=10)) == [b"0", b"1", b"2"]
    got: list[bytes] = []
    assert _code(lambda: got.extend(count(b"20", timeout=10))) == (grpc.StatusCode.OUT_OF_RANGE, "at most 10")
    assert got == [b"0", b"1"]
    assert channel.stream_unary(f"/{SERVICE}/Sum")(iter([b"1", b"2", b"39"]), timeout=10) == b"42"
    upper = channel.stream_stream(f"/{SERVICE}/Upper")
    assert list(upper(iter([b"a", b"b"]), timeout=10)) == [b"A", b"B"]


def test_a_stream_whose_client_leaves_is_no_longer_active_and_runs_its_callbacks(
        served: tuple[grpc.Channel, Servicer]) -> None:
    """A follower (`orch logs -f`) polls is_active() to end; the exec proxy
    cancels its upstream call from add_callback's callback."""
    channel, servicer = served
    call = channel.unary_stream(f"/{SERVICE}/Follow")(b"", timeout=30)
    assert next(call) == b"first"
    assert servicer.polling.wait(10)
    assert not servicer.called_back.is_set()
    call.cancel()
    assert servicer.called_back.wait(10)
    assert servicer.left.wait(10)


def test_async_handlers_run_on_the_loop() -> None:
    server = LoopServer(interceptors=[Deny()])
    tick = grpc.unary_stream_rpc_method_handler(AsyncServicer().Tick)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {"Tick": tick}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            assert list(channel.unary_stream(f"/{SERVICE}/Tick")(b"1000", timeout=30)) == \
                [str(i).encode() for i in range(1000)]
    finally:
        server.stop(0).wait()


def test_grpc_aio_own_sync_mode_lacks_what_the_api_needs() -> None:
    """Why the bridge: grpc.aio's migration_thread_pool gives a sync handler
    a context without is_active()."""
    seen: list[bool] = []

    def probe(request: bytes, context: Any) -> bytes:
        seen.append(hasattr(context, "is_active"))
        return b""

    async def main() -> None:
        server = grpc.aio.server(migration_thread_pool=futures.ThreadPoolExecutor(2))
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            SERVICE, {"Probe": grpc.unary_unary_rpc_method_handler(probe)}),))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await channel.unary_unary(f"/{SERVICE}/Probe")(b"", timeout=10)
        await server.stop(0)

    asyncio.run(main())
    assert seen == [False]
