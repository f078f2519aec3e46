"""Answering a registry's authentication challenge, as an ``httpx.Auth`` flow.

The flow (distribution's token auth, and plain Basic)::

    request ──▶ 401 + WWW-Authenticate: Bearer realm=R,service=S,scope=P
            ──▶ GET R?service=S&scope=P   (with Basic credentials, if any)
            ◀── {"token": T, "expires_in": N}
            ──▶ request again with "Authorization: Bearer T"

    request ──▶ 401 + WWW-Authenticate: Basic realm=...
            ──▶ request again with "Authorization: Basic base64(user:password)"

Invariants: a request is retried at most once per challenge; the header
that last worked is sent up front on later requests of the same flow object
(a push's PUT of a large layer goes out already authorised, so its body is
rarely sent twice); tokens are cached per (realm, service, scope, user)
until shortly before they expire, across clients in one process.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Generator
from dataclasses import dataclass

import httpx

from registry.credentials import Credentials
from registry.errors import AuthError, RegistryError

_PARAM = re.compile(r'([A-Za-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')
_TOKEN_LOCK = threading.Lock()
_TOKENS: dict[tuple[str, str, str, str], tuple[str, float]] = {}
MAX_TOKEN_RESPONSE = 1 << 20


@dataclass(frozen=True)
class Challenge:
    scheme: str  # "basic" or "bearer" (lowercased)
    params: dict[str, str]


def parse_challenge(header: str) -> Challenge:
    """``Bearer realm="https://auth/token",service="reg",scope="repository:a:pull"``."""
    scheme, _, rest = header.strip().partition(" ")
    params = {
        m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3))
        for m in _PARAM.finditer(rest)
    }
    return Challenge(scheme.lower(), {k: v.replace('\\"', '"') for k, v in params.items()})


class RegistryAuth(httpx.Auth):
    """Basic and Bearer-token authentication for one registry."""

    def __init__(self, registry: str, creds: Credentials | None) -> None:
        self.registry = registry
        self.creds = creds
        self._header: str | None = None  # the Authorization that answered the last challenge

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self._header is not None:
            request.headers["Authorization"] = self._header
        response = yield request
        if response.status_code != 401:
            return
        challenge = parse_challenge(response.headers.get("WWW-Authenticate", ""))
        if challenge.scheme == "basic":
            header = self._basic()
        elif challenge.scheme == "bearer":
            token = _cached(self._key(challenge))
            if token is None:
                token = yield from self._fetch_token(challenge)
            header = f"Bearer {token}"
        else:
            raise AuthError(f"{self.registry}: unsupported authentication challenge {challenge.scheme!r}")
        self._header = header
        request.headers["Authorization"] = header
        yield request

    def _basic(self) -> str:
        if self.creds is None:
            raise AuthError(f"{self.registry} requires a login (orch login {self.registry})")
        return self.creds.basic_header()

    def _key(self, challenge: Challenge) -> tuple[str, str, str, str]:
        p = challenge.params
        return (p.get("realm", ""), p.get("service", ""), p.get("scope", ""),
                self.creds.username if self.creds else "")

    def _fetch_token(self, challenge: Challenge) -> Generator[httpx.Request, httpx.Response, str]:
        realm = challenge.params.get("realm", "")
        if not realm.startswith(("https://", "http://")):
            raise AuthError(f"{self.registry}: Bearer challenge without an http(s) realm ({realm!r})")
        query = {k: challenge.params[k] for k in ("service", "scope") if challenge.params.get(k)}
        if self.creds is not None:
            query["account"] = self.creds.username
        headers = {"Authorization": self.creds.basic_header()} if self.creds else {}
        response = yield httpx.Request("GET", realm, params=query, headers=headers)
        if int(response.headers.get("Content-Length") or 0) > MAX_TOKEN_RESPONSE:
            raise RegistryError(f"{realm}: token response larger than {MAX_TOKEN_RESPONSE} bytes")
        body = response.read()  # read here: httpx reads it again (from memory) once we move on
        if response.status_code in (401, 403):
            raise AuthError(f"{realm}: token request refused (HTTP {response.status_code}); "
                            f"check the login (orch login {self.registry})")
        if response.status_code != 200:
            raise RegistryError(f"{realm}: token request failed with HTTP {response.status_code}")
        try:
            doc = json.loads(body)
            token = doc.get("token") or doc.get("access_token")
            lifetime = int(doc.get("expires_in") or 60)
        except (ValueError, AttributeError, TypeError):
            raise RegistryError(f"{realm}: token response is not JSON with a token")
        if not isinstance(token, str) or not token:
            raise RegistryError(f"{realm}: token response holds no token")
        with _TOKEN_LOCK:
            _TOKENS[self._key(challenge)] = (token, time.monotonic() + max(lifetime - 5, 1))
        return token


def _cached(key: tuple[str, str, str, str]) -> str | None:
    with _TOKEN_LOCK:
        found = _TOKENS.get(key)
    return found[0] if found and found[1] > time.monotonic() else None


def forget_tokens() -> None:
    """Drop every cached token (tests; a login with other credentials)."""
    with _TOKEN_LOCK:
        _TOKENS.clear()
