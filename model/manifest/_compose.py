"""Compose's stack-wide service rules: ``extends``, ``profiles``, ``depends_on``
and named volumes.

- ``extends`` (``merge_extends``, on the positioned nodes before the walk):
  a service takes the keys of another service of the same file that it does
  not set itself; mappings merge key by key (its own win), and the lists of
  ``_APPENDED`` keys are the base's followed by its own, as in Compose. Each
  value keeps its own line, so an error in an inherited value points at the
  base. Chains are followed; a cycle or an unknown service is an error.
- ``profiles`` (``active_services``): a service that names profiles is
  deployed only when one of them is active (``--profile``); one without is
  always. Every service is checked, deployed or not.
- ``depends_on`` (``resolve_dependencies``): names deployed services of the
  manifest, without cycles; an optional one (``required: false``) whose
  service is not deployed is dropped, as Compose does.
- Volumes (``resolve_volumes``): a named volume must be declared under the
  top-level ``volumes:``; it is the node's own, named ``<stack>_<key>`` as
  Compose names it, or by its ``name:``; ``external: true`` names one that
  exists already (its ``name:``, else the key).

Errors are ``ManifestError`` at the line of the offending key or value.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from model.manifest._container import DependencyRef, VolumeRef
from model.manifest._errors import ManifestError, field_path
from model.manifest._walk import Field, Fields
from model.manifest._yaml import Map, MapItem, Node, Seq
from model.objects import Dependency, Mount

__all__ = ["active_services", "merge_extends", "resolve_dependencies", "resolve_volumes"]

# Keys whose lists add up under extends (Compose's merge rules for sequences).
_APPENDED = frozenset({"ports", "expose", "dns", "cap_add", "cap_drop", "devices", "tmpfs", "volumes",
                       "extra_hosts", "secrets", "configs", "profiles"})


# ---- extends -------------------------------------------------------------------

def merge_extends(root: Node, file: str) -> Node:
    """``root`` with each service's ``extends`` resolved (the key removed)."""
    if not isinstance(root, Map):
        return root
    services = next((item for item in root.items if item.key == "services"), None)
    if services is None or not isinstance(services.value, Map):
        return root
    nodes = {item.key: item for item in services.value.items}
    if not any(isinstance(i.value, Map) and any(e.key == "extends" for e in i.value.items)
               for i in nodes.values()):
        return root
    done: dict[str, Node] = {}
    for name in nodes:
        _resolved(name, nodes, done, [], file)
    merged = Map(services.value.line, tuple(MapItem(k, i.key_line, done[k]) for k, i in nodes.items()))
    items = tuple(MapItem(i.key, i.key_line, merged) if i is services else i for i in root.items)
    return Map(root.line, items)


def _resolved(name: str, nodes: dict[str, MapItem], done: dict[str, Node], chain: list[str],
              file: str) -> Node:
    if name in done:
        return done[name]
    node = nodes[name].value
    entry = next((i for i in node.items if i.key == "extends"), None) if isinstance(node, Map) else None
    if entry is None or not isinstance(node, Map):
        done[name] = node
        return node
    path = field_path(field_path("services", name), "extends")
    base = _base_name(entry, path, file)
    if base == name or base in chain:
        raise ManifestError(file, entry.key_line, path,
                            f"extends makes a cycle: {' -> '.join([*chain, name, base])}")
    if base not in nodes:
        raise ManifestError(file, entry.key_line, path, f"extends unknown service {base!r}: extends takes a "
                                                        "service of this file")
    parent = _resolved(base, nodes, done, [*chain, name], file)
    own = Map(node.line, tuple(i for i in node.items if i is not entry))
    done[name] = _merge(parent, own) if isinstance(parent, Map) else own
    return done[name]


def _base_name(entry: MapItem, path: str, file: str) -> str:
    """The base's name; the shape is checked here, the walk never sees ``extends``."""
    from model.manifest._container import extends
    from model.manifest._values import Invalid

    try:
        return extends(entry.value)
    except Invalid as err:
        raise ManifestError(file, err.line or entry.value.line, path + err.suffix, err.message)


def _merge(base: Map, own: Map, top: bool = True) -> Map:
    mine = {i.key: i for i in own.items}
    items = []
    for item in base.items:
        ours = mine.pop(item.key, None)
        if ours is None:
            items.append(item)
        elif isinstance(item.value, Map) and isinstance(ours.value, Map):
            items.append(MapItem(item.key, ours.key_line, _merge(item.value, ours.value, top=False)))
        elif top and item.key in _APPENDED and isinstance(item.value, Seq) and isinstance(ours.value, Seq):
            both = Seq(ours.value.line, item.value.items + ours.value.items)
            items.append(MapItem(item.key, ours.key_line, both))
        else:
            items.append(ours)
    return Map(own.line, tuple(items) + tuple(mine.values()))


