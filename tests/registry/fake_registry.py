"""A tiny in-process registry (http.server) for what the real one cannot do on demand.

It serves manifests and blobs from dicts, can demand Bearer tokens (its own
token endpoint checks Basic credentials), and can corrupt or truncate a blob.
Records every request line so tests can assert on what was sent.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class FakeState:
    manifests: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # ref -> (raw, type)
    blobs: dict[str, bytes] = field(default_factory=dict)
    corrupt: set[str] = field(default_factory=set)  # same length, wrong bytes
    truncate: set[str] = field(default_factory=set)  # Content-Length full, half sent
    bearer: tuple[str, str] | None = None  # (user, password) the token endpoint accepts
    basic: tuple[str, str] | None = None  # plain Basic auth on /v2/
    requests: list[tuple[str, str, str]] = field(default_factory=list)  # method, path, authz
    addr: str = ""

    def add_image(self, name: str, tag: str, config: bytes, layers: list[bytes]) -> str:
        for blob in (config, *layers):
            self.blobs[sha(blob)] = blob
        manifest = {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": sha(config), "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": sha(ly), "size": len(ly)} for ly in layers],
        }
        raw = json.dumps(manifest).encode()
        self.manifests[f"{name}:{tag}"] = (raw, MANIFEST)
        self.manifests[f"{name}:{sha(raw)}"] = (raw, MANIFEST)
        return sha(raw)


TOKEN = "tok-123"


class _Handler(http.server.BaseHTTPRequestHandler):
    state: FakeState
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_GET(self) -> None:
        self._serve(head=False)

    def _serve(self, head: bool) -> None:
        st = self.state
        authz = self.headers.get("Authorization", "")
        st.requests.append((self.command, self.path, authz))
        if self.path.startswith("/token"):
            return self._token(authz)
        if not self._authorized(authz):
            return
        parts = self.path.split("/")
        # /v2/<name...>/manifests/<ref>  or  /v2/<name...>/blobs/<digest>
        if len(parts) >= 5 and parts[-2] == "manifests":
            name = "/".join(parts[2:-2])
            found = st.manifests.get(f"{name}:{parts[-1]}")
            if found is None:
                return self._send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"no"}]}')
            return self._send(200, found[0], found[1], head,
                              {"Docker-Content-Digest": sha(found[0])})
        if len(parts) >= 5 and parts[-2] == "blobs":
            digest = parts[-1]
            blob = st.blobs.get(digest)
            if blob is None:
                return self._send(404, b'{"errors":[{"code":"BLOB_UNKNOWN","message":"no"}]}')
            if digest in st.corrupt:
                blob = bytes(b ^ 0xFF for b in blob)
            if digest in st.truncate and not head:
                self.send_response(200)
                self.send_header("Content-Length", str(len(blob)))
                self.end_headers()
                self.wfile.write(blob[: len(blob) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            return self._send(200, blob, "application/octet-stream", head)
        self._send(200, b"{}", "application/json", head)

    def _authorized(self, authz: str) -> bool:
        st = self.state
        if st.bearer is not None and authz != f"Bearer {TOKEN}":
            realm = f"http://{st.addr}/token"
            self._send(401, b"{}", extra={"WWW-Authenticate":
                       f'Bearer realm="{realm}",service="fake",scope="repository:app:pull"'})
            return False
        if st.basic is not None and authz != _basic(*st.basic):
            self._send(401, b"{}", extra={"WWW-Authenticate": 'Basic realm="fake"'})
            return False
        return True

    def _token(self, authz: str) -> None:
        assert self.state.bearer is not None
        if authz != _basic(*self.state.bearer):
            return self._send(401, b"{}")
        self._send(200, json.dumps({"token": TOKEN, "expires_in": 300}).encode())

    def _send(self, status: int, body: bytes, ctype: str = "application/json", head: bool = False,
              extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if not head:
            self.wfile.write(body)


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@contextmanager
def fake_registry() -> Iterator[FakeState]:
    state = FakeState()
    handler = type("Handler", (_Handler,), {"state": state})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    state.addr = f"127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
