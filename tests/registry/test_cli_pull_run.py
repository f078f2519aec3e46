"""`orch pull HOST:PORT/x/y:1`, then `orch run HOST:PORT/x/y:1`: through the real
CLI and a real agent, against the real docker-registry (plain http on
loopback, and TLS with ``--registry-ca``)."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from registry_helpers import Registry, run_registry
from tls_helpers import make_pki

from nodeagent.images import ImageStore
from nodeagent.images.push import push
from registry.transport import Settings
from tests.agent.conftest import Engine

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the agent needs root")


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """An agent of its own (nothing imported into it: every image comes by pull)."""
    tmp = tmp_path_factory.mktemp("engine")
    tag = secrets.token_hex(2)
    eng = Engine(state=tmp / "state", run=Path(f"/run/orch-test-{tag}"), bridge=f"orchr{tag}",
                 subnet=f"10.216.{int(tag[:2], 16)}.0/24",
                 env={**os.environ, "ORCH_HOST": f"unix:///run/orch-test-{tag}/agent.sock"})
    eng.start()
    try:
        yield eng
    finally:
        eng.stop_all()
        subprocess.run(["rm", "-rf", str(eng.run)], check=False)


def publish(registry_addr: str, rootfs: Path, tmp_path: Path, remote: str,
            settings: Settings | None = None) -> tuple[str, str]:
    """Push busybox plus a file of its own to ``remote``; (manifest digest, the file's text)."""
    tree = tmp_path / "tree"
    subprocess.run(["cp", "-a", f"{rootfs}/.", str(tree)], check=True)
    text = f"hello {secrets.token_hex(4)}"
    (tree / "hello").write_text(text + "\n")
    store = ImageStore(str(tmp_path / "publisher"))
    store.import_rootfs(str(tree), "local:1")
    return push(store, "local:1", f"{registry_addr}/{remote}", settings=settings), text


def test_pull_then_run_by_host_port_reference(engine: Engine, registry: Registry, busybox_rootfs: Path,
                                              tmp_path: Path) -> None:
    digest, text = publish(registry.addr, busybox_rootfs, tmp_path, "x/y:1")
    ref = f"{registry.addr}/x/y:1"
    out = engine.orch("pull", ref).stdout
    assert out.startswith(f"pulled {ref}: sha256:")

    rows = [line.split() for line in engine.orch("images").stdout.splitlines()]
    assert [f"{registry.addr}/x/y", "1"] in [row[:2] for row in rows]
    rows = [line.split() for line in engine.orch("images", "--digests").stdout.splitlines()]
    assert [f"{registry.addr}/x/y", "1", digest] in [row[:3] for row in rows]

    assert engine.orch("run", "--rm", ref, "cat", "/hello").stdout == text + "\n"
    by_digest = f"{registry.addr}/x/y@{digest}"
    assert engine.orch("run", "--rm", by_digest, "cat", "/hello").stdout == text + "\n"
    name = f"pulled-{secrets.token_hex(3)}"
    engine.orch("create", "--name", name, ref, "true")
    engine.orch("rm", name)

    # localhost:PORT is a registry by Docker's rule, and its own name in the store.
    port = registry.addr.rsplit(":", 1)[1]
    engine.orch("pull", f"localhost:{port}/x/y:1")
    assert engine.orch("run", "--rm", f"localhost:{port}/x/y", "cat", "/hello", check=False).returncode != 0
    assert engine.orch("run", "--rm", f"localhost:{port}/x/y:1", "cat", "/hello").stdout == text + "\n"

    removed = engine.orch("image", "rm", ref).stdout.splitlines()
    assert removed == [f"untagged: {ref}"]  # the localhost name still holds the image
    removed = engine.orch("image", "rm", f"localhost:{port}/x/y@{digest}").stdout.splitlines()
    assert removed[0] == f"untagged: localhost:{port}/x/y:1" and removed[1].startswith("deleted: ")
    failed = engine.orch("run", "--rm", ref, "true", check=False)
    assert failed.returncode != 0
    assert f'image "{ref}" not found (orch pull {ref})' in failed.stderr


def test_pull_by_digest_then_run(engine: Engine, registry: Registry, busybox_rootfs: Path,
                                 tmp_path: Path) -> None:
    digest, text = publish(registry.addr, busybox_rootfs, tmp_path, "team/app:2")
    by_digest = f"{registry.addr}/team/app@{digest}"
    engine.orch("pull", by_digest)
    rows = [line.split() for line in engine.orch("images", "--digests").stdout.splitlines()]
    assert [f"{registry.addr}/team/app", "<none>", digest] in [row[:3] for row in rows]
    assert engine.orch("run", "--rm", by_digest, "cat", "/hello").stdout == text + "\n"
    assert engine.orch("image", "rm", by_digest).stdout.splitlines()[0] == f"untagged: {by_digest}"


def test_pull_from_a_tls_registry_with_registry_ca(engine: Engine, busybox_rootfs: Path,
                                                   tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    with run_registry(tmp_path / "tls", tls=(pki.cert, pki.key)) as reg:
        _, text = publish(reg.addr, busybox_rootfs, tmp_path, "secure/app:1",
                               Settings(ca_files=(str(pki.ca),), certs_dirs=()))
        ref = f"{reg.addr}/secure/app:1"
        failed = engine.orch("pull", ref, check=False)
        assert failed.returncode != 0
        assert "TLS certificate is not trusted" in failed.stderr and "--registry-ca" in failed.stderr
        assert "Traceback" not in failed.stderr
        missing = engine.orch("pull", "--registry-ca", str(tmp_path / "nope.crt"), ref, check=False)
        assert missing.returncode != 0 and "--registry-ca" in missing.stderr and "nope.crt" in missing.stderr
        engine.orch("pull", "--registry-ca", str(pki.ca), ref)
    assert engine.orch("run", "--rm", ref, "cat", "/hello").stdout == text + "\n"
    engine.orch("image", "rm", ref)


def test_agent_registry_ca_reaches_its_pulls(busybox_rootfs: Path, tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    tag = secrets.token_hex(2)
    eng = Engine(state=tmp_path / "state", run=Path(f"/run/orch-test-{tag}"), bridge=f"orchc{tag}",
                 subnet=f"10.217.{int(tag[:2], 16)}.0/24",
                 env={**os.environ, "ORCH_HOST": f"unix:///run/orch-test-{tag}/agent.sock"})
    base = ["agent", "--detach", "--state-dir", str(eng.state), "--run-dir", str(eng.run),
            "--bridge", eng.bridge, "--subnet", eng.subnet]
    refused = eng.orch(*base, "--registry-ca", str(pki.key), check=False)
    assert refused.returncode != 0 and "not a PEM certificate" in refused.stderr
    assert not eng.run.exists() or not (eng.run / "agent.sock").exists()
    eng.orch(*base, "--registry-ca", str(pki.ca))
    try:
        with run_registry(tmp_path / "tls", tls=(pki.cert, pki.key)) as reg:
            _, text = publish(reg.addr, busybox_rootfs, tmp_path, "app:1",
                              Settings(ca_files=(str(pki.ca),), certs_dirs=()))
            eng.orch("pull", f"{reg.addr}/app:1")  # no --registry-ca: the agent's own
        assert eng.orch("run", "--rm", f"{reg.addr}/app:1", "cat", "/hello").stdout == text + "\n"
    finally:
        eng.stop_all()
        subprocess.run(["rm", "-rf", str(eng.run)], check=False)


def test_controlplane_registry_ca_is_checked_before_it_starts(tmp_path: Path) -> None:
    import sys

    proc = subprocess.run([sys.executable, "-m", "orch", "controlplane", "--etcd", "http://127.0.0.1:9",
                           "--state-dir", str(tmp_path / "cp"), "--socket", "",
                           "--registry-ca", str(tmp_path / "missing.crt")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert f"--registry-ca {tmp_path / 'missing.crt'}: No such file" in proc.stderr
    assert not (tmp_path / "cp").exists()
