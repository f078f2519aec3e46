"""A manifest's networks: the top-level ``networks`` and each service's, resolved to
cluster network names, as Compose resolves them for a project.

- The stack (Compose's project) is named by the top-level ``name:``, else by
  the name the caller gives (the CLI sends its manifest's directory's name),
  else by the manifest's directory; a name taken from a directory is
  normalised as Compose does. It is only needed when the stack makes a
  network.
- A network ``KEY`` of the manifest is ``<stack>_KEY`` in the cluster, or its
  ``name:``; ``external: true`` names one that exists already (by ``name:``,
  else ``KEY`` itself) and takes no other key.
- A service without ``networks`` joins ``default`` (``<stack>_default``, which
  ``networks: {default: ...}`` may configure); ``network_mode: bridge``: none.
- Only networks some service uses are in the result, in the order of first
  use (Compose leaves unused ones out too).

Errors are ``ManifestError`` at the line of the offending key or value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from model import networks as netrules
from model.manifest._errors import ManifestError, field_path
from model.manifest._values import NetworkRef
from model.manifest._walk import Field, Fields
from model.objects import NetworkAttachment

__all__ = ["NetworkDef", "StackName", "resolve_networks"]

DEFAULT = "default"


@dataclass(frozen=True)
class NetworkDef:
    """One network a stack uses: made by the deploy (unless external) before its services."""

    key: str  # the manifest's key ("default": the stack's default network)
    name: str  # its name in the cluster
    external: bool = False  # it must exist already; the deploy neither makes nor changes it
    subnet: str = ""  # "": the next free /24 of the cluster's pool
    labels: dict[str, str] = field(default_factory=dict)
    line: int = 0  # where it is defined, or first used (the implicit default network)
    field: str = ""  # its field path, e.g. networks.back


class StackName:
    """The stack's name, worked out when first needed (a manifest whose
    services use only external networks, or none, needs none)."""

    def __init__(self, top: Fields, given: str, path: str) -> None:
        self._top, self._given, self._path = top, given, path
        self._name: str | None = None

    def __call__(self) -> str:
        if self._name is None:
            self._name = self._resolve()
        return self._name

    def peek(self) -> str:
        """The name, or "" when there is none to give (only an error would say why)."""
        try:
            return self()
        except ManifestError:
            return ""

    def _resolve(self) -> str:
        explicit = self._top.get("name")
        if explicit is not None:
            return str(explicit.value)
        source = self._given or Path(self._path).resolve().parent.name
        name = netrules.stack_name_from(source)
        if not name:
            raise ManifestError(self._path, 1, "name",
                                f"cannot name the stack after {source!r} (nothing of it is a letter or "
                                "digit): give the manifest a top-level 'name:'")
        return name


def resolve_networks(top: Fields, services: dict[str, Field], file: str,
                     stack: Callable[[], str]) -> tuple[dict[str, list[NetworkAttachment]], list[NetworkDef]]:
    """Each service's networks (by service name), and the networks the stack uses."""
    declared: dict[str, Field] = top.value_in("networks", default={})
    defs: dict[str, NetworkDef] = {}  # by key, in order of first use
    attached: dict[str, list[NetworkAttachment]] = {}
    for name, service in services.items():
        fields: Fields = service.value
        mode, refs = fields.get("network_mode"), fields.get("networks")
        if mode is not None and refs is not None:
            raise ManifestError(file, mode.key_line, mode.path,
                                f"network_mode cannot be set with networks (line {refs.key_line}): "
                                "network_mode: bridge means no cluster network")
        if mode is not None:
            attached[name] = []
            continue
        found: list[NetworkRef] = refs.value if refs is not None else [
            NetworkRef(DEFAULT, (), service.key_line, "")]
        out = []
        for ref in found:
            where = refs.path + ref.suffix if refs is not None else field_path(service.path, "networks")
            if ref.key not in declared and ref.key != DEFAULT:
                raise ManifestError(file, ref.line, where,
                                    f"undefined network {ref.key!r}: define it under the top-level "
                                    "'networks:'")
            if ref.key not in defs:
                defs[ref.key] = _define(ref.key, declared.get(ref.key), ref.line, file, stack)
            out.append(NetworkAttachment(name=defs[ref.key].name, aliases=list(ref.aliases)))
        attached[name] = out
    _check_names(list(defs.values()), file)
    return attached, list(defs.values())


def _define(key: str, declared: Field | None, used_at: int, file: str,
            stack: Callable[[], str]) -> NetworkDef:
    """The network of ``key``: as declared, or (``default`` left out) with the defaults."""
    if declared is None:
        return NetworkDef(key, netrules.stack_network(stack(), key), line=used_at,
                          field=field_path("networks", key))
    fields: Fields = declared.value
    external = fields.get("external")
    if external is not None and external.value:
        for other in fields:
            if other not in ("external", "name"):
                extra = fields[other]
                raise ManifestError(file, extra.key_line, extra.path,
                                    f"an external network takes no {other!r}: it is configured where it "
                                    "was made (orch network create)")
        return NetworkDef(key, fields.value_in("name", default=key), external=True, line=declared.key_line,
                          field=declared.path)
    name = fields.value_in("name", default=None) or netrules.stack_network(stack(), key)
    try:
        netrules.check_network_name(name)
    except ValueError as err:
        raise ManifestError(file, declared.key_line, declared.path, str(err))
    return NetworkDef(key, name, subnet=fields.value_in("ipam", "config", default=""),
                      labels=fields.value_in("labels", default={}), line=declared.key_line,
                      field=declared.path)


def _check_names(defs: list[NetworkDef], file: str) -> None:
    """Two keys may not name one cluster network."""
    seen: dict[str, NetworkDef] = {}
    for d in defs:
        first = seen.get(d.name)
        if first is not None:
            raise ManifestError(file, d.line, d.field,
                                f"names network {d.name!r}, as {first.field} does (line {first.line}); "
                                "give each its own name")
        seen[d.name] = d
