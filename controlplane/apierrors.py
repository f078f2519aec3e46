"""Store failures at the API's edge: retried while the client waits, then
said plainly.

While etcd is down or has no quorum, a handler's read or write raises
``StoreUnavailable``. A unary call is run again, with a short pause, until
the client's deadline is near (or ``UNARY_RETRY`` seconds without one), then
ends UNAVAILABLE with "the cluster store (etcd) is unavailable". Running a
handler again is safe: every API write is a compare-and-swap that a second
run either repeats or finds already done (a deploy of the same spec, a scale
to the same count). Streams are not retried: they end UNAVAILABLE at once.
A full store (``StoreFull``) ends it RESOURCE_EXHAUSTED with "the cluster
store is full ...". Any other ``StoreError`` ends the call with its message,
never as gRPC's "Exception calling application".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import grpc
import structlog

from controlplane.store import StoreError, StoreFull, StoreUnavailable

log = structlog.get_logger("orch.api")

__all__ = ["UNARY_RETRY", "store_errors"]

UNARY_RETRY = 10.0  # seconds a unary call retries when its client set no deadline
PAUSE = 0.2


def _unavailable(err: StoreError) -> str:
    return f"the cluster store (etcd) is unavailable: {err}; try again once it is back"


def _abort(context: grpc.ServicerContext, err: StoreError) -> None:
    if isinstance(err, StoreUnavailable):
        context.abort(grpc.StatusCode.UNAVAILABLE, _unavailable(err))
    if isinstance(err, StoreFull):  # its message says so and what to do; not retried
        context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(err))
    context.abort(grpc.StatusCode.INTERNAL, f"cluster store error: {err}")


def _unary(behavior: Callable[[Any, grpc.ServicerContext], Any], clock: Callable[[], float],
           on_retry: Callable[[StoreError], None]) -> Callable[[Any, grpc.ServicerContext], Any]:
    def run(request: Any, context: grpc.ServicerContext) -> Any:
        remaining = context.time_remaining()
        budget = UNARY_RETRY if remaining is None or remaining > 1e6 else remaining - 2 * PAUSE
        deadline = clock() + budget
        while True:
            try:
                return behavior(request, context)
            except StoreUnavailable as err:
                if clock() + PAUSE >= deadline or not context.is_active():
                    _abort(context, err)
                on_retry(err)
                time.sleep(PAUSE)
            except StoreError as err:
                _abort(context, err)

    return run


def _stream(behavior: Callable[[Any, grpc.ServicerContext], Any]) -> Callable[..., Any]:
    def run(request: Any, context: grpc.ServicerContext) -> Any:
        try:
            yield from behavior(request, context)
        except StoreError as err:
            _abort(context, err)

    return run


def _log_retry(method: str) -> Callable[[StoreError], None]:
    def retrying(err: StoreError) -> None:
        log.warning("cluster store unavailable; retrying the call", method=method, error=str(err))

    return retrying


def store_errors(clock: Callable[[], float] = time.monotonic,
                 on_retry: Callable[[StoreError], None] | None = None) -> grpc.ServerInterceptor:
    """A server interceptor applying the rules above to every handler that
    takes one request (the CLI API's; agent sessions stream both ways and
    handle the store themselves). ``on_retry`` hears of each failed attempt
    that will be retried; by default it is logged with the call's method."""

    class _Interceptor(grpc.ServerInterceptor):  # type: ignore[misc]
        def intercept_service(self, continuation: Any, details: Any) -> Any:
            handler = continuation(details)
            if handler is None or handler.request_streaming:
                return handler
            codecs = {"request_deserializer": handler.request_deserializer,
                      "response_serializer": handler.response_serializer}
            if handler.response_streaming:
                return grpc.unary_stream_rpc_method_handler(_stream(handler.unary_stream), **codecs)
            method = details.method.rpartition("/")[2]
            retried = on_retry or _log_retry(method)
            return grpc.unary_unary_rpc_method_handler(_unary(handler.unary_unary, clock, retried),
                                                       **codecs)

    return _Interceptor()
