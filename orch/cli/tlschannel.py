"""Mutual TLS to a remote control plane, for the CLI: grpcio under the surface
of ``h2grpc.Channel`` (``unary``, ``stream``, ``close``, failures as
``h2grpc.RpcError``), so ``client.Cluster`` drives either.

The unix-socket and plain-TCP paths keep ``h2grpc`` (importing grpcio costs
~110 ms); this module imports grpcio and is loaded only when TLS is asked for.

- **The files** (``CLITLS``, ``tls_from``: ``orch.cli.tlsfiles``, which
  the cluster commands load without grpcio) are checked before dialling.
- **Whom it trusts**: only the cluster CA in the CA file. A control plane's
  certificate names ``controlplane.orch`` whatever address it listens on, so
  that is the name checked (``grpc.ssl_target_name_override``).
- **Never a hang**: every attempt to connect (TCP and the TLS handshake)
  gets the channel's ``timeout`` (10 s by default; grpc-core makes it about
  a second at least), and a call waiting for the connection fails
  UNAVAILABLE when the attempt does; a call's own shorter timeout ends it
  first (DEADLINE_EXCEEDED). A connection that failed fails the next calls
  at once, with the reason.
- **Failures**: a status the server sent passes through (code and details;
  PeerGuard's UNAUTHENTICATED or PERMISSION_DENIED line, say). A failed
  connect or a broken connection is UNAVAILABLE with ``transport=True``; a
  failed TLS handshake says so: ``TLS handshake with HOST:PORT failed: ...``.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator, Sequence
from typing import Any

# grpc-core logs a failed handshake on stderr, under the CLI's own one-line
# error; it reads $GRPC_VERBOSITY when imported, so off for this import
# unless set (GRPC_VERBOSITY=debug still shows it).
if "grpc" not in sys.modules and "GRPC_VERBOSITY" not in os.environ:
    os.environ["GRPC_VERBOSITY"] = "NONE"
    try:
        import grpc
    finally:
        del os.environ["GRPC_VERBOSITY"]
else:
    import grpc

from orch.cli.h2grpc import (
    CONNECT_TIMEOUT,
    DEADLINE_EXCEEDED,
    INVALID_ARGUMENT,
    UNAVAILABLE,
    RpcError,
    _check_metadata,
)
from orch.cli.tlsfiles import CERT_PATH_FILES, CLITLS, add_tls_flags, tls_from

__all__ = ["CERT_PATH_FILES", "CLITLS", "CONTROLPLANE_NAME", "TLSChannel", "add_tls_flags", "tls_from"]

CONTROLPLANE_NAME = "controlplane.orch"
# The files in $ORCH_CERT_PATH: CA certificate, client certificate, client key.
_CONNECT_FAILED = "failed to connect to all addresses"
_TRANSPORT_DETAILS = (_CONNECT_FAILED, "Stream removed", "Socket closed", "Connection reset",
                      "Broken pipe", "GOAWAY received", "keepalive watchdog timeout", "Transport closed",
                      "Endpoint", "errors resolving", "DNS resolution failed", "Handshake")
_HANDSHAKE = re.compile(r"handshake|ssl|tls|tsi_|certificate|socket closed|connection reset", re.I)
# A connection attempt that ran out of time (grpc-core then shuts the endpoint).
_TIMED_OUT = re.compile(r"timeout|timed out|deadline|endpoint closing|handshaker shutdown", re.I)
_WRONG_NAME = re.compile(r"hostname verification|server name|peer name", re.I)
_PREFIX = re.compile(r"^(?:(?:UNKNOWN|UNAVAILABLE|INTERNAL): )?(?:(?:ipv4|ipv6|unix):\S+: )?")


class TLSChannel:
    """A mutual-TLS gRPC channel to a control plane at HOST:PORT, with the
    calls of ``h2grpc.Channel``. ``timeout`` bounds every attempt to connect
    (TCP and the TLS handshake; 10 s by default). Closing ends calls in
    progress; a call after ``close`` connects again."""

    def __init__(self, address: str, tls: CLITLS, timeout: float | None = None) -> None:
        self.address = address
        self.tls = tls
        self._timeout = CONNECT_TIMEOUT if timeout is None else timeout
        self._credentials = grpc.ssl_channel_credentials(*_reordered(tls.load()))
        self._channel: grpc.Channel | None = None

    def _open(self) -> grpc.Channel:
        if self._channel is None:
            options = [("grpc.ssl_target_name_override", CONTROLPLANE_NAME),
                       # grpc-core's bound on one connection attempt (20 s unless set):
                       # a call waiting for the connection fails when it runs out.
                       ("grpc.min_reconnect_backoff_ms", max(1, round(self._timeout * 1000))),
                       ("grpc.max_receive_message_length", -1),  # as h2grpc: no limit of its own
                       ("grpc.enable_http_proxy", 0)]  # dial the address itself, as h2grpc does
            self._channel = grpc.secure_channel(self.address, self._credentials, options=options)
        return self._channel

    def close(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None:
            channel.close()

    # ---- calls -----------------------------------------------------------------

    def unary(self, path: str, request: bytes, timeout: float | None = None,
              metadata: Sequence[tuple[str, str]] | None = None) -> bytes:
        channel, extra = self._start(path, timeout, metadata)
        try:
            return bytes(channel.unary_unary(path, None, None)(request, timeout=timeout, metadata=extra))
        except grpc.RpcError as err:
            raise self._error(err, path, timeout) from None

    def stream(self, path: str, request: bytes, timeout: float | None = None,
               metadata: Sequence[tuple[str, str]] | None = None) -> Iterator[bytes]:
        """A server-streaming call: started before this returns; the replies
        come from the iterator. ``timeout`` covers the whole call. A consumer
        that stops reading cancels it."""
        channel, extra = self._start(path, timeout, metadata)
        call = channel.unary_stream(path, None, None)(request, timeout=timeout, metadata=extra)
        return self._replies(call, path, timeout)

    def _replies(self, call: Any, path: str, timeout: float | None) -> Iterator[bytes]:
        try:
            for reply in call:
                yield bytes(reply)
        except grpc.RpcError as err:
            raise self._error(err, path, timeout) from None
        finally:
            call.cancel()  # nothing once it has ended

    def _start(self, path: str, timeout: float | None, metadata: Sequence[tuple[str, str]] | None
               ) -> tuple[grpc.Channel, tuple[tuple[str, str], ...] | None]:
        """The channel, and the call's metadata, checked as h2grpc checks it."""
        for name, value in metadata or ():
            _check_metadata(name, value)
        if timeout is not None and not timeout > 0:  # NaN too
            raise RpcError(DEADLINE_EXCEEDED, f"{path}: the deadline had passed before the call")
        if not path.startswith("/"):
            raise RpcError(INVALID_ARGUMENT, f"method path {path!r}: expected /SERVICE/METHOD")
        return self._open(), tuple(metadata) if metadata else None

    # ---- failures ----------------------------------------------------------------

    def _error(self, err: grpc.RpcError, path: str, timeout: float | None) -> RpcError:
        call: Any = err  # a failed call's error is also its grpc.Call
        code = call.code() if hasattr(call, "code") else grpc.StatusCode.UNKNOWN
        details = str(call.details() or "") if hasattr(call, "details") else str(err)
        number = int(code.value[0])
        if code is grpc.StatusCode.UNAVAILABLE and (not details or details.startswith(_TRANSPORT_DETAILS)):
            return self._transport_error(details)
        if code is grpc.StatusCode.DEADLINE_EXCEEDED and details == "Deadline Exceeded" and timeout:
            details = f"{path}: no answer from {self.address} within the {timeout:g} s deadline"
        return RpcError(number, " ".join(details.split()))

    def _transport_error(self, details: str) -> RpcError:
        """grpc-core's status for a failed connect, handshake or connection,
        as one line naming the address (and the files, for a handshake)."""
        if not details.startswith(_CONNECT_FAILED):  # an established connection broke
            return RpcError(UNAVAILABLE, f"lost the connection to {self.address} ({_one_line(details)})",
                            transport=True)
        reason = details[len(_CONNECT_FAILED):].lstrip("; ")
        reason = reason.removeprefix("last error: ")
        reason = _PREFIX.sub("", reason, count=1)
        if _TIMED_OUT.search(reason):
            text = (f"no connection to {self.address}: the connect or the TLS handshake timed out "
                    "(unreachable, or it does not answer TLS)")
        elif _WRONG_NAME.search(reason):
            text = (f"TLS handshake with {self.address} failed: its certificate does not name "
                    f"{CONTROLPLANE_NAME} (not a control plane's certificate?)")
        elif "WRONG_VERSION_NUMBER" in reason:
            text = (f"TLS handshake with {self.address} failed: it does not speak TLS "
                    "(a plaintext endpoint, or not a control plane?)")
        elif _HANDSHAKE.search(reason):
            text = (f"TLS handshake with {self.address} failed: the control plane refused this client "
                    f"certificate ({self.tls.cert_file}), or its own certificate is not from the CA in "
                    f"{self.tls.ca_file} ({_short_tls_reason(reason)})")
        else:
            text = f"cannot connect to {self.address}: {_one_line(reason) or 'no reason given'}"
        return RpcError(UNAVAILABLE, text, transport=True)


def _reordered(files: tuple[bytes, bytes, bytes]) -> tuple[bytes, bytes, bytes]:
    """(ca, cert, key) as ssl_channel_credentials takes them: (ca, key, cert)."""
    ca, cert, key = files
    return ca, key, cert


def _short_tls_reason(reason: str) -> str:
    """The gist of a BoringSSL error: 'CERTIFICATE_VERIFY_FAILED: unable to
    get local issuer certificate' rather than the whole chain of prefixes."""
    gist = reason.rsplit("OPENSSL_internal:", 1)[-1]
    for tail in (": OK", ": Invalid certificate verification context"):
        gist = gist.removesuffix(tail)
    return _one_line(gist)


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."
