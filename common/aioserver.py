"""A gRPC server whose streams hold no thread: grpc.aio on an event loop of
its own, with a synchronous face, serving grpc's ordinary sync servicers too.

Why: grpc's sync server runs every call on a thread of its pool, for as long
as the call lasts. A control plane holds a stream open for each node, so
1,000 nodes were 1,000 pool threads (and a reader thread each). Measured on
``orch sim --nodes 1000`` (2 cores): the replica spent its core handing the
GIL from thread to thread, 71 % of it in the kernel, with the GIL held only
8 % of the time, and 727 nodes came up in 110 s. Here an async handler (a
coroutine or an async generator: the dispatcher's sessions) runs on the
loop, and a session costs a task, not threads.

The API's handlers stay as they are: sync functions, wrapped by the same
sync interceptors (``grpc.ServerInterceptor``), run on a thread pool, a
stream's handler holding a thread only while its ``next()`` runs. They get a
context (``SyncContext``) that behaves as the sync server's does. grpc.aio's
own mode for sync handlers (``migration_thread_pool``) was not enough: its
context has no ``is_active()`` (a following stream polls it to end; checked
on grpcio 1.85 in ``tests/unit/test_aioserver.py``), its source runs
``add_callback``'s callbacks only after a unary handler returns (never when
a stream's client goes: the exec proxy cancels its upstream call so), and a
grpc.aio server takes only coroutine interceptors.

Interceptors run once per method, and their handler is kept: an interceptor
here must not decide by a call's metadata (none of orch's does).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
import queue
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from typing import Any, TypeVar

import grpc
import grpc.aio

__all__ = ["LoopServer", "SyncContext"]

T = TypeVar("T")

API_THREADS = 64  # sync unary calls running at once
# Sync streams' next() running at once: a follower (`orch logs -f`, the
# events' watch) blocks one while it waits for its next line.
STREAM_THREADS = 512
_END = object()


class _Aborted(Exception):
    """Raised in a sync handler by ``SyncContext.abort``, as grpc's sync
    server raises there; the call ends with the status it was given."""


class SyncContext:
    """A call's ``grpc.ServicerContext`` for a sync handler on a worker
    thread, over the call's grpc.aio context on the loop."""

    def __init__(self, context: grpc.aio.ServicerContext, loop: asyncio.AbstractEventLoop) -> None:
        self._context = context
        self._loop = loop
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], Any]] = []
        self.aborted: tuple[grpc.StatusCode, str] | None = None
        self._code: grpc.StatusCode | None = None
        self._details = ""
        context.add_done_callback(lambda _: self._finish())  # type: ignore[arg-type]

    def _finish(self) -> None:
        with self._lock:
            self._done.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    # ---- what handlers call ----------------------------------------------

    def is_active(self) -> bool:
        return not self._done.is_set()

    def add_callback(self, callback: Callable[[], Any]) -> bool:
        """Run ``callback`` when the call ends (False, and not run, if it has)."""
        with self._lock:
            if self._done.is_set():
                return False
            self._callbacks.append(callback)
            return True

    def abort(self, code: grpc.StatusCode, details: str = "") -> None:
        self.aborted = (code, details)
        self._code, self._details = code, details
        raise _Aborted(details)

    def abort_with_status(self, status: Any) -> None:
        self.abort(status.code, status.details)

    def time_remaining(self) -> float | None:
        return self._context.time_remaining()

    def peer(self) -> str:
        return self._context.peer()

    def peer_identities(self) -> Any:
        return self._context.peer_identities()

    def peer_identity_key(self) -> Any:
        return self._context.peer_identity_key()

    def auth_context(self) -> Any:
        return self._context.auth_context()

    def invocation_metadata(self) -> Any:
        return self._context.invocation_metadata()

    def set_code(self, code: grpc.StatusCode) -> None:
        self._code = code
        self._context.set_code(code)

    def set_details(self, details: str) -> None:
        self._details = details
        self._context.set_details(details)

    def code(self) -> grpc.StatusCode | None:
        return self._code

    def details(self) -> str:
        return self._details

    def set_trailing_metadata(self, metadata: Any) -> None:
        self._context.set_trailing_metadata(metadata)

    def send_initial_metadata(self, metadata: Any) -> None:
        asyncio.run_coroutine_threadsafe(self._context.send_initial_metadata(metadata), self._loop).result()


def _is_async(behavior: Any) -> bool:
    return inspect.iscoroutinefunction(behavior) or inspect.isasyncgenfunction(behavior)


