"""One repository on one registry, spoken to over the OCI distribution API (httpx).

:class:`RegistryClient` holds one ``httpx.Client`` (a pool of keep-alive
connections shared by push and pull worker threads) with
:class:`~registry.auth.RegistryAuth` as its auth flow, the TLS context of
:mod:`registry.transport` and the environment's proxies.

Invariants:
- Bodies are streamed: a blob is read from the response in chunks and
  uploaded from its file in chunks, never held whole in memory. An upload
  body can be sent again (an auth retry rewinds it).
- Blob downloads follow redirects (to storage), and httpx drops our
  ``Authorization`` when a redirect leaves the registry's origin.
- No content encoding is negotiated: what arrives is the blob's own bytes,
  which is what its digest names.
- Every failure is a :mod:`registry.errors` error naming the registry and
  what to do: an untrusted certificate names ``--registry-ca`` and certs.d.
"""

from __future__ import annotations

import contextlib
import json
import ssl
import threading
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import httpx

from registry.auth import RegistryAuth
from registry.credentials import Credentials
from registry.errors import AuthError, RegistryError, RegistryNotFound
from registry.reference import DEFAULT_DOMAIN, DEFAULT_ENDPOINT
from registry.transport import Settings

CHUNK = 1 << 20
MAX_ERROR_BODY = 1 << 16

ProgressFn = Callable[[str, str, int, int], None]


class RegistryClient:
    """``registry`` is "host[:port]" as references name it; ``repository`` the path in it."""

    def __init__(self, registry: str, repository: str = "", creds: Credentials | None = None,
                 settings: Settings | None = None, transport: httpx.BaseTransport | None = None,
                 connections: int = 8) -> None:
        self.registry = registry
        self.repository = repository
        self.settings = settings or Settings.from_env()
        self.endpoint = DEFAULT_ENDPOINT if registry == DEFAULT_DOMAIN else registry
        https_only = not self.settings.allows_http(registry)
        self._base: str | None = f"https://{self.endpoint}" if https_only else None
        self._base_lock = threading.Lock()
        self.http = httpx.Client(
            auth=RegistryAuth(registry, creds),
            verify=self.settings.ssl_context(registry),
            trust_env=True,
            timeout=httpx.Timeout(self.settings.timeout),
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
            headers={"User-Agent": "orch", "Accept-Encoding": "identity"},
            transport=transport,
        )

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def __str__(self) -> str:
        return f"{self.registry}/{self.repository}" if self.repository else self.registry

    # -- the API verbs -------------------------------------------------------

    def ping(self) -> None:
        """GET /v2/: the registry speaks the API and accepts our credentials."""
        self.request("GET", "/v2/")

    def get_manifest(self, locator: str, accept: str, limit: int) -> tuple[bytes, str, str]:
        """(raw bytes, Content-Type, Docker-Content-Digest) of a manifest."""
        with self.stream("GET", self._path(f"manifests/{locator}"), headers={"Accept": accept}) as resp:
            raw = bytearray()
            for chunk in _raw(resp):
                raw += chunk
                if len(raw) > limit:
                    raise RegistryError(f"{self}: manifest {locator} is larger than {limit} bytes")
            content_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
            return bytes(raw), content_type, resp.headers.get("Docker-Content-Digest", "")

    def has_blob(self, digest: str) -> bool:
        return self.request("HEAD", self._path(f"blobs/{digest}"), ok=(200, 404)).status_code == 200

    @contextlib.contextmanager
    def blob(self, digest: str) -> Iterator[Iterator[bytes]]:
        """The blob's bytes as they arrive (redirects to storage followed)."""
        with self.stream("GET", self._path(f"blobs/{digest}"), follow_redirects=True) as resp:
            yield self._guarded(_raw(resp), f"downloading blob {digest}")

    def mount(self, digest: str, source_repository: str) -> str | None:
        """Cross-repository mount: None when mounted (201), else an upload location (202)."""
        resp = self.request("POST", self._path("blobs/uploads/"), ok=(201, 202),
                            params={"mount": digest, "from": source_repository})
        return None if resp.status_code == 201 else self._location(resp)

    def start_upload(self) -> str:
        return self._location(self.request("POST", self._path("blobs/uploads/"), ok=(202,)))

    def upload(self, location: str, digest: str, body: FileBody) -> None:
        """Finish a monolithic upload: PUT the whole blob with ``?digest=``."""
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(body.size)}
        # The location keeps its own query (the registry's upload state): add to
        # it (httpx's ``params=`` would replace it).
        url = str(httpx.URL(location).copy_merge_params({"digest": digest}))
        self.request("PUT", url, ok=(201, 204), headers=headers, content=body)

    def put_manifest(self, locator: str, raw: bytes, media_type: str) -> str:
        """PUT a manifest; returns the registry's Docker-Content-Digest ("" if not sent)."""
        resp = self.request("PUT", self._path(f"manifests/{locator}"), ok=(201, 202),
                            headers={"Content-Type": media_type}, content=raw)
        return resp.headers.get("Docker-Content-Digest", "")

    # -- requests ------------------------------------------------------------

    def request(self, method: str, url: str, ok: tuple[int, ...] = (200,), **kwargs: Any) -> httpx.Response:
        """Send and read the response; raise unless its status is in ``ok``."""
        with self.stream(method, url, ok, **kwargs) as resp:
            resp.read()
            return resp

    @contextlib.contextmanager
    def stream(self, method: str, url: str, ok: tuple[int, ...] = (200,),
               **kwargs: Any) -> Iterator[httpx.Response]:
        """Send; yield the response unread; raise unless its status is in ``ok``."""
        full = url if "://" in url else self._base_url() + url
        with self._mapped(method, full), self.http.stream(method, full, **kwargs) as resp:
            if resp.status_code not in ok:
                self._fail(method, full, resp)
            yield resp

    def _path(self, suffix: str) -> str:
        return f"/v2/{self.repository}/{suffix}"

    def _base_url(self) -> str:
        """https, or for loopback and insecure registries whatever they speak:
        https first, plain http only when the registry does not speak TLS."""
        if self._base is not None:
            return self._base
        with self._base_lock:
            if self._base is None:
                self._base = self._probe()
            return self._base

    def _probe(self) -> str:
        https = f"https://{self.endpoint}"
        try:
            self.http.get(https + "/v2/", auth=None).close()
        except httpx.ConnectError as err:
            if _cause(err, ssl.SSLCertVerificationError) is None and _cause(err, ssl.SSLError) is not None:
                return f"http://{self.endpoint}"  # answers, but not in TLS
            raise self._transport_error("GET", https + "/v2/", err)
        except httpx.HTTPError as err:
            raise self._transport_error("GET", https + "/v2/", err)
        return https

    def _location(self, resp: httpx.Response) -> str:
        header = resp.headers.get("Location")
        if not header:
            raise RegistryError(f"{self}: upload response has no Location header")
        return str(resp.url.join(header))

    @contextlib.contextmanager
    def _mapped(self, method: str, url: str) -> Iterator[None]:
        """httpx's transport errors as RegistryError naming the request."""
        try:
            yield
        except httpx.HTTPError as err:
            raise self._transport_error(method, url, err)

    def _guarded(self, chunks: Iterator[bytes], what: str) -> Iterator[bytes]:
        try:
            yield from chunks
        except httpx.HTTPError as err:
            raise RegistryError(f"{self}: {what}: {_describe(err)}") from err

    def _transport_error(self, method: str, url: str, err: httpx.HTTPError) -> RegistryError:
        verify = _cause(err, ssl.SSLCertVerificationError)
        if verify is not None:
            return RegistryError(
                f"{method} {url}: the registry's TLS certificate is not trusted "
                f"({verify.verify_message or verify}): give its CA with --registry-ca FILE or put it "
                f"in /etc/orch/certs.d/{self.registry}/ca.crt"
            )
        if isinstance(err, httpx.TimeoutException):
            return RegistryError(f"{method} {url}: timed out after {self.settings.timeout:.0f} s")
        return RegistryError(f"{method} {url}: {_describe(err)}")

    def _fail(self, method: str, url: str, resp: httpx.Response) -> NoReturn:
        raw = bytearray()
        for chunk in _raw(resp):
            raw += chunk
            if len(raw) >= MAX_ERROR_BODY:
                break
        detail = _error_detail(bytes(raw))
        text = f"{method} {url}: HTTP {resp.status_code}" + (f": {detail}" if detail else "")
        if resp.status_code in (401, 403):
            raise AuthError(f"{text} (orch login {self.registry})")
        if resp.status_code == 404:
            raise RegistryNotFound(text)
        raise RegistryError(text)


