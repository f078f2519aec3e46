"""Where the CLI's TLS files come from, and their checks, without grpcio:
the cluster commands read these on every run (over the unix socket too),
and only ``orch.cli.tlschannel`` (grpcio, ~110 ms to import) dials with them.

- **Where the files come from** (``tls_from``), as docker's CLI does it: the
  flags ``--tlscacert``, ``--tlscert``, ``--tlskey`` first, then
  ``$ORCH_TLS_CACERT``, ``$ORCH_TLS_CERT``, ``$ORCH_TLS_KEY``, then
  ``$ORCH_CERT_PATH``, a directory holding ``ca.pem``, ``cert.pem`` and
  ``key.pem``. Each file is looked up on its own; some set and some not is
  an error naming what is missing.
- **Checked before dialling** (``CLITLS.load``): each file exists, is
  readable and holds PEM of the right kind; the certificate parses and the
  key is its key. A bad file is a one-line ``CLIError`` naming the file and
  where its name came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orch.cli.client import CLIError, getenv

__all__ = ["CERT_PATH_FILES", "CLITLS", "add_tls_flags", "tls_from"]

CERT_PATH_FILES = ("ca.pem", "cert.pem", "key.pem")
_FLAGS = ("--tlscacert", "--tlscert", "--tlskey")
_ENVS = ("ORCH_TLS_CACERT", "ORCH_TLS_CERT", "ORCH_TLS_KEY")
_WHAT = ("CA certificate", "client certificate", "client key")
_MAX_FILE = 1 << 20  # certificates and keys are a few KiB; more is not one
_CERT_LINE = b"-----BEGIN CERTIFICATE-----"


@dataclass(frozen=True)
class CLITLS:
    """The CA to trust and the client's certificate and key, as file paths.
    ``origins``: where each path came from (a flag, an environment
    variable), for messages; ``tls_from`` fills it in."""

    ca_file: str
    cert_file: str
    key_file: str
    origins: tuple[str, str, str] | None = field(default=None, compare=False)

    def _origin(self, index: int) -> str:
        if self.origins is not None:
            return self.origins[index]
        return f"{_FLAGS[index]} or ${_ENVS[index]}"

    def _error(self, index: int, problem: str) -> CLIError:
        path = (self.ca_file, self.cert_file, self.key_file)[index]
        return CLIError(f"TLS {_WHAT[index]} {path} (from {self._origin(index)}): {problem}")

    def load(self) -> tuple[bytes, bytes, bytes]:
        """The CA certificate, client certificate and client key (PEM), each
        checked; CLIError naming the file otherwise."""
        ca, cert, key = (self._read(i, path) for i, path in
                         enumerate((self.ca_file, self.cert_file, self.key_file)))
        for index, data in ((0, ca), (1, cert)):
            if _CERT_LINE not in data:
                held = " (it holds a private key: swapped with the key?)" if _is_key(data) else ""
                raise self._error(index, f"not a PEM certificate{held}")
        if not _is_key(key):
            held = " (it holds a certificate: swapped with the certificate?)" if _CERT_LINE in key else ""
            raise self._error(2, f"not a PEM private key{held}")
        if b"ENCRYPTED" in key:
            raise self._error(2, "the key is encrypted; orch needs it unencrypted")
        for index, data in ((0, ca), (1, cert)):
            if not _certificates_parse(data):
                raise self._error(index, "a damaged or truncated PEM certificate")
        self._check_pair()
        return ca, cert, key

    def _read(self, index: int, path: str) -> bytes:
        try:
            with open(path, "rb") as f:
                data = f.read(_MAX_FILE + 1)
        except OSError as err:
            raise self._error(index, f"cannot read it: {err.strerror or err}")
        if len(data) > _MAX_FILE:
            raise self._error(index, f"larger than {_MAX_FILE >> 20} MiB: not a certificate or key")
        return data

    def _check_pair(self) -> None:
        """The key is the certificate's (ssl parses both: a corrupt key or a
        key of another certificate shows here, not as a failed handshake)."""
        import ssl  # here: reading the flags needs none of it

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        try:
            ctx.load_cert_chain(self.cert_file, self.key_file, password=_no_password)
        except ssl.SSLError as err:
            if err.reason == "KEY_VALUES_MISMATCH":
                raise self._error(2, f"not the key of the certificate {self.cert_file} "
                                     f"(from {self._origin(1)})")
            raise self._error(2, "a damaged or truncated PEM private key")
        except (OSError, ValueError) as err:  # the files changed since they were read
            raise self._error(2, f"cannot load it: {err}")


def _is_key(data: bytes) -> bool:
    return b"-----BEGIN " in data and b"PRIVATE KEY-----" in data


def _no_password() -> bytes:
    raise ValueError("the key is encrypted")


def _certificates_parse(pem: bytes) -> bool:
    """Every PEM certificate in ``pem`` parses (ssl's reasons say no more
    than that, so they are left out)."""
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        ctx.load_verify_locations(cadata=pem.decode("ascii", "replace"))
    except ssl.SSLError:
        return False
    return True


def add_tls_flags(parser: Any) -> None:
    """The TLS flags, docker's names, on an argparse parser."""
    parser.add_argument("--tlscacert", metavar="FILE", default=None,
                        help="trust only this CA certificate (PEM): the cluster's CA "
                             "[$ORCH_TLS_CACERT, or ca.pem in $ORCH_CERT_PATH]")
    parser.add_argument("--tlscert", metavar="FILE", default=None,
                        help="the client certificate (PEM) [$ORCH_TLS_CERT, or cert.pem in $ORCH_CERT_PATH]")
    parser.add_argument("--tlskey", metavar="FILE", default=None,
                        help="the client certificate's key (PEM) "
                             "[$ORCH_TLS_KEY, or key.pem in $ORCH_CERT_PATH]")


def tls_from(args: Any) -> CLITLS | None:
    """The TLS files the flags or the environment name (flags first, then
    ``$ORCH_TLS_*``, then ``$ORCH_CERT_PATH``, file by file); None when
    nothing is set, CLIError when some are and others are not."""
    cert_dir = getenv("ORCH_CERT_PATH") or ""
    paths: list[str] = []
    origins: list[str] = []
    for index, (flag, env) in enumerate(zip(_FLAGS, _ENVS, strict=True)):
        value = getattr(args, flag[2:], None)
        if value:
            paths.append(value)
            origins.append(flag)
        elif getenv(env):
            paths.append(getenv(env) or "")
            origins.append(f"${env}")
        elif cert_dir:
            paths.append(cert_dir.rstrip("/") + "/" + CERT_PATH_FILES[index])
            origins.append("$ORCH_CERT_PATH")
        else:
            paths.append("")
            origins.append("")
    if not any(paths):
        return None
    missing = [f"the {_WHAT[i]} ({_FLAGS[i]} or ${_ENVS[i]})" for i in range(3) if not paths[i]]
    if missing:
        raise CLIError(f"TLS needs a CA certificate, a client certificate and its key: "
                       f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set "
                       f"(or set $ORCH_CERT_PATH to a directory holding {', '.join(CERT_PATH_FILES)})")
    return CLITLS(paths[0], paths[1], paths[2], (origins[0], origins[1], origins[2]))


# How grpc-core words a status it made up for a failed or lost connection
# (rather than one the server sent).
