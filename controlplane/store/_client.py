"""Connecting to etcd through pyetcd, and turning its failures into store errors.

Invariants:
- endpoints are ``http://host:port`` (or ``host:port``), or ``https://host:port``
  with ``ClientTLS``: mutual TLS, the client checks the member's certificate
  against the CA (the address it dials must be among the certificate's names)
  and presents its own. Every endpoint of one client is of one kind: an
  ``https`` one without ``ClientTLS``, or ``ClientTLS`` with an ``http`` one,
  is a ``ValueError``. A TLS handshake that fails (a certificate either side
  refuses) is ``StoreUnavailable`` carrying gRPC's reason ("handshake failed"),
  after the client's timeout for a read, at once for a write. With several,
  they are the members of one etcd cluster (``orch up`` gives every replica
  all of them);
- every call asks etcd to refuse it at once when the member it reaches has no
  leader (gRPC metadata ``hasleader``, as etcd's own clients do for watches):
  it is not left waiting for a leader that cannot come, and a watch on a
  member that lost its leader ends, so the watcher moves to a member that has one;
- with several endpoints, calls (not watches) go to the member that leads
  raft, checked again every ``_LEADER_CHECK`` seconds: a follower forwards a
  write to the leader, and if that leader has just died the write is lost
  there and waits its whole timeout, while on the leader itself its death
  fails the next call at once. From then until a live member leads, calls
  fail at once (``StoreUnavailable``), then go to the new leader;
- with several endpoints, a failed one (refused, broken, no leader) is skipped
  for ``_RETRY_FAILED`` seconds (not pyetcd's five minutes), and a watch
  stream that breaks marks its endpoint failed as a failed call does, so
  the next call or watch goes to another member at once; a lone endpoint is
  never skipped, so a restarted etcd is used again at once;
- a failure on a cluster where fewer than a majority of the members answer
  and none of those knows a leader is ``QuorumLost``: a lasting state, said
  at once (no retry makes it go away), not ``StoreUnavailable``. A member
  going away while the others elect a leader is ``StoreUnavailable``: a retry
  a moment later reaches the new leader;
- ``read`` retries a read that found etcd unavailable until the client's timeout;
  writes are never retried here (the caller re-reads and decides again);
- gRPC reconnects with a short capped backoff for the same reason;
- every pyetcd or gRPC failure leaves this module as a ``StoreError``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import grpc
import pyetcd
from pyetcd import etcdrpc
from pyetcd import exceptions as etcd_exc

from .errors import StoreCompacted, StoreError, StoreFull, StoreUnavailable

__all__ = ["ClientTLS", "QuorumLost", "connect", "endpoint_scheme", "parse_endpoint", "read",
           "split_endpoint", "translate"]

_RETRY_FAILED = 0.5
_READ_RETRY_PAUSE = 0.05
_PROBE_TIMEOUT = 0.3  # a member's Status answer (finding the leader; a lost quorum from an election)
_LEADER_CHECK = 1.0  # seconds between checks of which member leads
_GONE_CHECK = 0.05  # ... while the leader is gone: calls in between fail at once
R = TypeVar("R")
_GRPC_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 16 * 1024 * 1024),
]
# etcd's rpctypes.MetadataRequireLeaderKey / MetadataHasLeader.
_REQUIRE_LEADER = (("hasleader", "true"),)


class QuorumLost(StoreError):
    """Fewer than a majority of etcd's members run: etcd refuses every write
    (and every consistent read) until enough of them are back. Not
    ``StoreUnavailable``: retrying for a while does not help, and a user
    must hear it at once."""


class _NoQuorum(etcd_exc.Etcd3Exception):
    """Raised inside the client: the survey found no quorum; becomes ``QuorumLost``."""


class _NoLeader(etcd_exc.Etcd3Exception):
    """Raised inside the client: the leader's member went away and no live
    member leads yet; becomes ``StoreUnavailable``."""

    def __str__(self) -> str:
        return "its leader is gone and no other member leads yet (an election is due)"


_PEM_CERT = b"-----BEGIN CERTIFICATE-----"
_PEM_KEY = b"PRIVATE KEY-----"


@dataclass(frozen=True)
class ClientTLS:
    """What an etcd client needs for mutual TLS, PEM: the CA that signed the
    members' certificates, and the client's own certificate and key (signed
    by the CA the members trust). Both empty: no client certificate (a member
    with ``--client-cert-auth`` refuses such a client)."""

    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes

    def __post_init__(self) -> None:
        if _PEM_CERT not in self.ca_pem:
            raise ValueError("etcd TLS: the CA is not a PEM certificate")
        if bool(self.cert_pem) != bool(self.key_pem):
            raise ValueError("etcd TLS: a client certificate needs its key, and a key its certificate")
        if self.cert_pem and _PEM_CERT not in self.cert_pem:
            raise ValueError("etcd TLS: the client certificate is not a PEM certificate")
        if self.key_pem and _PEM_KEY not in self.key_pem:
            raise ValueError("etcd TLS: the client key is not a PEM private key")

    @classmethod
    def from_files(cls, ca_file: str, cert_file: str, key_file: str) -> ClientTLS:
        """Read the three PEM files (``ValueError`` naming one that cannot be read)."""
        pems = []
        for what, path in (("CA", ca_file), ("certificate", cert_file), ("key", key_file)):
            try:
                pems.append(Path(path).read_bytes())
            except OSError as err:
                raise ValueError(f"etcd TLS {what} file {path}: {err.strerror or err}") from None
        return cls(*pems)

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(root_certificates=self.ca_pem,
                                            private_key=self.key_pem or None,
                                            certificate_chain=self.cert_pem or None)


def split_endpoint(endpoint: str) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of ``http://host:port``, ``https://host:port``
    or ``host:port`` (scheme ``http``)."""
    url = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
    if url.scheme not in ("http", "https"):
        raise ValueError(f"etcd endpoint {endpoint!r}: expected http://host:port or https://host:port")
    try:
        port = url.port
    except ValueError:
        port = None
    if not url.hostname or not port:
        raise ValueError(f"etcd endpoint {endpoint!r}: expected http://host:port or https://host:port")
    return url.scheme, url.hostname, port