# ---- profiles --------------------------------------------------------------------

def active_services(services: dict[str, Field], profiles: frozenset[str], file: str) -> dict[str, Field]:
    """The services to deploy: those without profiles, and those with an active one."""
    out = {name: field for name, field in services.items()
           if not field.value.value_in("profiles", default=[])
           or profiles & set(field.value.value_in("profiles"))}
    if not out:
        named = sorted({p for f in services.values() for p in f.value.value_in("profiles", default=[])})
        raise ManifestError(file, 1, "services", "no service to deploy: every service has profiles and none "
                                                 f"is active; give --profile ({', '.join(named)})")
    return out


# ---- depends_on --------------------------------------------------------------------

def resolve_dependencies(active: dict[str, Field], every: dict[str, Field],
                         file: str) -> dict[str, list[Dependency]]:
    """Each deployed service's dependencies; unknown, undeployed and circular ones are errors."""
    out: dict[str, list[Dependency]] = {}
    for name, service in active.items():
        found = service.value.get("depends_on")
        refs: list[DependencyRef] = found.value if found is not None else []
        deps = []
        for ref in refs:
            where = found.path + ref.suffix if found is not None else ""
            if ref.service == name:
                raise ManifestError(file, ref.line, where, "a service cannot depend on itself")
            if ref.service not in every:
                if not ref.required:
                    continue
                raise ManifestError(file, ref.line, where, f"depends on unknown service {ref.service!r}")
            if ref.service not in active:
                if not ref.required:
                    continue
                profiles = every[ref.service].value.value_in("profiles", default=[])
                raise ManifestError(file, ref.line, where,
                                    f"depends on {ref.service!r}, which is not deployed: activate one of "
                                    f"its profiles ({', '.join(profiles)}) with --profile, or set "
                                    "required: false")
            deps.append(Dependency(ref.service, ref.condition))  # type: ignore[arg-type]
        out[name] = deps
    _check_cycles(active, out, file)
    return out


def _check_cycles(active: dict[str, Field], deps: dict[str, list[Dependency]], file: str) -> None:
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for dep in deps.get(name, []):
            if state.get(dep.service) == 1:
                cycle = [*path[path.index(dep.service):], dep.service]
                where = active[name].value["depends_on"]
                raise ManifestError(file, where.key_line, where.path,
                                    f"depends_on makes a cycle: {' -> '.join(cycle)}")
            if state.get(dep.service) is None:
                visit(dep.service, [*path, dep.service])
        state[name] = 2

    for name in active:
        if name not in state:
            visit(name, [name])


# ---- volumes ----------------------------------------------------------------------

def resolve_volumes(top: Fields, services: dict[str, Field], file: str,
                    stack: Callable[[], str]) -> dict[str, list[Mount]]:
    """Each service's mounts (``volumes``, then ``tmpfs``), named volumes by their names on the node."""
    declared: dict[str, Field] = top.value_in("volumes", default={})
    out: dict[str, list[Mount]] = {}
    for name, service in services.items():
        fields: Fields = service.value
        found = fields.get("volumes")
        refs: list[VolumeRef] = found.value if found is not None else []
        mounts = []
        for ref in refs:
            mount = ref.mount
            if mount.type == "volume" and mount.source:
                assert found is not None
                definition = declared.get(mount.source)
                shareable = definition is not None and bool(definition.value.value_in(
                    "x-orch", "shareable", default=False))
                mount = dataclasses.replace(mount, source=_volume_name(
                    mount.source, declared, ref.line, found.path + ref.suffix, file, stack),
                    shareable=shareable)
            mounts.append(mount)
        targets = {m.target for m in mounts}
        tmpfs = fields.get("tmpfs")
        for i, mount in enumerate(tmpfs.value if tmpfs is not None else []):
            if mount.target in targets:
                assert tmpfs is not None
                raise ManifestError(file, tmpfs.line, f"{tmpfs.path}[{i}]" if isinstance(tmpfs.node, Seq)
                                    else tmpfs.path, f"{mount.target} is mounted by volumes already")
            targets.add(mount.target)
            mounts.append(mount)
        out[name] = mounts
    return out


def _volume_name(key: str, declared: dict[str, Field], line: int, where: str, file: str,
                 stack: Callable[[], str]) -> str:
    definition = declared.get(key)
    if definition is None:
        raise ManifestError(file, line, where, f"undefined volume {key!r}: define it under the top-level "
                                               "'volumes:' (a path on the node starts with '/')")
    fields: Fields = definition.value
    if fields.value_in("external", default=False):
        for other in fields:
            if other not in ("external", "name", "x-orch"):
                extra = fields[other]
                raise ManifestError(file, extra.key_line, extra.path,
                                    f"an external volume takes no {other!r}: it exists on the nodes already")
        return str(fields.value_in("name", default=key))
    return str(fields.value_in("name", default=None) or f"{stack()}_{key}")

