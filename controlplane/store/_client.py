"""Connecting to etcd through pyetcd, and turning its failures into store errors.

Invariants:
- endpoints are ``http://host:port`` (or ``host:port``); TLS is not wired yet;
- with several endpoints, a failed one is skipped for ``_RETRY_FAILED`` seconds (not
  pyetcd's five minutes); a lone endpoint is never skipped, so a restarted etcd is
  used again at once;
- ``read`` retries a read that found etcd unavailable until the client's timeout;
  writes are never retried here (the caller re-reads and decides again);
- gRPC reconnects with a short capped backoff for the same reason;
- every pyetcd or gRPC failure leaves this module as a ``StoreError``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import TypeVar
from urllib.parse import urlsplit

import grpc
import pyetcd
from pyetcd import exceptions as etcd_exc

from .errors import StoreCompacted, StoreError, StoreFull, StoreUnavailable

__all__ = ["connect", "parse_endpoint", "read", "translate"]

_RETRY_FAILED = 0.5
_READ_RETRY_PAUSE = 0.05
R = TypeVar("R")
_GRPC_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 16 * 1024 * 1024),
]


def parse_endpoint(endpoint: str) -> tuple[str, int]:
    """``(host, port)`` of ``http://host:port`` or ``host:port``."""
    url = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
    if url.scheme != "http":
        raise ValueError(f"etcd endpoint {endpoint!r}: only http:// is supported for now")
    if not url.hostname or not url.port:
        raise ValueError(f"etcd endpoint {endpoint!r}: expected http://host:port")
    return url.hostname, url.port


def connect(endpoints: list[str], timeout: float) -> pyetcd.MultiEndpointEtcd3Client:
    """A client over ``endpoints`` that fails over between them; RPCs time out after ``timeout``."""
    if not endpoints:
        raise ValueError("no etcd endpoints given")
    skip_failed = _RETRY_FAILED if len(endpoints) > 1 else 0.0
    eps = [pyetcd.Endpoint(host, port, secure=False, time_retry=skip_failed, opts=_GRPC_OPTIONS)
           for host, port in map(parse_endpoint, endpoints)]
    return pyetcd.MultiEndpointEtcd3Client(endpoints=eps, timeout=timeout, failover=True)


_NOSPACE = "database space exceeded"  # etcd's ErrNoSpace, under its NOSPACE alarm
_UNAVAILABLE_CODES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                     grpc.StatusCode.CANCELLED)
_UNAVAILABLE_EXC = (etcd_exc.ConnectionFailedError, etcd_exc.ConnectionTimeoutError,
                    etcd_exc.NoServerAvailableError, etcd_exc.WatchTimedOut)


def error_of(exc: BaseException | None, what: str) -> StoreError:
    """The store error for a pyetcd/gRPC failure (or a silent stream end) while doing ``what``."""
    if isinstance(exc, StoreError):
        return exc
    if exc is None:
        return StoreUnavailable(f"etcd {what}: stream ended")
    if isinstance(exc, etcd_exc.RevisionCompactedError):
        return StoreCompacted(0, exc.compacted_revision)
    if isinstance(exc, _UNAVAILABLE_EXC):
        return StoreUnavailable(f"etcd {what}: {exc}")
    if isinstance(exc, grpc.RpcError):
        code = exc.code() if hasattr(exc, "code") else None
        details = exc.details() if hasattr(exc, "details") else ""
        if code == grpc.StatusCode.OUT_OF_RANGE and "compacted" in str(details):
            return StoreCompacted(0, 0)
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED and _NOSPACE in str(details):
            return StoreFull(f"etcd {what}: {details}")
        if code in _UNAVAILABLE_CODES:
            return StoreUnavailable(f"etcd {what}: {code}: {details}")
        return StoreError(f"etcd {what}: {code}: {details}")
    return StoreError(f"etcd {what}: {type(exc).__name__}: {exc}")


# Called after every etcd call with (what, seconds, the StoreError or None):
# the control plane's metrics (controlplane.metrics), when they are on.
observers: list[Callable[[str, float, BaseException | None], None]] = []


@contextlib.contextmanager
def translate(what: str) -> Iterator[None]:
    """Run a pyetcd call, raising ``StoreError`` for anything it throws."""
    started = time.monotonic() if observers else 0.0
    error: BaseException | None = None
    try:
        yield
    except (etcd_exc.Etcd3Exception, grpc.RpcError) as exc:
        error = error_of(exc, what)
        raise error from exc
    finally:
        for observe in observers:
            observe(what, time.monotonic() - started, error)


def read(what: str, call: Callable[[], R], timeout: float) -> R:
    """Run a read; while etcd is unavailable, try again until ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with translate(what):
                return call()
        except StoreUnavailable:
            if time.monotonic() >= deadline:
                raise
            time.sleep(_READ_RETRY_PAUSE)