def parse_endpoint(endpoint: str) -> tuple[str, int]:
    """``(host, port)`` of ``http://host:port``, ``https://host:port`` or ``host:port``."""
    _, host, port = split_endpoint(endpoint)
    return host, port


def endpoint_scheme(endpoint: str) -> str:
    """``http`` or ``https``: whether ``endpoint`` wants TLS."""
    return split_endpoint(endpoint)[0]


def connect(endpoints: list[str], timeout: float,
            tls: ClientTLS | None = None) -> pyetcd.MultiEndpointEtcd3Client:
    """A client over ``endpoints`` that fails over between them; RPCs time out
    after ``timeout``. ``https`` endpoints need ``tls``, ``http`` ones refuse it."""
    if not endpoints:
        raise ValueError("no etcd endpoints given")
    parsed = [split_endpoint(endpoint) for endpoint in endpoints]
    for endpoint, (scheme, _, _) in zip(endpoints, parsed, strict=True):
        if scheme == "https" and tls is None:
            raise ValueError(f"etcd endpoint {endpoint}: https:// needs the client's TLS "
                             "(a CA, a certificate and its key)")
        if scheme == "http" and tls is not None:
            raise ValueError(f"etcd endpoint {endpoint}: TLS is given but the endpoint is plain http://; "
                             "use https://")
    creds = tls.credentials() if tls else None
    skip_failed = _RETRY_FAILED if len(endpoints) > 1 else 0.0
    eps = [pyetcd.Endpoint(host, port, secure=creds is not None, creds=creds, time_retry=skip_failed,
                           opts=_GRPC_OPTIONS)
           for _, host, port in parsed]
    return _FailoverClient(endpoints=eps, timeout=timeout, failover=True)


_FAILED_EP_CODES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                    grpc.StatusCode.INTERNAL)  # pyetcd's: the endpoint is skipped for a while
_EXC_BY_CODE: dict[grpc.StatusCode, type[etcd_exc.Etcd3Exception]] = {
    grpc.StatusCode.INTERNAL: etcd_exc.InternalServerError,
    grpc.StatusCode.UNAVAILABLE: etcd_exc.ConnectionFailedError,
    grpc.StatusCode.DEADLINE_EXCEEDED: etcd_exc.ConnectionTimeoutError,
    grpc.StatusCode.FAILED_PRECONDITION: etcd_exc.PreconditionFailedError,
}


def _checked(name: str) -> Any:
    """pyetcd's cached stub ``name``, on the raft leader's endpoint when known
    (see ``_route``), made afresh once its endpoint has failed."""
    base = getattr(pyetcd.MultiEndpointEtcd3Client, name)

    def get(self: _FailoverClient) -> Any:
        self._route()
        self._leave_failed()
        return base.fget(self)

    return property(get)


@dataclass(frozen=True)
class _Survey:
    """What the members said when asked for their status at once."""

    started: float
    leader: str  # the endpoint of the member that answered as raft leader ("" if none)
    foreign_leader: bool  # members follow a leader that is none of the endpoints (its life unknown)
    lost: str  # why the quorum is lost ("" if it is not)


