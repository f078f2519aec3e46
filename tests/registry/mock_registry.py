"""An OCI registry as an ``httpx.MockTransport`` handler, for what the real one
cannot do on demand: Bearer-token and Basic challenges, corrupt or dropped
blobs, hostile content. It records every request it is sent.

It speaks enough of the distribution API for pull and push: GET/HEAD of
manifests and blobs, POST uploads (with cross-repository mounts), PUT of a
finished upload (``?digest=``) and of manifests. Its token endpoint is
``https://auth.test/token`` and checks Basic credentials.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
REALM = "https://auth.test/token"
TOKEN = "tok-123"
_PATH = re.compile(r"^/v2/(?P<repo>.+)/(?P<kind>manifests|blobs)/(?P<ref>[^/]+)$")
_UPLOADS = re.compile(r"^/v2/(?P<repo>.+)/blobs/uploads/(?P<id>[^/]*)$")


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class _Dropped(httpx.SyncByteStream):
    """A body that ends half way with a dropped connection."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __iter__(self) -> Iterator[bytes]:
        yield self.data[: len(self.data) // 2]
        raise httpx.ReadError("connection reset by peer")


@dataclass
class MockRegistry:
    host: str = "registry.test:5000"
    manifests: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # "repo:ref" -> (raw, type)
    blobs: dict[str, dict[str, bytes]] = field(default_factory=dict)  # repo -> digest -> bytes
    corrupt: set[str] = field(default_factory=set)  # digests served with flipped bytes
    dropped: set[str] = field(default_factory=set)  # digests whose download breaks half way
    bearer: tuple[str, str] | None = None  # (user, password) the token endpoint accepts
    basic: tuple[str, str] | None = None  # Basic auth on /v2/
    requests: list[httpx.Request] = field(default_factory=list)
    _uploads: int = 0

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def add_image(self, repo: str, tag: str, config: bytes, layers: list[bytes],
                  layer_type: str = OCI_LAYER) -> str:
        """Publish an image; returns its manifest digest."""
        store = self.blobs.setdefault(repo, {})
        for blob in (config, *layers):
            store[sha(blob)] = blob
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha(config), "size": len(config)},
            "layers": [{"mediaType": layer_type, "digest": sha(ly), "size": len(ly)} for ly in layers],
        }
        raw = json.dumps(manifest).encode()
        self.manifests[f"{repo}:{tag}"] = (raw, OCI_MANIFEST)
        self.manifests[f"{repo}:{sha(raw)}"] = (raw, OCI_MANIFEST)
        return sha(raw)

    def authorizations(self) -> list[str]:
        return [r.headers.get("Authorization", "") for r in self.requests]

    # -- the handler -----------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        # A copy: an auth flow sends the same request object again with new headers.
        self.requests.append(httpx.Request(request.method, request.url, headers=request.headers.copy()))
        authz = request.headers.get("Authorization", "")
        if request.url.host == "auth.test":
            return self._token(request, authz)
        if request.url.netloc.decode() != self.host:
            return httpx.Response(502, text=f"no such host {request.url.netloc.decode()}")
        denied = self._challenge(authz)
        if denied is not None:
            return denied
        path = request.url.path
        if path == "/v2/":
            return httpx.Response(200, json={})
        upload = _UPLOADS.match(path)
        if upload:
            return self._upload(request, upload["repo"], upload["id"])
        match = _PATH.match(path)
        if match is None:
            return httpx.Response(404, json={"errors": [{"code": "UNSUPPORTED", "message": path}]})
        if match["kind"] == "manifests":
            return self._manifest(request, match["repo"], match["ref"])
        return self._blob(request, match["repo"], match["ref"])

    def _challenge(self, authz: str) -> httpx.Response | None:
        if self.bearer is not None and authz != f"Bearer {TOKEN}":
            challenge = f'Bearer realm="{REALM}",service="mock",scope="repository:app:pull"'
            return httpx.Response(401, json={"errors": [{"code": "UNAUTHORIZED", "message": "token"}]},
                                  headers={"WWW-Authenticate": challenge})
        if self.basic is not None and authz != basic(*self.basic):
            return httpx.Response(401, json={"errors": [{"code": "UNAUTHORIZED", "message": "login"}]},
                                  headers={"WWW-Authenticate": 'Basic realm="mock"'})
        return None

    def _token(self, request: httpx.Request, authz: str) -> httpx.Response:
        if self.bearer is None or authz != basic(*self.bearer):
            return httpx.Response(401, json={"details": "bad credentials"})
        return httpx.Response(200, json={"token": TOKEN, "expires_in": 300})

    def _manifest(self, request: httpx.Request, repo: str, ref: str) -> httpx.Response:
        if request.method == "PUT":
            raw = request.read()
            self.manifests[f"{repo}:{ref}"] = (raw, request.headers["Content-Type"])
            self.manifests[f"{repo}:{sha(raw)}"] = (raw, request.headers["Content-Type"])
            return httpx.Response(201, headers={"Docker-Content-Digest": sha(raw)})
        found = self.manifests.get(f"{repo}:{ref}")
        if found is None:
            return httpx.Response(404, json={"errors": [{"code": "MANIFEST_UNKNOWN", "message": ref}]})
        raw, media_type = found
        return httpx.Response(200, content=b"" if request.method == "HEAD" else raw,
                              headers={"Content-Type": media_type, "Docker-Content-Digest": sha(raw)})

    def _blob(self, request: httpx.Request, repo: str, digest: str) -> httpx.Response:
        blob = self.blobs.get(repo, {}).get(digest)
        if blob is None:
            return httpx.Response(404, json={"errors": [{"code": "BLOB_UNKNOWN", "message": digest}]})
        headers = {"Content-Length": str(len(blob)), "Content-Type": "application/octet-stream"}
        if request.method == "HEAD":
            return httpx.Response(200, headers=headers)
        if digest in self.corrupt:
            blob = bytes(b ^ 0xFF for b in blob)
        if digest in self.dropped:
            return httpx.Response(200, headers=headers, stream=_Dropped(blob))
        return httpx.Response(200, headers=headers, content=blob)

    def _upload(self, request: httpx.Request, repo: str, upload_id: str) -> httpx.Response:
        params = request.url.params
        if request.method == "POST":
            source = params.get("from", "")
            mounted = self.blobs.get(source, {}).get(params.get("mount", ""))
            if mounted is not None:
                self.blobs.setdefault(repo, {})[params["mount"]] = mounted
                return httpx.Response(201)
            self._uploads += 1
            return httpx.Response(202, headers={"Location": f"/v2/{repo}/blobs/uploads/u{self._uploads}"})
        if request.method == "PUT":
            data = request.read()
            if sha(data) != params.get("digest"):
                return httpx.Response(400, json={"errors": [{"code": "DIGEST_INVALID", "message": "?"}]})
            self.blobs.setdefault(repo, {})[sha(data)] = data
            return httpx.Response(201)
        return httpx.Response(405)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
