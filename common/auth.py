"""Bearer tokens on orch's TCP APIs, until mutual TLS replaces them.

Three secrets, each in a 0600 file and never in argv:
- the **join token**: an agent presents it in its session's Register;
- the **admin token**: the CLI presents it to the control plane's API over
  TCP (``authorization: Bearer ...``); the local CLI uses the control plane's
  root-only unix socket instead, which needs none;
- a node's **API token**: made by the node, sent in its Register, kept in the
  store; the control plane presents it to that node's TCP API (logs, exec,
  stats), which serves nothing else.

``interceptor`` guards a grpcio server: calls to the guarded services
without the right token end UNAUTHENTICATED, calls to methods the server does
not offer on this port end PERMISSION_DENIED, before any handler runs.
"""

from __future__ import annotations

import hmac
import os
import secrets
from collections.abc import Callable, Collection
from typing import Any

__all__ = ["TokenError", "bearer", "interceptor", "read_token", "token_from", "write_token"]

TOKEN_BYTES = 24


class TokenError(Exception):
    """A token file is missing, unreadable, empty or readable by others."""


def bearer(token: str) -> list[tuple[str, str]]:
    """gRPC metadata carrying ``token``."""
    return [("authorization", f"Bearer {token}")]


def write_token(path: str) -> str:
    """Create ``path`` with a new random token, 0600 from the first byte (an
    existing file is kept and made 0600); the token."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        os.chmod(path, 0o600)
        return read_token(path)
    token = secrets.token_hex(TOKEN_BYTES)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


def read_token(path: str) -> str:
    """The token in ``path``; refuses a file others can read (it would leak)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as err:
        raise TokenError(f"cannot read the token file {path}: {err.strerror or err}")
    with os.fdopen(fd) as f:
        mode = os.fstat(f.fileno()).st_mode
        if mode & 0o077:
            raise TokenError(f"token file {path} is readable by others (mode {mode & 0o777:o}): "
                             f"run chmod 600 {path}")
        token = f.read().strip()
    if not token:
        raise TokenError(f"token file {path} is empty")
    return token


def token_from(path: str, env: str) -> str:
    """A token from file ``path`` if given, else from the environment
    variable ``env`` (removed from this process's environment, so children
    do not inherit it); "" if neither."""
    if path:
        return read_token(path)
    return os.environ.pop(env, "").strip()


def _matches(metadata: Any, token: str) -> bool:
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str):
            scheme, _, given = value.partition(" ")
            return scheme.lower() == "bearer" and hmac.compare_digest(given.strip(), token)
    return False


def _denied(handler: Any, code: Any, message: str) -> Any:
    """A handler of ``handler``'s kind that ends every call with ``code``."""
    import grpc

    def deny(_request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(code, message)

    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(deny)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(deny)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(deny)
    return grpc.unary_unary_rpc_method_handler(deny)


def interceptor(token: Callable[[], str], guarded: Collection[str], offered: Collection[str] | None = None,
                what: str = "this API") -> Any:
    """A ``grpc.ServerInterceptor``: methods of the ``guarded`` services
    (``/package.Service/``) need ``authorization: Bearer <token()>``; with
    ``offered``, only those full method names are served at all."""
    import grpc

    class _Interceptor(grpc.ServerInterceptor):  # type: ignore[misc]
        def intercept_service(self, continuation: Any, details: Any) -> Any:
            handler = continuation(details)
            method = details.method
            if handler is None or not any(method.startswith(s) for s in guarded):
                return handler
            if offered is not None and method not in offered:
                return _denied(handler, grpc.StatusCode.PERMISSION_DENIED,
                               f"{method.rsplit('/', 1)[-1]} is not served on {what}")
            expected = token()
            if not expected or not _matches(details.invocation_metadata, expected):
                return _denied(handler, grpc.StatusCode.UNAUTHENTICATED,
                               f"{what} needs a valid token (authorization: Bearer ...)")
            return handler

    return _Interceptor()
