"""JSON encoding of the model's objects; the only place that maps type <-> kind.

Invariants: ``decode(kind_of(o), key, encode(o), v)`` equals ``o`` with ``version=v``;
``version`` is never stored (it is the key's etcd ``mod_revision``); ``encode`` gives
the JSON of ``model.to_dict`` (it walks dataclass fields itself because
``dataclasses.asdict`` deep-copies every leaf, which made it most of a batch's cost).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any, TypeAlias

from model import objects as model
from model.objects import Network, Node, Secret, Service, Task

from .errors import StoreCorrupt
from .keys import Kind

__all__ = ["StoreObject", "decode", "encode", "kind_of"]

StoreObject: TypeAlias = Service | Task | Node | Network | Secret

_DECODERS: dict[Kind, Callable[[dict[str, Any], int], StoreObject]] = {
    Kind.SERVICE: model.service_from_dict,
    Kind.TASK: model.task_from_dict,
    Kind.NODE: model.node_from_dict,
    Kind.NETWORK: model.network_from_dict,
    Kind.SECRET: model.secret_from_dict,
}


def kind_of(obj: StoreObject) -> Kind:
    if isinstance(obj, Service):
        return Kind.SERVICE
    if isinstance(obj, Task):
        return Kind.TASK
    if isinstance(obj, Node):
        return Kind.NODE
    if isinstance(obj, Network):
        return Kind.NETWORK
    if isinstance(obj, Secret):
        return Kind.SECRET
    raise TypeError(f"not a store object: {type(obj).__name__}")


def encode(obj: StoreObject, specs: dict[int, str] | None = None) -> bytes:
    """JSON of ``obj``. ``specs`` memoises task specs by identity for one batch, where the
    tasks of a service share its spec object: the spec is then encoded once, not per task.
    Only pass a memo whose objects stay alive while it is used (ids are reused)."""
    if not isinstance(obj, Task):
        data = _plain(obj)
        data.pop("version", None)
        return json.dumps(data, separators=(",", ":")).encode()
    if specs is None:
        specs = {}
    spec = specs.get(id(obj.spec))
    if spec is None:
        spec = specs[id(obj.spec)] = json.dumps(_plain(obj.spec), separators=(",", ":"))
    body = json.dumps({name: _plain(getattr(obj, name)) for name in _field_names(Task)
                       if name not in ("spec", "version")}, separators=(",", ":"))
    return f'{body[:-1]},"spec":{spec}}}'.encode()


_FIELDS: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


_LEAVES = frozenset({str, int, float, bool, type(None)})


def _plain(value: Any) -> Any:
    """What ``dataclasses.asdict`` makes of ``value``, without copying leaves."""
    cls = type(value)
    if cls in _LEAVES:
        return value
    if hasattr(cls, "__dataclass_fields__"):
        return {name: _plain(getattr(value, name)) for name in _field_names(cls)}
    if cls is list or cls is tuple:
        return [_plain(v) for v in value]
    if cls is dict:
        return {k: _plain(v) for k, v in value.items()}
    return value


def decode(kind: Kind, key: str, raw: bytes, version: int) -> StoreObject:
    """Decode one stored value; ``key`` is only used to name a corrupt value."""
    try:
        if kind is Kind.TASK:
            task = _decode_task(raw, version)
            if task is not None:
                return task
        return _DECODERS[kind](json.loads(raw), version)
    except (ValueError, TypeError, KeyError) as exc:
        raise StoreCorrupt(key, f"{type(exc).__name__}: {exc}") from exc


# Task specs decoded, by their JSON: the tasks of a service (of one of its
# revisions) share one ServiceSpec object, as they do when the leader makes
# them. A 1,000-replica service is one spec in memory, not 1,000; its spec is
# parsed once; and comparing a task's spec with its service's
# (``controllers.same_spec``, for every task on every pass) is mostly an
# identity check. Emptied when it holds SPEC_CACHE specs.
SPEC_CACHE = 4096
_specs: dict[bytes, model.ServiceSpec] = {}
_SPEC_AT = b',"spec":{'


def _decode_task(raw: bytes, version: int) -> Task | None:
    """A task as ``encode`` writes it (its spec last), with its spec
    shared; None for any other shape (then decoded as a whole)."""
    cut = raw.rfind(_SPEC_AT)
    if cut < 0 or not raw.endswith(b"}}"):
        return None
    text = raw[cut + len(_SPEC_AT) - 1:-1]
    spec = _specs.get(text)
    if spec is None:
        try:
            fields = json.loads(text)
        except ValueError:  # not the last field after all
            return None
        if not isinstance(fields, dict):
            return None
        if len(_specs) >= SPEC_CACHE:
            _specs.clear()
        spec = _specs[text] = model.spec_from_dict(fields)
    data = json.loads(raw[:cut] + b"}")
    if not isinstance(data, dict) or "spec" in data:
        return None
    data["spec"] = spec
    return model.task_from_dict(data, version)
