"""``orch secret`` and ``orch config``: the cluster's secrets and configs.

- ``create [-l K=V] NAME FILE|-``: store a value (a file, or stdin with
  ``-``; at most 500 KiB); a NAME that exists gets a new version (the
  services granted it keep theirs until deployed again). Prints its id.
- ``ls``: name, version, size, where it came from, when.
- ``inspect NAME...``: JSON (or ``-o yaml``): metadata, the versions kept
  and the tasks given each, the services granted it. Never a secret's
  value; a config's (``data``, text, or ``data_base64``).
- ``rm NAME...``: refused while a service is granted it or a task that has
  not ended uses it, naming them.

Also :func:`manifest_files`, which ``orch deploy`` uses: the values of a
manifest's top-level secrets and configs that come from this machine
(``file:``, ``environment:``), read here and sent with the manifest (the
control plane cannot see this machine's files or shell).
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import sys
from typing import Any

from orch.cli.client import Agent, CLIError, key_values
from orch.cli.common import add_output, ago, remove_each
from orch.cli.output import emit

__all__ = ["MAX_BYTES", "cmd_secret", "manifest_files", "register"]

MAX_BYTES = 500 * 1024  # model.secrets.MAX_BYTES (the model is not loaded on this path)
KINDS = ("secret", "config")
# A top-level secrets: or configs: key: only such a manifest needs YAML loaded here.
_SECTIONS = re.compile(r"^(secrets|configs)\s*:", re.MULTILINE)
_ENV_FILE = re.compile(r"^\s+env_file\s*:", re.MULTILINE)
# An env file's largest size: the manifest's own limit (model.manifest).
MAX_ENV_FILE = 1 << 20


def register(sub: Any) -> None:
    for kind in KINDS:
        p = sub.add_parser(kind, help=f"manage the cluster's {kind}s")
        commands = p.add_subparsers(dest="secret_command", metavar="COMMAND")
        commands.required = True
        c = commands.add_parser("create", help=f"store a {kind} (a new version if it exists)")
        c.add_argument("name")
        c.add_argument("file", metavar="FILE|-", help="the value: a file, or - for stdin")
        c.add_argument("-l", "--label", action="append", default=[], metavar="K=V")
        ls = commands.add_parser("ls", aliases=["list"], help=f"list {kind}s")
        ls.add_argument("-q", "--quiet", action="store_true", help="names only")
        add_output(ls)
        i = commands.add_parser("inspect", help=f"show {kind}s in detail" + (
            " (never their values)" if kind == "secret" else ", with their values"))
        i.add_argument("names", nargs="+", metavar="NAME")
        add_output(i)
        r = commands.add_parser("rm", aliases=["remove"], help=f"remove {kind}s")
        r.add_argument("names", nargs="+", metavar="NAME")
        p.set_defaults(func=cmd_secret, kind=kind)


def cmd_secret(args: argparse.Namespace, _agent: Agent) -> int:
    command = {"list": "ls", "remove": "rm"}.get(args.secret_command, args.secret_command)
    handlers = {"create": _create, "ls": _ls, "inspect": _inspect, "rm": _rm}
    return handlers[command](args)


def _client(args: argparse.Namespace) -> Any:
    from orch.cli.clustercmd import client

    return client(args)


def _kind(args: argparse.Namespace) -> Any:
    from proto import cluster_pb2 as cpb

    return cpb.SECRET_KIND_CONFIG if args.kind == "config" else cpb.SECRET_KIND_SECRET


def _read_value(path: str, kind: str) -> bytes:
    """A value from a file or stdin ("-"), refused beyond MAX_BYTES."""
    try:
        if path == "-":
            data = sys.stdin.buffer.read(MAX_BYTES + 1)
        else:
            with open(path, "rb") as f:
                data = f.read(MAX_BYTES + 1)
    except OSError as err:
        raise CLIError(f"{path}: cannot read the {kind}: {err.strerror or err}")
    if len(data) > MAX_BYTES:
        raise CLIError(f"{'stdin' if path == '-' else path}: a {kind} holds at most {MAX_BYTES} bytes "
                       "(500 KiB)")
    return data


def _create(args: argparse.Namespace) -> int:
    from proto import cluster_pb2 as cpb

    data = _read_value(args.file, args.kind)
    made = _client(args).call("CreateSecret", cpb.CreateSecretRequest(
        kind=_kind(args), name=args.name, data=data, labels=key_values(args.label, "label")))
    print(made.id)
    return 0


def _ls(args: argparse.Namespace) -> int:
    from proto import cluster_pb2 as cpb

    found = list(_client(args).call("ListSecrets", cpb.SecretListRequest(kind=_kind(args))).secrets)
    if args.quiet:
        for s in found:
            print(s.name)
        return 0
    rows = [[s.id[:12], s.name, s.number, s.size, s.stack, ", ".join(s.services), ago(s.created_at),
             ago(s.updated_at)] for s in found]
    emit(args.output, [_document(s, args.kind) for s in found],
         ["ID", "NAME", "VERSION", "SIZE", "STACK", "SERVICES", "CREATED", "UPDATED"], rows)
    return 0


def _document(secret: Any, kind: str, with_value: bool = False) -> dict[str, Any]:
    """A secret as inspect shows it; with ``with_value``, a config's value as text (or base64)."""
    out: dict[str, Any] = {
        "id": secret.id, "name": secret.name, "kind": kind, "version": secret.number, "size": secret.size,
        "labels": dict(secret.labels), "stack": secret.stack, "created_at": secret.created_at,
        "updated_at": secret.updated_at, "services": list(secret.services),
        "versions": [{"id": v.id, "version": v.number, "size": v.size, "created_at": v.created_at,
                      "tasks": list(v.tasks)} for v in secret.versions],
    }
    if with_value and kind == "config":
        try:
            out["data"] = bytes(secret.data).decode("utf-8")
        except UnicodeDecodeError:
            out["data_base64"] = base64.b64encode(secret.data).decode()
    return out


