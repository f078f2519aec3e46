"""Every etcd key orch uses is built and parsed here, and nowhere else.

Layout (all under ``/orch/``)::

    /orch/services/<service id>   a Service, JSON
    /orch/tasks/<task id>         a Task, JSON
    /orch/nodes/<node id>         a Node, JSON
    /orch/networks/<network id>   a Network, JSON
    /orch/secrets/<version id>    a Secret (or config) version, JSON, its value sealed
                                  (envelope-encrypted: ``controlplane.envelope``)
    /orch/leader/<election>       the leader's candidate id, bound to its lease
    /orch/meta/<name>             cluster metadata (join token, cluster id, ...), and the
                                  guards and claims of allocations (``NETWORKS_GUARD``,
                                  ``node_index_claim``)

Tasks of one service or one node are not separate index keys: the informer
keeps those indexes in memory, so a write touches exactly one key per object.

Invariants:
- ids are non-empty and contain no ``/`` (so ``parse`` is the inverse of the builders);
- object kinds sort under one prefix, so one watch on ``ROOT`` sees every change.
"""

from __future__ import annotations

import enum

__all__ = [
    "NETWORKS_GUARD",
    "ROOT",
    "BadKey",
    "Kind",
    "leader_key",
    "meta_key",
    "network_key",
    "node_index_claim",
    "node_key",
    "object_key",
    "parse",
    "prefix",
    "range_end",
    "secret_key",
    "service_key",
    "task_key",
]

ROOT = "/orch/"


class Kind(enum.StrEnum):
    """Object kinds stored as JSON; the value is the key segment."""

    SERVICE = "services"
    TASK = "tasks"
    NODE = "nodes"
    NETWORK = "networks"
    SECRET = "secrets"  # secrets and configs, one object per version


# Non-object segments: parse() reports them so watchers can skip them.
LEADER = "leader"
META = "meta"

# The meta key every network create and remove rewrites, comparing the
# revision it was read at: network writes are serialised across control-plane
# replicas, so two never take one subnet, VNI or name (see Store.write_guarded).
NETWORKS_GUARD = "networks"


class BadKey(ValueError):
    """A key or id that does not fit the layout; the message names it."""


def _check_id(ident: str) -> str:
    if not ident or "/" in ident:
        raise BadKey(f"invalid id {ident!r}: must be non-empty and contain no '/'")
    return ident


def prefix(kind: Kind | str) -> str:
    """Prefix of every key of ``kind`` (ends with ``/``)."""
    return f"{ROOT}{Kind(kind).value if isinstance(kind, Kind) else kind}/"


def object_key(kind: Kind, ident: str) -> str:
    return f"{prefix(kind)}{_check_id(ident)}"


def service_key(ident: str) -> str:
    return object_key(Kind.SERVICE, ident)


def task_key(ident: str) -> str:
    return object_key(Kind.TASK, ident)


def node_key(ident: str) -> str:
    return object_key(Kind.NODE, ident)


def network_key(ident: str) -> str:
    return object_key(Kind.NETWORK, ident)


def secret_key(ident: str) -> str:
    return object_key(Kind.SECRET, ident)


def node_index_claim(index: int) -> str:
    """The meta name that holds node ``index`` (created once, with the node that takes it)."""
    return f"node-index-{index}"


def leader_key(election: str) -> str:
    return f"{ROOT}{LEADER}/{_check_id(election)}"


def meta_key(name: str) -> str:
    return f"{ROOT}{META}/{_check_id(name)}"


def range_end(key_prefix: str) -> str:
    """The end of etcd's range for ``key_prefix`` (exclusive): last byte plus one."""
    raw = key_prefix.encode()
    return (raw[:-1] + bytes([raw[-1] + 1])).decode()


def parse(key: str | bytes) -> tuple[str, str]:
    """``(segment, id)`` of a key; segment is a ``Kind`` for object keys.

    Raises ``BadKey`` for keys outside the layout.
    """
    text = key.decode() if isinstance(key, bytes) else key
    if not text.startswith(ROOT):
        raise BadKey(f"key {text!r} is not under {ROOT}")
    segment, sep, ident = text[len(ROOT):].partition("/")
    if not sep or not ident or "/" in ident:
        raise BadKey(f"key {text!r} is not <root><kind>/<id>")
    if segment in Kind._value2member_map_:
        return Kind(segment), ident
    if segment in (LEADER, META):
        return segment, ident
    raise BadKey(f"key {text!r} has unknown kind {segment!r}")
