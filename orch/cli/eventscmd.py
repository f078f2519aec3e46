"""``orch events``: what happens in the cluster, live, one line per event.

Docker's ``docker events`` for a cluster: services created, updated (a new
revision), removed, and their rollouts moving (started, paused, rolled back,
completed); tasks created, placed, moving through their states, their health
changing, told to stop; nodes joining, going down, coming back, drained.
Filters as Docker's: ``--filter type=service|task|node|network``,
``service=NAME``, ``node=NAME`` (repeatable, or comma-separated; values of one
key are alternatives, keys all apply). ``--since T`` first replays the changes
the control plane kept since T, each with its own time. ``-o json`` prints
one JSON object a line.

The control plane's Events stream sends objects, not events: this command
keeps the last version of each (the stream starts with the current state,
which is not printed) and says what changed between two versions
(:func:`describe`, pure). A change the stream folded into one write (a task
assigned and running at once) is one line naming the state it reached.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from orch.cli.client import CLIError

TYPES = ("service", "task", "node", "network")


def register(sub: Any) -> None:
    p = sub.add_parser("events", help="stream the cluster's events (services, tasks, nodes, networks)")
    p.add_argument("-f", "--filter", action="append", default=[], metavar="KEY=VALUE",
                   help="type=service|task|node|network, service=NAME, node=NAME (repeatable)")
    p.add_argument("--since", default="", metavar="T",
                   help="first the changes since T (a duration before now: 10m, Unix seconds or RFC "
                        "3339), as far back as the control plane keeps them (its last 4096)")
    p.add_argument("-o", "--output", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_events)


def parse_filters(pairs: list[str]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for pair in (p for given in pairs for p in given.split(",")):  # -f a=1,b=2 or -f a=1 -f b=2
        key, sep, value = pair.partition("=")
        if not sep or not value or key not in ("type", "service", "node"):
            raise CLIError(f"invalid filter {pair!r}: expected type=KIND, service=NAME or node=NAME")
        if key == "type" and value not in TYPES:
            raise CLIError(f"invalid filter {pair!r}: type is one of {', '.join(TYPES)}")
        out.setdefault(key, set()).add(value)
    return out


def _name(kind: str, obj: Any) -> str:
    """The object's name as `orch` shows it (a task's is ``Task.name``)."""
    return str(obj.spec.name if kind == "service" else obj.name)


def describe(kind: str, old: Any, new: Any) -> list[tuple[str, dict[str, Any]]]:
    """What changed from ``old`` to ``new`` (None: created; ``new`` None:
    removed), as (action, attributes) pairs."""
    if new is None:
        return [("remove", {})]
    if old is None:
        attrs: dict[str, Any] = {}
        if kind == "task":
            attrs = {"state": new.status.state.label()}
        return [("create", attrs)]
    if kind == "service":
        return _service(old, new)
    if kind == "task":
        return _task(old, new)
    if kind == "node":
        out = []
        if new.state != old.state:
            out.append((new.state, {"address": new.address}))
        if new.availability != old.availability:
            out.append((new.availability, {}))
        if new.labels != old.labels:
            out.append(("label", {"labels": dict(new.labels)}))
        return out
    return [("update", {})] if new != old else []


def _service(old: Any, new: Any) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    if new.revision != old.revision:
        out.append(("update", {"revision": new.revision, "note": new.note}))
    elif new.spec.replicas != old.spec.replicas:
        out.append(("scale", {"replicas": new.spec.replicas}))
    was, now = old.update_status, new.update_status
    if now is not None and (was is None or was.state != now.state or was.started_at != now.started_at):
        out.append((f"rollout {now.state.replace('_', ' ')}", {"message": now.message,
                                                                "updated": now.updated, "total": now.total}))
    return out


def _task(old: Any, new: Any) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    status, was = new.status, old.status
    if status.state != was.state:
        attrs: dict[str, Any] = {"node_id": new.node_id} if new.node_id else {}
        if status.error:
            attrs["error"] = status.error
        elif status.message and status.state.label() in ("pending", "failed", "rejected", "orphaned"):
            attrs["message"] = status.message
        out.append((status.state.label(), attrs))
    elif status.state.label() == "pending" and status.message != was.message:
        out.append(("pending", {"message": status.message}))
    if status.health != was.health and status.health:
        out.append((f"health {status.health}", {}))
    if new.desired_state != old.desired_state:
        out.append((f"desired {new.desired_state.label()}", {}))
    return out


def wanted(kind: str, obj: Any, filters: dict[str, set[str]], nodes: dict[str, str]) -> bool:
    if "type" in filters and kind not in filters["type"]:
        return False
    if "service" in filters:
        service = obj.spec.name if kind == "service" else getattr(obj, "service_name", None)
        if service not in filters["service"]:
            return False
    if "node" in filters:
        if kind == "node":
            return bool(obj.name in filters["node"])
        if kind != "task" or nodes.get(obj.node_id, obj.node_id) not in filters["node"]:
            return False
    return True


def cmd_events(args: argparse.Namespace, _agent: Any) -> int:
    from model.wire import event_from_pb
    from orch.cli.clustercmd import client
    from proto import cluster_pb2 as cpb

    filters = parse_filters(args.filter)
    since = 0.0
    if args.since:
        from model.logtime import parse_log_time, to_unix

        try:
            since = to_unix(parse_log_time(args.since, "--since"))
        except ValueError as err:
            raise CLIError(str(err)) from None
    api = client(args)
    request = cpb.EventsRequest(services=sorted(filters.get("service", ())), initial=True, since=since)
    seen: dict[tuple[str, str], Any] = {}
    nodes: dict[str, str] = {}  # node id -> name, for tasks
    synced = False
    try:
        for message in api.stream("Events", request):
            action, found = event_from_pb(message)
            obj: Any = found
            if action == "synced":
                synced = True
                continue
            if obj is None:
                continue
            kind = type(obj).__name__.lower()
            if kind == "node":
                nodes[obj.id] = obj.name
            key = (kind, obj.id)
            if message.base:  # the version a replayed change started from
                seen[key] = obj
                continue
            old = seen.get(key)
            new = None if action == "delete" else obj
            if new is None:
                seen.pop(key, None)
            else:
                seen[key] = new
            # Replayed changes print with their own time; the initial state does not print.
            if not (synced or message.time) or not wanted(kind, obj, filters, nodes):
                continue
            for what, attrs in describe(kind, old, new):
                if kind == "task" and "node_id" in attrs:
                    attrs["node"] = nodes.get(attrs.pop("node_id"), obj.node_id[:12])
                _print(args.output, kind, what, _name(kind, obj), obj.id, attrs, message.time)
    except KeyboardInterrupt:
        return 0
    raise CLIError("the control plane ended the event stream")


def _print(output: str, kind: str, action: str, name: str, ident: str, attrs: dict[str, Any],
           when: float = 0.0) -> None:
    now = when or time.time()
    if output == "json":
        print(json.dumps({"time": now, "type": kind, "action": action, "name": name, "id": ident,
                          "attributes": attrs}), flush=True)
        return
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(now)) + f".{int(now % 1 * 1000):03d}"
    extra = " ".join(f"{k}={v}" for k, v in attrs.items() if v not in ("", None))
    sys.stdout.write(f"{stamp} {kind} {action} {name}{' (' + extra + ')' if extra else ''}\n")
    sys.stdout.flush()
