"""A manifest's secrets and configs: the top-level ``secrets:`` and
``configs:``, and each service's grants, resolved as Compose and ``docker
stack deploy`` resolve them.

- A top-level secret (config) ``KEY`` is ``<stack>_KEY`` in the cluster, or
  its ``name:``. Its value comes from exactly one of ``file:`` (a path on
  the deploying machine, relative to the manifest), ``environment:`` (a
  variable of the deploying shell), ``content:`` (configs only: the text
  itself), or it is ``external: true`` (made already, with ``orch secret
  create``; it takes only ``name:``). ``labels:`` label it.
- A service's ``secrets:`` (``configs:``) lists keys of those (the short
  form), or mappings with ``source`` and optionally ``target``, ``uid``,
  ``gid`` and ``mode`` (the long form). A secret's target defaults to its
  key under ``/run/secrets``, a config's to ``/KEY``; ``uid``/``gid`` 0,
  ``mode`` 0444 (Docker's defaults).
- Only the secrets and configs some service uses are made, in order of
  first use. Two grants of one service may not share a target.

The values of ``file:`` and ``environment:`` never reach this parser: the
CLI reads them and sends them beside the manifest (``SecretDef.source``
says which to expect); the control plane seals them.

Errors are ``ManifestError`` at the line of the offending key or value.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from model import secrets as rules
from model.manifest._errors import ManifestError, field_path
from model.manifest._values import Invalid, labels, unknown_key_message
from model.manifest._yaml import Map, Node, Scalar, Seq, describe
from model.objects import DEFAULT_FILE_MODE, SecretRef

if TYPE_CHECKING:  # the key table imports the converters here, and the walker the table
    from model.manifest._walk import Field, Fields

__all__ = ["GRANT_KEYS", "Definition", "Grant", "SecretDef", "definitions", "grants", "resolve_secrets"]

GRANT_KEYS = ("source", "target", "uid", "gid", "mode")
DEFINITION_KEYS = {"secret": ("file", "environment", "external", "name", "labels"),
                   "config": ("file", "environment", "content", "external", "name", "labels")}
_UNSUPPORTED = {"driver": "secrets and configs are kept by the control plane, sealed in its store",
                "driver_opts": "secrets and configs are kept by the control plane, sealed in its store",
                "template_driver": "values are used as they are"}
_KEY_RE = re.compile(rules.SECRET_KEY_PATTERN)
_OCTAL = re.compile(r"^0[oO]?[0-7]+$")
_DIGITS = re.compile(r"^[0-9]+$")


@dataclass(frozen=True)
class Definition:
    """A top-level secret or config as written (before the stack names it)."""

    key: str
    source: str  # "file", "environment", "content" or "external"
    value: str  # the file's path, the variable's name or the content ("" when external)
    name: str  # its name: given, or "" (the stack's <stack>_KEY; KEY when external)
    labels: dict[str, str]
    line: int


@dataclass(frozen=True)
class Grant:
    """One entry of a service's ``secrets`` or ``configs``, as written."""

    key: str
    target: str  # as written; "" for the default
    uid: int
    gid: int
    mode: int
    line: int
    suffix: str  # the field path below the service's key


@dataclass(frozen=True)
class SecretDef:
    """A secret or config a stack uses: made (or, with a new value, given a
    new version) by the deploy before its services, unless external."""

    kind: str  # "secret" or "config"
    key: str  # the manifest's key
    name: str  # its name in the cluster
    source: str  # "file", "environment", "content" or "external"
    value: str = ""  # the path or variable (as written), or a config's content
    labels: dict[str, str] = field(default_factory=dict)
    line: int = 0
    field: str = ""  # its field path, e.g. secrets.db_password

    @property
    def external(self) -> bool:
        return self.source == "external"


# ---- converters (the key table's leaves) -----------------------------------------

def definitions(kind: str) -> Callable[[Node], dict[str, Definition]]:
    """The top-level ``secrets:`` or ``configs:``: KEY -> a mapping of one source."""
    keys = DEFINITION_KEYS[kind]

    def convert(node: Node) -> dict[str, Definition]:
        if not isinstance(node, Map):
            raise Invalid(f"expected a mapping of {kind} names, got {describe(node)}")
        out: dict[str, Definition] = {}
        for entry in node.items:
            suffix = field_path("_", entry.key)[1:]
            if not _KEY_RE.fullmatch(entry.key):
                raise Invalid(f"invalid {kind} name {entry.key!r}: use at most 64 letters, digits, '_', '.' "
                              "and '-', starting with a letter or digit", entry.key_line, suffix)
            out[entry.key] = _definition(kind, keys, entry.key, entry.value, entry.key_line, suffix)
        return out

    return convert