def _inspect(args: argparse.Namespace) -> int:
    from proto import cluster_pb2 as cpb

    api = _client(args)
    docs = [_document(api.call("GetSecret", cpb.SecretRef(kind=_kind(args), name=name)), args.kind,
                      with_value=True) for name in args.names]
    emit("yaml" if args.output == "yaml" else "json", docs, [], [])
    return 0


def _rm(args: argparse.Namespace) -> int:
    from proto import cluster_pb2 as cpb

    api = _client(args)
    return remove_each(args.names, lambda name: api.call(
        "RemoveSecret", cpb.SecretRef(kind=_kind(args), name=name)))


# ---- orch deploy ---------------------------------------------------------------------

def loaded(text: str) -> dict[Any, Any] | None:
    """A manifest's YAML as a mapping, or None: anything malformed is left
    for the control plane's parser, which names file, line and field."""
    import yaml

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    return doc if isinstance(doc, dict) else None


def services_of(text: str) -> dict[Any, Any]:
    """A manifest's ``services:`` mapping ({} where there is none to read)."""
    services = (loaded(text) or {}).get("services")
    return services if isinstance(services, dict) else {}


def manifest_files(text: str, path: str) -> list[tuple[str, str, bytes]]:
    """(kind, key, value) of each top-level secret and config of manifest
    ``text`` whose value is this machine's: a ``file:`` (relative to the
    manifest, as Compose reads it) or an ``environment:`` variable. A
    manifest without such sections costs a regular expression; anything
    malformed is left for the control plane's parser to name."""
    doc = loaded(text) if _SECTIONS.search(text) else None
    if doc is None:
        return []
    base = os.path.dirname(os.path.abspath(path))
    out: list[tuple[str, str, bytes]] = []
    for kind in KINDS:
        section = doc.get(f"{kind}s")
        if not isinstance(section, dict):
            continue
        for key, definition in section.items():
            if not isinstance(definition, dict):
                continue
            source, where = definition.get("file"), f"{path}: {kind}s.{key}"
            if isinstance(source, str) and source:
                data = _read_value(os.path.join(base, os.path.expanduser(source)), kind)
                out.append((kind, str(key), data))
                continue
            variable = definition.get("environment")
            if isinstance(variable, str) and variable:
                if variable not in os.environ:
                    raise CLIError(f"{where}.environment: variable {variable} is not set in this shell")
                value = os.environb.get(os.fsencode(variable), b"")
                if len(value) > MAX_BYTES:
                    raise CLIError(f"{where}.environment: a {kind} holds at most {MAX_BYTES} bytes (500 KiB)")
                out.append((kind, str(key), value))
    return out


def manifest_env_files(text: str, path: str) -> list[tuple[str, bytes]]:
    """(path as written, variables) of each ``env_file`` of manifest
    ``text``'s services, read next to the manifest as Compose reads them
    (``model.envfile``: a bare NAME takes this shell's value) and sent as
    ``NAME=value`` strings, NUL-separated. A missing file is left out: the
    control plane says so where it is required. Anything malformed in the
    manifest is left for the control plane's parser to name."""
    from model.envfile import EnvFileError, parse_env_file

    services = services_of(text) if _ENV_FILE.search(text) else {}
    wanted: list[str] = []
    for service in services.values():
        refs = service.get("env_file") if isinstance(service, dict) else None
        for ref in [refs] if isinstance(refs, str) else refs if isinstance(refs, list) else []:
            name = ref.get("path") if isinstance(ref, dict) else ref
            if isinstance(name, str) and name and name not in wanted:
                wanted.append(name)
    base = os.path.dirname(os.path.abspath(path))
    out: list[tuple[str, bytes]] = []
    for name in wanted:
        file = os.path.join(base, os.path.expanduser(name))
        try:
            with open(file, "rb") as f:
                data = f.read(MAX_ENV_FILE + 1)
        except FileNotFoundError:
            continue
        except OSError as err:
            raise CLIError(f"{name}: cannot read the env file: {err.strerror or err}")
        if len(data) > MAX_ENV_FILE:
            raise CLIError(f"{name}: an env file holds at most {MAX_ENV_FILE} bytes")
        try:
            variables = parse_env_file(data.decode(), name, os.environ, compose=True)
        except UnicodeDecodeError:
            raise CLIError(f"{name}: not UTF-8 text") from None
        except EnvFileError as err:
            raise CLIError(str(err)) from None
        out.append((name, "\0".join(variables).encode()))
    return out
