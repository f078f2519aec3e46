"""A real docker-registry (Debian's distribution 2.8) on 127.0.0.1, plain or TLS, and image helpers."""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from nodeagent.images import ImageStore
from nodeagent.images.layerbuild import build_layer
from nodeagent.images.model import LAYER_MEDIA_TYPE, Image, descriptor

REGISTRY_BIN = "/usr/bin/docker-registry"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Registry:
    addr: str  # "127.0.0.1:PORT"
    log: Path
    storage: Path


@contextlib.contextmanager
def run_registry(tmp: Path, htpasswd: Path | None = None,
                 tls: tuple[Path, Path] | None = None) -> Iterator[Registry]:
    """Start docker-registry on a free port with tmp storage; stopped by pid afterwards.

    ``tls``: (certificate chain, key) PEM files; it then serves https only."""
    port = free_port()
    storage = tmp / "storage"
    storage.mkdir(parents=True)
    config = tmp / "config.yml"
    lines = [
        "version: 0.1",
        "log:",
        "  level: info",
        "storage:",
        "  filesystem:",
        f"    rootdirectory: {storage}",
        "  delete:",
        "    enabled: true",
        "http:",
        f"  addr: 127.0.0.1:{port}",
    ]
    if tls is not None:
        lines += ["  tls:", f"    certificate: {tls[0]}", f"    key: {tls[1]}"]
    if htpasswd is not None:
        lines += ["auth:", "  htpasswd:", "    realm: orch-test", f"    path: {htpasswd}"]
    config.write_text("\n".join(lines) + "\n")
    log = tmp / "registry.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([REGISTRY_BIN, "serve", str(config)], stdout=out, stderr=out)
    try:
        _wait_ready(port, proc, log, tls is not None)
        yield Registry(f"127.0.0.1:{port}", log, storage)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_ready(port: int, proc: subprocess.Popen[bytes], log: Path, tls: bool) -> None:
    deadline = time.monotonic() + 15
    scheme = "https" if tls else "http"
    # Only whether it answers: the tests check its certificate themselves.
    unverified = ssl._create_unverified_context() if tls else None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"docker-registry exited: {log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(f"{scheme}://127.0.0.1:{port}/v2/", timeout=1, context=unverified).close()
            return
        except urllib.error.HTTPError:
            return  # 401 with auth enabled: it is up
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"docker-registry did not start: {log.read_text()[-2000:]}")


def layered_image(store: ImageStore, ref: str | None, sources: list[Path]) -> Image:
    """An image of one layer per source directory, via ImageStore.add_image."""
    layers = [build_layer(str(src), store.layout) for src in sources]
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [ly.diff_id for ly in layers]},
    }
    descs = [descriptor(LAYER_MEDIA_TYPE, ly.digest, ly.size) for ly in layers]
    return store.add_image(ref, config, descs)


def random_tree(root: Path, name: str, size: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / name).write_bytes(os.urandom(size))
    return root
