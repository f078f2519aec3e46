"""A registry on TLS with its own CA (the real docker-registry), and proxies.

The CA is trusted through ``--registry-ca`` (``Settings.ca_files``, the image
job's option, ``$ORCH_REGISTRY_CA``) or Docker's certs.d layout; without it
the pull fails saying what to do, and never falls back to plain http. The
proxy tests go through a real proxy on loopback (tests/registry/proxy_helpers):
``HTTPS_PROXY`` as a CONNECT tunnel to the TLS registry, ``HTTP_PROXY`` as
absolute-form requests to a plain one.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from proxy_helpers import loopback_proxy
from registry_helpers import Registry, run_registry
from tls_helpers import Pki, make_pki

from common.errors import AgentError, InvalidArgument
from nodeagent.images import ImageStore
from nodeagent.images.job import run_job
from nodeagent.images.pull import pull
from nodeagent.images.push import push
from registry import RegistryError
from registry.transport import CA_ENV, CERTS_DIRS, Settings, check_ca_file


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def tls_registry(tmp_path: Path, pki: Pki) -> Iterator[Registry]:
    with run_registry(tmp_path / "tls-registry", tls=(pki.cert, pki.key)) as reg:
        yield reg


@pytest.fixture
def image(store: ImageStore, busybox_rootfs: Path) -> str:
    return store.import_rootfs(str(busybox_rootfs), "busybox:tls").manifest_digest


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def test_push_and_pull_with_registry_ca(tls_registry: Registry, pki: Pki, store: ImageStore,
                                        store2: ImageStore, image: str) -> None:
    trusted = Settings(ca_files=(str(pki.ca),), certs_dirs=())
    remote = f"{tls_registry.addr}/team/app:1"
    assert push(store, "busybox:tls", remote, settings=trusted) == image
    pulled = pull(store2, remote, settings=trusted)
    assert pulled.manifest_digest == image and pulled.repo_tags == [remote]


def test_certs_d_layout(tls_registry: Registry, pki: Pki, store: ImageStore, store2: ImageStore,
                        image: str, tmp_path: Path) -> None:
    certs_d = tmp_path / "certs.d"
    (certs_d / tls_registry.addr).mkdir(parents=True)
    shutil.copy(pki.ca, certs_d / tls_registry.addr / "ca.crt")
    # The first directory need not exist: /etc/orch/certs.d, then /etc/docker/certs.d.
    settings = Settings(certs_dirs=(str(tmp_path / "absent"), str(certs_d)))
    push(store, "busybox:tls", f"{tls_registry.addr}/app:1", settings=settings)
    assert pull(store2, f"{tls_registry.addr}/app:1", settings=settings).manifest_digest == image
    assert CERTS_DIRS == ("/etc/orch/certs.d", "/etc/docker/certs.d")


def test_without_the_ca_the_pull_fails_clearly(tls_registry: Registry, pki: Pki, store: ImageStore,
                                               store2: ImageStore, image: str) -> None:
    push(store, "busybox:tls", f"{tls_registry.addr}/app:1",
         settings=Settings(ca_files=(str(pki.ca),), certs_dirs=()))
    with pytest.raises(RegistryError) as err:
        pull(store2, f"{tls_registry.addr}/app:1", settings=Settings(certs_dirs=()))
    message = err.value.message
    assert "TLS certificate is not trusted (unable to get local issuer certificate)" in message
    assert "--registry-ca FILE" in message and f"/etc/orch/certs.d/{tls_registry.addr}/ca.crt" in message
    assert "\n" not in message
    assert store2.layout.read_index() == []


def test_the_image_job_takes_registry_ca_and_the_environment(
        tls_registry: Registry, pki: Pki, store: ImageStore, image: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    push(store, "busybox:tls", f"{tls_registry.addr}/app:1",
         settings=Settings(ca_files=(str(pki.ca),), certs_dirs=()))
    remote = f"{tls_registry.addr}/app:1"
    monkeypatch.delenv(CA_ENV, raising=False)
    with pytest.raises(AgentError, match="not trusted") as err:
        run_job(str(tmp_path / "a"), "pull", remote)
    assert err.value.code == RegistryError.code
    assert ImageStore(str(tmp_path / "a")).get(
        run_job(str(tmp_path / "a"), "pull", remote, registry_ca=str(pki.ca))).repo_tags == [remote]
    # The agent's own --registry-ca reaches its jobs as $ORCH_REGISTRY_CA.
    monkeypatch.setenv(CA_ENV, str(pki.ca))
    assert run_job(str(tmp_path / "b"), "pull", remote)
    with pytest.raises(InvalidArgument, match="not a PEM certificate"):
        run_job(str(tmp_path / "c"), "pull", remote, registry_ca=str(pki.key))


def test_bad_ca_files_are_named(pki: Pki, tmp_path: Path) -> None:
    assert check_ca_file(str(pki.ca)) == str(pki.ca)
    with pytest.raises(InvalidArgument, match=r"--registry-ca .*/nope: No such file"):
        check_ca_file(str(tmp_path / "nope"))
    fake = tmp_path / "fake.crt"
    fake.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    with pytest.raises(InvalidArgument, match=r"fake\.crt: cannot load it as PEM"):
        Settings(ca_files=(str(fake),)).ssl_context("reg.example.com")


def test_https_proxy_tunnels_to_the_tls_registry(tls_registry: Registry, pki: Pki, store: ImageStore,
                                                 store2: ImageStore, image: str, no_proxy_env: None,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    trusted = Settings(ca_files=(str(pki.ca),), certs_dirs=())
    with loopback_proxy() as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        push(store, "busybox:tls", f"{tls_registry.addr}/app:1", settings=trusted)
        assert pull(store2, f"{tls_registry.addr}/app:1", settings=trusted).manifest_digest == image
    assert proxy.seen and set(proxy.seen) == {f"CONNECT {tls_registry.addr} HTTP/1.1"}


def test_http_proxy_forwards_to_a_plain_registry(registry: Registry, store: ImageStore,
                                                 store2: ImageStore, busybox_rootfs: Path,
                                                 no_proxy_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    digest = store.import_rootfs(str(busybox_rootfs), "busybox:plain").manifest_digest
    push(store, "busybox:plain", f"{registry.addr}/app:1", settings=Settings(certs_dirs=()))
    with loopback_proxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        assert pull(store2, f"{registry.addr}/app:1",
                    settings=Settings(certs_dirs=())).manifest_digest == digest
        seen = list(proxy.seen)
        # NO_PROXY is honoured: nothing goes through the proxy for a listed host.
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        pull(store2, f"{registry.addr}/app:1", settings=Settings(certs_dirs=()), tag_as="again:1")
    assert f"GET http://{registry.addr}/v2/app/manifests/1 HTTP/1.1" in seen
    # https was tried first (a loopback registry may speak TLS), through the proxy too.
    assert seen[0] == f"CONNECT {registry.addr} HTTP/1.1"
    assert proxy.seen == seen
    assert os.environ.get("NO_PROXY") == "127.0.0.1"