class _FailoverClient(pyetcd.MultiEndpointEtcd3Client):  # type: ignore[misc]
    """pyetcd's multi-endpoint client, which fails over only when a call
    fails, plus what it lacks (see the module invariants): calls to the raft
    leader, leader-requiring calls, broken watch streams failing their
    endpoint, the gRPC failure kept as the cause of pyetcd's exception (whose
    text says only "connection failed"), and a lost quorum told apart."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.metadata = _REQUIRE_LEADER
        self._survey_lock = threading.Lock()
        self._last_survey = _Survey(0.0, "", False, "")
        self._leader = ""  # the endpoint believed to be the raft leader's
        self._leader_gone = False  # that endpoint failed: calls wait (failing) for another leader
        self._routed = 0.0
        self._ids: dict[str, int] = {}  # endpoint -> the id of its member (as it last said)

    kvstub = _checked("kvstub")
    leasestub = _checked("leasestub")
    clusterstub = _checked("clusterstub")
    maintenancestub = _checked("maintenancestub")

    @property
    def watcher(self) -> Any:
        # Not routed: a watch is served by any member, and moving it would
        # end every stream on it.
        self._leave_failed()
        return pyetcd.MultiEndpointEtcd3Client.watcher.fget(self)

    @watcher.setter
    def watcher(self, value: Any) -> None:
        self._stubs["watcher"] = value

    @property
    def channel(self) -> Any:
        try:
            return pyetcd.MultiEndpointEtcd3Client.channel.fget(self)
        except etcd_exc.NoServerAvailableError as exc:  # every endpoint failed a moment ago
            lost = self.quorum_lost()
            if lost:
                raise _NoQuorum(lost) from exc
            # The survey found a quorum (it may have just come back) and made
            # the members that know its leader usable again.
            return pyetcd.MultiEndpointEtcd3Client.channel.fget(self)

    # pyetcd's ``_handle_errors`` calls this with each gRPC failure.
    def _manage_grpc_errors(self, exc: grpc.RpcError) -> None:
        code = exc.code()
        if code in _FAILED_EP_CODES:
            if self._leader and self.endpoint_in_use is self.endpoints[self._leader]:
                self._leader, self._leader_gone = "", True
            self.endpoint_in_use.fail()
            self._clear_old_stubs()
        if code in _UNAVAILABLE_CODES or _server_timeout(exc):
            lost = self.quorum_lost()
            if lost:
                raise _NoQuorum(lost) from exc
        exception = _EXC_BY_CODE.get(code)
        if exception is None:
            raise exc
        raise exception() from exc

    def add_watch_callback(self, key: Any, callback: Callable[[Any], None], **kwargs: Any) -> Any:
        endpoint = self.endpoint_in_use

        def on_response(response: Any) -> None:
            if isinstance(response, grpc.RpcError) and response.code() in _FAILED_EP_CODES:
                endpoint.fail()  # the next call or watch goes elsewhere (a lone one is never skipped)
            callback(response)

        return super().add_watch_callback(key, on_response, **kwargs)

    def _leave_failed(self) -> None:
        """Drop the stubs bound to the endpoint in use once it has failed (a
        broken watch stream said so): the next stub is made on a live one."""
        endpoint = self.endpoint_in_use
        if endpoint is not None and endpoint.is_failed():
            self._clear_old_stubs()

    def _route(self) -> None:
        """Keep calls on the raft leader's member. A call a follower takes
        is forwarded to the leader, and if that leader has just died it is
        lost there: the call waits for its whole timeout (seconds in which
        nothing is written). On the leader itself, its death fails the next
        call at once; from then until a live member leads, calls fail at
        once too (``StoreUnavailable``: the caller tries again), and then
        they go to the new leader. Checked again every ``_LEADER_CHECK``
        seconds, as leadership can move."""
        if len(self.endpoints) < 2:
            return
        gone = self._leader_gone
        if time.monotonic() - self._routed < (_GONE_CHECK if gone else _LEADER_CHECK):
            if gone and self._last_survey.lost:
                raise _NoQuorum(self._last_survey.lost)
            if gone:
                raise _NoLeader()
            return
        survey = self._survey()
        self._routed = time.monotonic()
        if survey.leader:
            self._leader, self._leader_gone = survey.leader, False
            if self.endpoint_in_use is not self.endpoints[survey.leader]:
                self._current_endpoint_label = survey.leader  # its old stubs go
            return
        if survey.lost:
            raise _NoQuorum(survey.lost)
        if gone and not survey.foreign_leader:
            raise _NoLeader()

    def quorum_lost(self) -> str:
        """Why the cluster has no quorum ("" if it may have one): fewer than
        a majority of the endpoints answer, and none of those knows a leader."""
        return self._survey().lost if len(self.endpoints) > 1 else ""

    def _survey(self) -> _Survey:
        """Ask every member for its status at once (``_PROBE_TIMEOUT``);
        endpoints that answer and know a live leader are no longer skipped.
        One survey at a time: a caller that waited for another's takes its
        answer if that survey started after the caller asked (it is as fresh)."""
        asked = time.monotonic()
        with self._survey_lock:
            if self._last_survey.started >= asked:
                return self._last_survey
            started = time.monotonic()
            asks = {label: etcdrpc.MaintenanceStub(endpoint.channel).Status.future(
                        etcdrpc.StatusRequest(), timeout=_PROBE_TIMEOUT)
                    for label, endpoint in self.endpoints.items()}
            views: dict[str, tuple[int, int]] = {}  # endpoint -> (its member id, the leader it knows)
            for label, ask in asks.items():
                with contextlib.suppress(grpc.RpcError):
                    status = ask.result()
                    views[label] = (int(status.header.member_id), int(status.leader))
            self._ids.update({label: member for label, (member, _) in views.items()})
            ours = {member: label for label, member in self._ids.items()}
            leader = next((label for label, (member, lead) in views.items() if lead and lead == member), "")
            followed = {lead for _, lead in views.values() if lead}
            foreign = bool(followed - set(ours)) and not leader  # followed, never seen among ours
            for label, (_, lead) in views.items():
                if lead and (ours.get(lead) == leader or foreign):
                    self.endpoints[label].last_failed = 0  # it serves: use it again
            total = len(self.endpoints)
            lost = "" if leader or foreign or len(views) > total // 2 else (
                f"etcd has lost quorum: {len(views)} of its {total} members answer"
                f"{' (' + ', '.join(views) + ')' if views else ''}, a majority ({total // 2 + 1}) "
                "must run for it to accept writes; start the stopped members again")
            self._last_survey = _Survey(started, leader, foreign, lost)
            return self._last_survey


_NOSPACE = "database space exceeded"  # etcd's ErrNoSpace, under its NOSPACE alarm
_UNAVAILABLE_CODES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                     grpc.StatusCode.CANCELLED)
_UNAVAILABLE_EXC = (etcd_exc.ConnectionFailedError, etcd_exc.ConnectionTimeoutError,
                    etcd_exc.NoServerAvailableError, etcd_exc.WatchTimedOut, _NoLeader)
# What etcd answers when its own wait for raft ran out (a member that lost
# its leader mid-request): gRPC UNKNOWN with Go's context error.
_SERVER_TIMEOUTS = ("context deadline exceeded", "etcdserver: request timed out")


def _server_timeout(exc: grpc.RpcError) -> bool:
    details = exc.details() if hasattr(exc, "details") else ""
    return exc.code() == grpc.StatusCode.UNKNOWN and any(t in str(details) for t in _SERVER_TIMEOUTS)


def _grpc_details(exc: BaseException) -> str:
    """What gRPC said about the failure behind a pyetcd exception ("" if nothing)."""
    cause = exc.__cause__ or exc.__context__
    details = cause.details() if isinstance(cause, grpc.RpcError) and hasattr(cause, "details") else ""
    return str(details or "")


def error_of(exc: BaseException | None, what: str) -> StoreError:
    """The store error for a pyetcd/gRPC failure (or a silent stream end) while doing ``what``."""
    if isinstance(exc, StoreError):
        return exc
    if exc is None:
        return StoreUnavailable(f"etcd {what}: stream ended")
    if isinstance(exc, _NoQuorum):
        return QuorumLost(str(exc))
    if isinstance(exc, etcd_exc.RevisionCompactedError):
        return StoreCompacted(0, exc.compacted_revision)
    if isinstance(exc, _UNAVAILABLE_EXC):
        why = _grpc_details(exc)  # pyetcd's text says only "connection failed"
        return StoreUnavailable(f"etcd {what}: {exc}" + (f" ({why})" if why else ""))
    if isinstance(exc, grpc.RpcError):
        code = exc.code() if hasattr(exc, "code") else None
        details = exc.details() if hasattr(exc, "details") else ""
        if code == grpc.StatusCode.OUT_OF_RANGE and "compacted" in str(details):
            return StoreCompacted(0, 0)
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED and _NOSPACE in str(details):
            return StoreFull(f"etcd {what}: {details}")
        if code in _UNAVAILABLE_CODES or _server_timeout(exc):
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