class _Bridge(grpc.GenericRpcHandler):  # type: ignore[misc]
    """The loop server's one generic handler: finds a method among the added
    servicers', runs the sync interceptors over it, and serves a sync
    behavior from the pools."""

    def __init__(self, server: LoopServer) -> None:
        self.server = server
        self.cache: dict[str, grpc.RpcMethodHandler | None] = {}

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method = details.method
        if method not in self.cache:
            handler = self._intercepted(0, details)
            self.cache[method] = None if handler is None else self._async(handler)
        return self.cache[method]

    def _intercepted(self, i: int, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        interceptors = self.server.interceptors
        if i == len(interceptors):
            return next((h for g in self.server.handlers if (h := g.service(details)) is not None), None)
        return interceptors[i].intercept_service(functools.partial(self._intercepted, i + 1), details)

    def _async(self, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        for kind in ("unary_unary", "unary_stream", "stream_unary", "stream_stream"):
            behavior = getattr(handler, kind)
            if behavior is None or _is_async(behavior):
                continue
            wrapped = (self._stream(behavior, handler.request_streaming) if handler.response_streaming
                       else self._unary(behavior, handler.request_streaming))
            return handler._replace(**{kind: wrapped})  # type: ignore[attr-defined]
        return handler

    def _unary(self, behavior: Callable[[Any, Any], Any], streamed: bool) -> Callable[..., Any]:
        server = self.server

        async def run(request: Any, context: grpc.aio.ServicerContext) -> Any:
            loop = asyncio.get_running_loop()
            sync = SyncContext(context, loop)
            pump = _Pump(request) if streamed else None
            try:
                reply = await loop.run_in_executor(server.unary_pool, behavior,
                                                   pump.iterator if pump else request, sync)
            except _Aborted:
                reply = None
            finally:
                if pump is not None:
                    pump.task.cancel()
            if sync.aborted is not None:
                await context.abort(*sync.aborted)
            return reply

        return run

    def _stream(self, behavior: Callable[[Any, Any], Any], streamed: bool) -> Callable[..., Any]:
        pool = self.server.stream_pool

        async def run(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            loop = asyncio.get_running_loop()
            sync = SyncContext(context, loop)
            pump = _Pump(request) if streamed else None
            pending: concurrent.futures.Future[Any] | None = None
            replies: Iterator[Any] | None = None
            try:
                pending = pool.submit(behavior, pump.iterator if pump else request, sync)
                replies = iter(await asyncio.wrap_future(pending))
                while True:
                    pending = pool.submit(next, replies, _END)
                    reply = await asyncio.wrap_future(pending)
                    if reply is _END:
                        break
                    yield reply
                pending = None
            except _Aborted:
                pending = None
            finally:
                if pump is not None:
                    pump.task.cancel()
                if replies is not None:
                    # The generator's own finally runs on a worker, once any
                    # next() still running there returns (never two at once).
                    closing = _closer(pool, replies)
                    if pending is not None and not pending.done():
                        pending.add_done_callback(closing)
                    else:
                        closing(None)
            if sync.aborted is not None:
                await context.abort(*sync.aborted)

        return run


def _closer(pool: concurrent.futures.Executor, replies: Iterator[Any]) -> Callable[[Any], None]:
    def close(_: Any) -> None:
        if hasattr(replies, "close"):
            pool.submit(_quietly, replies.close)
    return close


def _quietly(fn: Callable[[], Any]) -> None:
    try:
        fn()
    except Exception:
        pass


class _Pump:
    """A client's async stream of requests as the blocking iterator a sync
    handler reads."""

    def __init__(self, requests: Any) -> None:
        self.queue: queue.Queue[Any] = queue.Queue()
        self.task = asyncio.get_running_loop().create_task(self._run(requests))
        self.iterator = iter(self.queue.get, _END)

    async def _run(self, requests: Any) -> None:
        try:
            async for request in requests:
                self.queue.put(request)
        except Exception:
            pass
        finally:
            self.queue.put(_END)


class LoopServer:
    """A grpc.aio server on its own loop thread, driven from sync code like
    ``grpc.server``: ``add_*Servicer_to_server(servicer, server)``, then
    ``add_insecure_port``/``add_secure_port``, ``start()``, ``stop(grace)``.
    Async handlers run on the loop (``loop``), sync ones on the pools."""

    def __init__(self, interceptors: Sequence[grpc.ServerInterceptor] = (),
                 options: Sequence[tuple[str, Any]] = (), api_threads: int = API_THREADS,
                 name: str = "grpc") -> None:
        self.interceptors = list(interceptors)
        self.handlers: list[grpc.GenericRpcHandler] = []
        self.unary_pool = concurrent.futures.ThreadPoolExecutor(api_threads, thread_name_prefix=name)
        self.stream_pool = concurrent.futures.ThreadPoolExecutor(STREAM_THREADS,
                                                                 thread_name_prefix=f"{name}-stream")
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=f"{name}-loop", daemon=True)
        self._thread.start()

        async def make() -> grpc.aio.Server:
            server = grpc.aio.server(options=list(options))
            server.add_generic_rpc_handlers([_Bridge(self)])
            return server

        self._server = self._run(make())

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def _on_loop(self, fn: Callable[[], T]) -> T:
        async def call() -> T:
            return fn()
        return self._run(call())

    # grpc.Server's face, for the generated add_*Servicer_to_server.
    def add_generic_rpc_handlers(self, handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        self.handlers.extend(handlers)

    def add_registered_method_handlers(self, service: str, handlers: Any) -> None:
        pass  # the generic handler added with them serves the same methods

    def add_insecure_port(self, address: str) -> int:
        return self._on_loop(lambda: self._server.add_insecure_port(address))

    def add_secure_port(self, address: str, credentials: grpc.ServerCredentials) -> int:
        return self._on_loop(lambda: self._server.add_secure_port(address, credentials))

    def start(self) -> None:
        self._run(self._server.start())

    def stop(self, grace: float | None) -> threading.Event:
        """Stop serving (calls get ``grace`` seconds to end), then the loop and
        the pools; the event is set once all have."""
        done = threading.Event()
        if not self._thread.is_alive():
            done.set()
            return done

        async def stop() -> None:
            await self._server.stop(grace)
            # What the handlers left running on the loop (a sampler, a
            # session's reader) ends with it, not destroyed while pending.
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)

        future = asyncio.run_coroutine_threadsafe(stop(), self.loop)

        def finish(_: Any) -> None:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join()
            self.loop.close()
            self.unary_pool.shutdown(wait=False, cancel_futures=True)
            self.stream_pool.shutdown(wait=False, cancel_futures=True)
            done.set()

        future.add_done_callback(lambda f: threading.Thread(target=finish, args=(f,), daemon=True).start())
        return done