class FileBody:
    """An upload body read from a file in chunks; iterable again from the
    start (an auth retry sends it twice), reporting progress as it goes."""

    def __init__(self, path: str, size: int, digest: str, progress: ProgressFn | None = None) -> None:
        self.path = path
        self.size = size
        self.digest = digest
        self.progress = progress

    def __iter__(self) -> Iterator[bytes]:
        done = 0
        with open(self.path, "rb") as f:
            while chunk := f.read(CHUNK):
                done += len(chunk)
                if self.progress is not None:
                    self.progress("upload", self.digest, done, self.size)
                yield chunk


def _raw(resp: httpx.Response) -> Iterator[bytes]:
    """The body's bytes as sent (no content decoding), as they arrive."""
    if resp.is_stream_consumed:  # a body given whole (httpx.MockTransport) was read already
        yield resp.content
    else:
        yield from resp.iter_raw()


def _cause(err: BaseException, kind: type[BaseException]) -> Any:
    """The first exception of ``kind`` in ``err``'s chain, or None."""
    seen: BaseException | None = err
    for _ in range(8):
        if seen is None:
            return None
        if isinstance(seen, kind):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _describe(err: httpx.HTTPError) -> str:
    text = str(err) or type(err).__name__
    return text.splitlines()[0]


def _error_detail(raw: bytes) -> str:
    """The registry's {"errors": [{"code", "message"}]} as one line."""
    try:
        errors = json.loads(raw).get("errors") or []
        return "; ".join(f"{e.get('code', '')}: {e.get('message', '')}" for e in errors)
    except (ValueError, AttributeError):
        return raw[:200].decode(errors="replace").strip()
