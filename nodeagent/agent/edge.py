"""The gRPC edge's error mapping: an ``AgentError`` becomes a status code
with its user-facing message as details; anything else is gRPC's INTERNAL."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Iterator
from typing import Any

import grpc

from common.errors import AgentError

__all__ = ["handle_errors"]

_STATUS = {
    "not_found": grpc.StatusCode.NOT_FOUND,
    "invalid": grpc.StatusCode.INVALID_ARGUMENT,
    "conflict": grpc.StatusCode.ALREADY_EXISTS,
    "precondition": grpc.StatusCode.FAILED_PRECONDITION,
    "setup": grpc.StatusCode.FAILED_PRECONDITION,
    "unavailable": grpc.StatusCode.UNAVAILABLE,
}


def _abort(context: grpc.ServicerContext, err: AgentError) -> None:
    context.abort(_STATUS.get(err.code, grpc.StatusCode.INTERNAL), err.message)


def handle_errors(fn: Any) -> Any:
    """Map AgentError to a gRPC status; works for unary and streaming handlers."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen_wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            try:
                yield from fn(self, request, context)
            except AgentError as err:
                _abort(context, err)
        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return fn(self, request, context)
        except AgentError as err:
            _abort(context, err)
    return wrapper
