"""The example stack's Debian-built images (scripts/images, examples/stack).

On one engine: redis, the app and nginx on a user-defined network, each
finding the next by name; the visit count goes up through nginx, and a new
redis container on the same named volume carries it on. The test command
(scripts/test) builds the root filesystems first (``scripts/images``:
mmdebstrap, once, then cached); a bare pytest run skips this test unless
the cache holds them (``scripts/images --check`` says). Needs root (a real
agent of its own, on a private state dir, run dir, bridge and subnets, torn
down afterwards).

Without either: examples/stack/rootfs_diff.py, which makes each image's
layer of what its packages add to the shared base, on small tarballs."""

from __future__ import annotations

import importlib.util
import io
import ipaddress
import os
import re
import secrets
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

from tests.ports import free_ports

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "images"


def _cached() -> bool:
    return subprocess.run([str(SCRIPT), "--check"], capture_output=True).returncode == 0


needs_images = [
    pytest.mark.skipif(os.geteuid() != 0, reason="the agent needs root"),
    pytest.mark.skipif(not _cached(), reason="stack images not in the cache (run scripts/images)"),
]


@dataclass
class Engine:
    run_dir: Path
    env: dict[str, str]

    def orch(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([sys.executable, "-m", "orch", *args], env=self.env, text=True,
                              capture_output=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"orch {' '.join(args)} -> {proc.returncode}\n"
                                 f"stdout: {proc.stdout}\nstderr: {proc.stderr}")
        return proc


def free_subnet(prefix: str) -> str:
    from nodeagent.network.engine_networks import routed_subnets

    taken = routed_subnets()
    while True:
        net = ipaddress.IPv4Network(f"{prefix}.{secrets.randbelow(256)}.0/24")
        if not any(net.overlaps(t) for t in taken):
            return str(net)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    tag = secrets.token_hex(2)
    run_dir = Path(f"/run/orch-test-{tag}")
    state = tmp_path / "state"
    eng = Engine(run_dir, {**os.environ, "ORCH_HOST": f"unix://{run_dir}/agent.sock"})
    eng.orch("agent", "--detach", "--state-dir", str(state), "--run-dir", str(run_dir),
             "--bridge", f"orcht{tag}", "--subnet", free_subnet("10.217"), "--dns-upstream", "none")
    try:
        yield eng
    finally:
        # Containers first, then what they used: the network's bridge and
        # nft table are the host's, not the state dir's.
        ids = eng.orch("ps", "-aq", check=False).stdout.split()
        if ids:
            eng.orch("rm", "-f", *ids, check=False)
        for net in eng.orch("network", "ls", "-q", check=False).stdout.split():
            eng.orch("network", "rm", net, check=False)
        eng.orch("agent", "stop", "--all", "--state-dir", str(state), "--run-dir", str(run_dir),
                 check=False)
        subprocess.run(["rm", "-rf", str(run_dir)], check=False)


def wait_for(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def get(port: int, path: str) -> tuple[int, str]:
    """Status and body of http://127.0.0.1:PORT/PATH; 0 when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
    except OSError:
        return 0, ""


def visits(port: int) -> tuple[int, str]:
    """One visit through nginx: the count and the app host that served it."""
    status, body = get(port, "/")
    assert status == 200, f"GET / -> {status}: {body}"
    count = re.search(r"<p>visits: (\d+)</p>", body)
    host = re.search(r"<p>served by (\S+)</p>", body)
    assert count and host, body
    return int(count.group(1)), host.group(1)


def start_redis(engine: Engine, name: str, network: str) -> None:
    engine.orch("run", "-d", "--name", name, "--network", network, "--network-alias", "redis",
                "-v", "redisdata:/data", "orch-stack/redis:1")

    def pong() -> bool:
        out = engine.orch("exec", name, "redis-cli", "ping", check=False)
        return out.stdout.strip() == "PONG"

    wait_for(pong, f"{name} to answer PING")


@needs_images[0]
@needs_images[1]
def test_stack_counts_visits_through_nginx_and_keeps_them_on_the_volume(engine: Engine) -> None:
    load = subprocess.run([str(SCRIPT), "--load"], env=engine.env, capture_output=True, text=True,
                          timeout=120)
    assert load.returncode == 0, load.stderr
    assert [line.split()[-1] for line in load.stdout.splitlines()] == [
        "orch-stack/app:1", "orch-stack/redis:1", "orch-stack/nginx:1"]

    net = f"stack{secrets.token_hex(2)}"
    engine.orch("network", "create", net, "--subnet", free_subnet("10.218"))
    [port] = free_ports(1)
    start_redis(engine, "redis1", net)
    app_id = engine.orch("run", "-d", "--name", "app", "--network", net, "--network-alias", "app",
                         "orch-stack/app:1").stdout.strip()
    engine.orch("run", "-d", "--name", "nginx", "--network", net, "-p", f"127.0.0.1:{port}:80",
                "orch-stack/nginx:1")
    # nginx's own page, then the app's through it: neither counts a visit.
    wait_for(lambda: get(port, "/nginx-healthz")[0] == 200, "nginx")
    wait_for(lambda: get(port, "/healthz") == (200, "ok\n"), "the app behind nginx")

    assert visits(port) == (1, app_id[:12])
    assert visits(port) == (2, app_id[:12])

    # A new redis container (a new address behind the name) on the same volume.
    engine.orch("stop", "redis1")
    engine.orch("rm", "redis1")
    start_redis(engine, "redis2", net)
    assert visits(port)[0] == 3

    logs = engine.orch("logs", "nginx").stdout
    assert '"GET / HTTP/1.1" 200' in logs  # the access log goes to stdout


# -- rootfs_diff -----------------------------------------------------------------


def _rootfs_diff() -> ModuleType:
    name = "stack_rootfs_diff"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "examples/stack/rootfs_diff.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # its dataclass looks itself up there
        spec.loader.exec_module(module)
    return sys.modules[name]


def _tar(path: Path, members: list[tuple[str, str, str]], mode: int = 0o644) -> Path:
    """A tarball of (name, kind, data): kind "dir", "file" (data: content),
    "link" (data: a hard link's target) or "sym" (data: a symlink's target)."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        for name, kind, data in members:
            info = tarfile.TarInfo(f"./{name}")
            info.mtime = 1_700_000_000
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(info)
            elif kind == "file":
                body = data.encode()
                info.size, info.mode = len(body), mode
                tf.addfile(info, io.BytesIO(body))
            else:
                info.type = tarfile.LNKTYPE if kind == "link" else tarfile.SYMTYPE
                info.linkname = f"./{data}" if kind == "link" else data
                tf.addfile(info)
    return path


def _members(path: Path) -> dict[str, tuple[bytes, str, bytes]]:
    """name -> (type, link target, content) of a tarball's members."""
    out = {}
    with tarfile.open(path) as tf:
        for m in tf.getmembers():
            f = tf.extractfile(m) if m.isreg() else None
            out[m.name.removeprefix("./")] = (m.type, m.linkname, f.read() if f else b"")
    return out


BASE = [("etc", "dir", ""), ("etc/os", "file", "debian"), ("usr", "dir", ""), ("usr/bin", "dir", ""),
        ("usr/bin/sh", "file", "dash"), ("usr/bin/sh2", "link", "usr/bin/sh"),
        ("bin", "sym", "usr/bin")]


def test_rootfs_diff_keeps_what_is_new_or_changed_with_its_directories(tmp_path: Path) -> None:
    rd = _rootfs_diff()
    base = _tar(tmp_path / "base.tar", BASE)
    image = _tar(tmp_path / "image.tar", [
        *BASE[:4],
        ("usr/bin/sh", "file", "dash"),                 # unchanged
        ("usr/bin/sh2", "link", "usr/bin/sh"),          # unchanged hard link
        ("bin", "sym", "usr/bin"),
        ("etc/os", "file", "debian 12"),                # changed content
        ("usr/bin/python3", "file", "py"),              # new
        ("usr/bin/py3", "link", "usr/bin/python3"),     # new link to a new file: stays a link
        ("usr/bin/dash", "link", "usr/bin/sh"),         # new link into the base: becomes a copy
        ("usr/lib", "dir", ""), ("usr/lib/x", "sym", "../bin/python3"),
    ])
    assert rd.main([str(base), str(image), str(tmp_path / "out.tar")]) == 0
    out = _members(tmp_path / "out.tar")
    assert sorted(out) == ["etc", "etc/os", "usr", "usr/bin", "usr/bin/dash", "usr/bin/py3",
                           "usr/bin/python3", "usr/lib", "usr/lib/x"]
    assert out["etc/os"] == (tarfile.REGTYPE, "", b"debian 12")
    assert out["usr/bin/py3"][:2] == (tarfile.LNKTYPE, "./usr/bin/python3")
    assert out["usr/bin/dash"] == (tarfile.REGTYPE, "", b"dash")
    assert out["usr/lib/x"][:2] == (tarfile.SYMTYPE, "../bin/python3")


def test_rootfs_diff_counts_a_mode_change_and_refuses_a_removal(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rd = _rootfs_diff()
    base = _tar(tmp_path / "base.tar", BASE)
    chmod = _tar(tmp_path / "chmod.tar", [(n, k, d) for n, k, d in BASE if n != "usr/bin/sh"]
                 + [("usr/bin/sh", "file", "dash")], mode=0o755)
    assert rd.main([str(base), str(chmod), str(tmp_path / "out.tar")]) == 0
    assert "usr/bin/sh" in _members(tmp_path / "out.tar")

    smaller = _tar(tmp_path / "smaller.tar", [m for m in BASE if m[0] != "etc/os"])
    assert rd.main([str(base), str(smaller), str(tmp_path / "out2.tar")]) == 1
    assert "etc/os" in capsys.readouterr().err