def _definition(kind: str, keys: tuple[str, ...], key: str, node: Node, line: int,
                suffix: str) -> Definition:
    if not isinstance(node, Map):
        raise Invalid(f"expected a mapping such as {{file: ./{key}.txt}}, got {describe(node)}", node.line,
                      suffix)
    given: dict[str, Any] = {}
    lines: dict[str, int] = {}
    for entry in node.items:
        where = field_path(suffix, entry.key)
        if entry.key in _UNSUPPORTED:
            raise Invalid(f"{entry.key!r} is not supported by orch: {_UNSUPPORTED[entry.key]}",
                          entry.key_line, where)
        if entry.key not in keys:
            hint = " (a secret's value comes from file or environment; content is for configs)" \
                if entry.key == "content" else ""
            raise Invalid(unknown_key_message(entry.key, keys) + hint, entry.key_line, where)
        given[entry.key] = _definition_value(kind, entry.key, entry.value, where)
        lines[entry.key] = entry.key_line
    sources: list[str] = [k for k in ("file", "environment", "content") if k in given]
    external = given.get("external", False)
    if external:
        sources.append("external")
        extra = [k for k in given if k not in ("external", "name")]
        if extra:
            raise Invalid(f"an external {kind} takes no {extra[0]!r}: it is made with `orch {kind} create`",
                          lines[extra[0]], field_path(suffix, extra[0]))
    if len(sources) != 1:
        what = "file, environment, content or external: true" if kind == "config" else \
            "file, environment or external: true"
        if not sources:
            raise Invalid(f"the {kind} needs a value: give one of {what}", line, suffix)
        raise Invalid(f"give one of {what}, not {' and '.join(sources)}", lines[sources[1]],
                      field_path(suffix, sources[1]))
    source = sources[0]
    return Definition(key, source, "" if source == "external" else given[source], given.get("name", ""),
                      given.get("labels", {}), line)


def _definition_value(kind: str, key: str, node: Node, where: str) -> Any:
    try:
        if key == "labels":
            return labels(node)
        if key == "external":
            if not isinstance(node, Scalar) or not isinstance(node.value, bool):
                raise Invalid(f"expected true or false, got {describe(node)}")
            return node.value
        if not isinstance(node, Scalar) or not isinstance(node.value, str) or (not node.value and
                                                                             key != "content"):
            raise Invalid(f"expected a non-empty string, got {describe(node)}")
        text = node.value
        if key == "name":
            rules.check_name(text, kind)
        elif key == "environment" and ("=" in text or "\0" in text):
            raise Invalid(f"invalid variable name {text!r}")
        elif key == "content":
            rules.check_size(len(text.encode()), kind)
        return text
    except Invalid as err:
        raise Invalid(err.message, err.line or node.line, where + err.suffix)
    except ValueError as err:
        raise Invalid(str(err), node.line, where)


def grants(kind: str) -> Callable[[Node], list[Grant]]:
    """A service's ``secrets:`` or ``configs:``: keys, or long-form mappings."""
    def convert(node: Node) -> list[Grant]:
        if not isinstance(node, Seq):
            raise Invalid(f"expected a list of {kind} names or mappings with a source, got {describe(node)}")
        return [_grant(kind, item, f"[{i}]") for i, item in enumerate(node.items)]

    return convert


def _grant(kind: str, node: Node, suffix: str) -> Grant:
    if isinstance(node, Scalar) and isinstance(node.value, str) and node.value:
        return Grant(node.value, "", 0, 0, DEFAULT_FILE_MODE, node.line, suffix)
    if not isinstance(node, Map):
        raise Invalid(f"expected a {kind} name or a mapping with a source, got {describe(node)}", node.line,
                      suffix)
    values: dict[str, Any] = {"target": "", "uid": 0, "gid": 0, "mode": DEFAULT_FILE_MODE}
    for entry in node.items:
        where = field_path(suffix, entry.key)
        if entry.key not in GRANT_KEYS:
            raise Invalid(unknown_key_message(entry.key, GRANT_KEYS), entry.key_line, where)
        try:
            values[entry.key] = _grant_value(kind, entry.key, entry.value)
        except ValueError as err:
            raise Invalid(str(err), entry.value.line, where)
    if "source" not in values:
        raise Invalid(f"missing required key 'source' (the {kind}'s name under the top-level "
                      f"'{kind}s:')", node.line, suffix)
    return Grant(values["source"], values["target"], values["uid"], values["gid"], values["mode"], node.line,
                 suffix)


