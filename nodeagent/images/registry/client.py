"""One repository on one registry, spoken to over the OCI distribution API.

:class:`RegistryClient` sends requests with ``http.client`` (one keep-alive
connection per thread, so push/pull workers never share a socket) and answers
authentication challenges: on a 401 it reads ``WWW-Authenticate`` and retries
once with Basic credentials, or with a Bearer token fetched from the
challenge's realm (with the Basic credentials, if any). Tokens are cached per
(realm, service, scope, user) until they expire.

Invariants: request bodies are bytes or seekable files streamed in chunks
(a layer is never read whole into memory); a response is always read to the
end or its connection closed before the connection is reused; redirects
(blob GETs to storage) are followed to the new host without our credentials.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import IO, Any, Protocol

from common.errors import AgentError, NotFound
from nodeagent.images.registry.auth import Challenge, Credentials, parse_challenge
from nodeagent.images.registry.remote import RemoteRef, scheme_for

CHUNK = 1 << 20
TIMEOUT = 60.0
_REDIRECTS = (301, 302, 303, 307, 308)
_TOKEN_LOCK = threading.Lock()
_TOKENS: dict[tuple[str, str, str, str], tuple[str, float]] = {}


class RegistryError(AgentError):
    """The registry refused a request or answered outside the protocol."""

    code = "registry"


class AuthError(RegistryError):
    """Missing or rejected credentials (401/403)."""

    code = "unauthenticated"


class DigestMismatch(RegistryError):
    """Content did not hash to the digest that named it; nothing was stored."""

    code = "digest_mismatch"


class SeekableBody(Protocol):
    """A request body streamed by http.client (read in chunks; rewound before a retry)."""

    def read(self, n: int = -1) -> bytes: ...

    def seek(self, pos: int) -> int: ...


Body = bytes | SeekableBody | None


class RegistryClient:
    def __init__(self, remote: RemoteRef, auth: Credentials | None = None, timeout: float = TIMEOUT):
        self.remote = remote
        self.auth = auth
        self.timeout = timeout
        self.base = f"{scheme_for(remote.registry)}://{remote.registry}"
        self._local = threading.local()
        self._authz: str | None = None

    # -- the API verbs used by push and pull -------------------------------

    def path(self, suffix: str, repository: str | None = None) -> str:
        return f"/v2/{repository or self.remote.repository}/{suffix}"

    def ping(self) -> None:
        """GET /v2/: checks the registry speaks the API and our credentials work."""
        self.request("GET", "/v2/", ok=(200,)).read()

    def has_blob(self, digest: str) -> bool:
        resp = self.request("HEAD", self.path(f"blobs/{digest}"), ok=(200, 404))
        resp.read()
        return resp.status == 200

    def close(self) -> None:
        conns: dict[str, http.client.HTTPConnection] = getattr(self._local, "conns", {})
        for conn in conns.values():
            conn.close()
        conns.clear()

    # -- requests ----------------------------------------------------------

    def request(
        self,
        method: str,
        url: str,
        headers: dict[str, str] | None = None,
        body: Body = None,
        ok: tuple[int, ...] = (200,),
    ) -> http.client.HTTPResponse:
        """Send, answering one auth challenge; raise unless the status is in ``ok``."""
        full = url if "://" in url else self.base + url
        resp = self._send(method, full, headers or {}, body, self._authz)
        if resp.status == 401:
            challenge = resp.getheader("WWW-Authenticate") or ""
            resp.read()
            self._authz = self._answer(parse_challenge(challenge), full)
            resp = self._send(method, full, headers or {}, body, self._authz)
        if resp.status not in ok:
            raise self._error(method, full, resp)
        return resp

    def get_following(self, url: str, headers: dict[str, str]) -> http.client.HTTPResponse:
        """GET, following storage redirects (without our Authorization) up to 5 times."""
        resp = self.request("GET", url, headers, ok=(200, *_REDIRECTS))
        for _ in range(5):
            if resp.status not in _REDIRECTS:
                return resp
            location = resp.getheader("Location") or ""
            resp.read()
            target = urllib.parse.urljoin(self.base + url if "://" not in url else url, location)
            resp = self._send("GET", target, headers, None, None)
            if resp.status not in (200, *_REDIRECTS):
                raise self._error("GET", target, resp)
        raise RegistryError(f"GET {url}: too many redirects")

    def _send(
        self, method: str, url: str, headers: dict[str, str], body: Body, authz: str | None
    ) -> http.client.HTTPResponse:
        parts = urllib.parse.urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        hdrs = {"User-Agent": "orch", **headers}
        if authz:
            hdrs["Authorization"] = authz
        if body is None and method in ("POST", "PUT", "PATCH"):
            hdrs.setdefault("Content-Length", "0")
        for attempt in (1, 2):
            if body is not None and not isinstance(body, bytes):
                body.seek(0)
            conn = self._conn(parts.scheme, parts.netloc)
            try:
                conn.request(method, target, body=body, headers=hdrs)
                return conn.getresponse()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as e:
                # A keep-alive connection the server closed: retry once on a new one.
                self._drop(parts.scheme, parts.netloc)
                if attempt == 2:
                    raise RegistryError(f"{method} {url}: connection lost: {e}")
            except (OSError, http.client.HTTPException) as e:
                self._drop(parts.scheme, parts.netloc)
                raise RegistryError(f"{method} {url}: {e}")
        raise AssertionError("unreachable")

    def _conn(self, scheme: str, netloc: str) -> http.client.HTTPConnection:
        conns: dict[str, http.client.HTTPConnection] = self._local.__dict__.setdefault("conns", {})
        key = f"{scheme}://{netloc}"
        if key not in conns:
            cls = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
            conns[key] = cls(netloc, timeout=self.timeout, blocksize=CHUNK)
        return conns[key]

    def _drop(self, scheme: str, netloc: str) -> None:
        conns: dict[str, http.client.HTTPConnection] = self._local.__dict__.setdefault("conns", {})
        conn = conns.pop(f"{scheme}://{netloc}", None)
        if conn is not None:
            conn.close()

    # -- authentication ----------------------------------------------------

    def _answer(self, challenge: Challenge, url: str) -> str:
        if challenge.scheme == "basic":
            if self.auth is None:
                raise AuthError(
                    f"{self.remote.registry} requires a login (orch login {self.remote.registry})"
                )
            return self.auth.basic_header()
        if challenge.scheme == "bearer":
            return "Bearer " + self._token(challenge)
        raise AuthError(f"{url}: unsupported authentication challenge {challenge.scheme!r}")

    def _token(self, challenge: Challenge) -> str:
        realm = challenge.params.get("realm", "")
        if not realm:
            raise AuthError(f"{self.remote.registry}: Bearer challenge without a realm")
        service = challenge.params.get("service", "")
        scope = challenge.params.get("scope", "")
        key = (realm, service, scope, self.auth.username if self.auth else "")
        with _TOKEN_LOCK:
            cached = _TOKENS.get(key)
            if cached and cached[1] > time.monotonic():
                return cached[0]
        query = urllib.parse.urlencode({k: v for k, v in (("service", service), ("scope", scope)) if v})
        headers = {"Authorization": self.auth.basic_header()} if self.auth else {}
        resp = self._send("GET", f"{realm}?{query}" if query else realm, headers, None, None)
        data = resp.read(1 << 20)
        if resp.status in (401, 403):
            raise AuthError(f"{realm}: token request refused ({resp.status}); check the login")
        if resp.status != 200:
            raise RegistryError(f"{realm}: token request failed with HTTP {resp.status}")
        try:
            doc = json.loads(data)
            token = str(doc.get("token") or doc.get("access_token"))
        except (ValueError, AttributeError):
            raise RegistryError(f"{realm}: token response is not JSON with a token")
        expires = time.monotonic() + max(int(doc.get("expires_in") or 60) - 5, 1)
        with _TOKEN_LOCK:
            _TOKENS[key] = (token, expires)
        return token

    # -- errors ------------------------------------------------------------

    def _error(self, method: str, url: str, resp: http.client.HTTPResponse) -> RegistryError:
        raw = resp.read(1 << 16)
        detail = _error_detail(raw)
        text = f"{method} {url}: HTTP {resp.status}" + (f": {detail}" if detail else "")
        if resp.status in (401, 403):
            return AuthError(text + f" (orch login {self.remote.registry})")
        if resp.status == 404:
            return _NotFoundError(text)
        return RegistryError(text)


class _NotFoundError(RegistryError, NotFound):
    code = "not_found"


def _error_detail(raw: bytes) -> str:
    """The registry's {"errors": [{"code", "message"}]} as one line."""
    try:
        errors = json.loads(raw).get("errors") or []
        return "; ".join(f"{e.get('code', '')}: {e.get('message', '')}" for e in errors)
    except (ValueError, AttributeError):
        return raw[:200].decode(errors="replace").strip()


ProgressFn = Callable[[str, str, int, int], None]


class ProgressReader:
    """A seekable read-only file that reports bytes read (an upload body)."""

    def __init__(self, f: IO[bytes], digest: str, total: int, progress: ProgressFn | None) -> None:
        self._f = f
        self._digest = digest
        self._total = total
        self._progress = progress
        self.done = 0

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n if n and n > 0 else CHUNK)
        self.done += len(data)
        if self._progress is not None and data:
            self._progress("upload", self._digest, self.done, self._total)
        return data

    def seek(self, pos: int) -> int:
        self.done = pos
        return self._f.seek(pos)


def json_body(obj: Any) -> bytes:
    return json.dumps(obj).encode()
