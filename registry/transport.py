"""How a registry is reached: https or plain http, which CAs, which proxy.

:class:`Settings` gathers what a client needs beyond the reference:

- **Trusted CAs.** The system's roots (OpenSSL's default paths, so
  ``$SSL_CERT_FILE`` works too), plus ``--registry-ca FILE`` (every
  registry), plus Docker's per-registry ``certs.d`` layout:
  ``/etc/orch/certs.d/HOST:PORT/*.crt`` and, as Docker reads them,
  ``/etc/docker/certs.d/HOST:PORT/*.crt``; a ``NAME.cert`` with its
  ``NAME.key`` there is a client certificate. ``$ORCH_REGISTRY_CA`` is the
  process-wide ``--registry-ca`` (the agent and the control plane set it from
  their option, so image jobs inherit it).
- **Plain http** is allowed for loopback registries (127.0.0.0/8,
  ``localhost``, ``::1``) and those listed in ``$ORCH_INSECURE_REGISTRIES``
  (comma-separated HOST:PORT, Docker's ``--insecure-registry``). Such a
  registry is still tried over https first, as Docker does: one that speaks
  TLS must present a certificate the CAs above trust, and only one that does
  not speak TLS at all is spoken to over http. Every other registry is https
  only.
- **Proxies** come from the environment (``HTTPS_PROXY``, ``HTTP_PROXY``,
  ``ALL_PROXY``, ``NO_PROXY``), which httpx reads (``trust_env``) as curl
  does: a loopback registry goes through the proxy too unless ``NO_PROXY``
  names it (Docker's daemon skips loopback by itself).

Nothing here imports httpx; :func:`ssl_context` imports ``ssl`` when called.
"""

from __future__ import annotations

import glob
import ipaddress
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from common.errors import InvalidArgument

if TYPE_CHECKING:
    import ssl

CA_ENV = "ORCH_REGISTRY_CA"
INSECURE_ENV = "ORCH_INSECURE_REGISTRIES"
CERTS_DIRS = ("/etc/orch/certs.d", "/etc/docker/certs.d")
TIMEOUT = 60.0
_PEM_CERT = b"-----BEGIN CERTIFICATE-----"


@dataclass(frozen=True)
class Settings:
    ca_files: tuple[str, ...] = ()  # PEM CA bundles trusted for every registry
    certs_dirs: tuple[str, ...] = CERTS_DIRS
    insecure: frozenset[str] = frozenset()  # HOST[:PORT] allowed plain http (besides loopback)
    timeout: float = TIMEOUT

    @classmethod
    def from_env(cls, ca_file: str = "") -> Settings:
        """``$ORCH_REGISTRY_CA`` and ``$ORCH_INSECURE_REGISTRIES``, plus ``ca_file``."""
        cas = [p for p in (os.environ.get(CA_ENV, ""), ca_file) if p]
        return cls(ca_files=tuple(dict.fromkeys(cas)), insecure=frozenset(insecure_registries()))

    def allows_http(self, registry: str) -> bool:
        return is_loopback(registry) or registry in self.insecure

    def certs_d_files(self, registry: str) -> tuple[list[str], list[tuple[str, str]]]:
        """(CA files, (client cert, key) pairs) for ``registry`` in the certs.d dirs."""
        cas: list[str] = []
        pairs: list[tuple[str, str]] = []
        for root in self.certs_dirs:
            folder = os.path.join(root, registry)
            cas += sorted(glob.glob(os.path.join(glob.escape(folder), "*.crt")))
            for cert in sorted(glob.glob(os.path.join(glob.escape(folder), "*.cert"))):
                key = cert[: -len(".cert")] + ".key"
                if not os.path.exists(key):
                    raise InvalidArgument(f"{cert}: client certificate without its key {key}")
                pairs.append((cert, key))
        return cas, pairs

    def ssl_context(self, registry: str) -> ssl.SSLContext:
        """System roots + ``ca_files`` + ``registry``'s certs.d CAs and client certificate."""
        import ssl

        ctx = ssl.create_default_context()
        cas, pairs = self.certs_d_files(registry)
        for path in (*self.ca_files, *cas):
            try:
                ctx.load_verify_locations(cafile=path)
            except (OSError, ssl.SSLError) as err:
                raise InvalidArgument(f"registry CA {path}: cannot load it as PEM certificates: {err}")
        for cert, key in pairs:
            try:
                ctx.load_cert_chain(cert, key)
            except (OSError, ssl.SSLError) as err:
                raise InvalidArgument(f"registry client certificate {cert}: cannot load it: {err}")
        return ctx


def check_ca_file(path: str, flag: str = "--registry-ca") -> str:
    """The absolute path of a readable PEM file holding a certificate; else
    InvalidArgument naming ``flag``. Loads no TLS code (the agent calls it)."""
    try:
        with open(path, "rb") as f:
            data = f.read(1 << 20)
    except OSError as err:
        raise InvalidArgument(f"{flag} {path}: {err.strerror or err}")
    if _PEM_CERT not in data:
        raise InvalidArgument(f"{flag} {path}: not a PEM certificate (no {_PEM_CERT.decode()} line)")
    return os.path.abspath(path)


def use_ca_file(path: str, flag: str = "--registry-ca") -> None:
    """Trust ``path`` for every registry this process and its children reach
    (the agent's and the control plane's ``--registry-ca``)."""
    os.environ[CA_ENV] = check_ca_file(path, flag)


def insecure_registries() -> set[str]:
    """``$ORCH_INSECURE_REGISTRIES``: HOST[:PORT] allowed plain http although
    not on loopback (a local test cluster's registry on its private bridge)."""
    return {r.strip() for r in os.environ.get(INSECURE_ENV, "").split(",") if r.strip()}


def host_of(registry: str) -> str:
    """ "host[:port]" -> host (IPv6 brackets removed)."""
    if registry.startswith("["):
        return registry[1 : registry.find("]")]
    return registry.rsplit(":", 1)[0] if ":" in registry else registry


def is_loopback(registry: str) -> bool:
    host = host_of(registry)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