def _grant_value(kind: str, key: str, node: Node) -> Any:
    if not isinstance(node, Scalar) or node.value is None or isinstance(node.value, bool | float):
        raise ValueError(f"expected {'a number' if key in ('uid', 'gid', 'mode') else 'a string'}, "
                         f"got {describe(node)}")
    if key in ("source", "target"):
        if not isinstance(node.value, str) or not node.value:
            raise ValueError(f"expected a non-empty string, got {describe(node)}")
        if key == "target":
            rules.resolve_target(kind, node.value)
        return node.value
    if key == "mode":
        # YAML 1.1 reads 0440 as octal already; "0440" and "0o440" are octal too (Compose's spelling).
        if isinstance(node.value, int):
            return rules.check_mode(node.value)
        if not _OCTAL.fullmatch(node.value):
            raise ValueError(f"invalid mode {node.value!r}: expected octal permission bits such as 0440")
        return rules.check_mode(int(node.value.replace("o", "").replace("O", ""), 8))
    if isinstance(node.value, int):  # uid, gid: Compose writes them as strings
        return rules.check_id(node.value, key)
    if not _DIGITS.fullmatch(node.value):
        raise ValueError(f"invalid {key} {node.value!r}: expected a number (names are not looked up)")
    return rules.check_id(int(node.value), key)


# ---- resolution --------------------------------------------------------------------

def resolve_secrets(top: Fields, services: dict[str, Field], file: str, stack: Callable[[], str],
                    ) -> tuple[dict[str, dict[str, list[SecretRef]]], list[SecretDef]]:
    """Each service's grants (by service name, then kind), and the secrets
    and configs the stack uses, in order of first use."""
    defs: dict[tuple[str, str], SecretDef] = {}
    out: dict[str, dict[str, list[SecretRef]]] = {}
    for name, service in services.items():
        fields: Fields = service.value
        out[name] = {}
        targets: dict[str, str] = {}  # target -> the field path that has it
        for kind in rules.KINDS:
            refs = fields.get(f"{kind}s")
            declared: dict[str, Definition] = top.value_in(f"{kind}s", default={})
            out[name][kind] = []
            listed: list[Grant] = refs.value if refs is not None else []
            for grant in listed:
                where = (refs.path if refs is not None else "") + grant.suffix
                found = declared.get(grant.key)
                if found is None:
                    raise ManifestError(file, grant.line, where,
                                        f"undefined {kind} {grant.key!r}: define it under the top-level "
                                        f"'{kind}s:'")
                made = defs.get((kind, grant.key))
                if made is None:
                    made = defs[(kind, grant.key)] = _define(kind, found, file, stack)
                try:
                    target = rules.resolve_target(kind, grant.target or grant.key)
                except ValueError as err:
                    raise ManifestError(file, grant.line, where, str(err))
                if target in targets:
                    raise ManifestError(file, grant.line, where,
                                        f"target {target} is also {targets[target]}'s: give each file "
                                        "its own target")
                targets[target] = where
                out[name][kind].append(SecretRef(source=made.name, target=target, uid=grant.uid,
                                                 gid=grant.gid, mode=grant.mode))
    return out, list(defs.values())


def _define(kind: str, found: Definition, file: str, stack: Callable[[], str]) -> SecretDef:
    where = field_path(f"{kind}s", found.key)
    if found.source == "external":
        name = found.name or found.key
    else:
        name = found.name or rules.stack_secret(stack(), found.key)
    try:
        rules.check_name(name, kind)
    except ValueError as err:
        raise ManifestError(file, found.line, where, f"{err}; give it a shorter 'name:'")
    return SecretDef(kind, found.key, name, found.source, found.value, dict(found.labels), found.line, where)
