"""``orch network`` in cluster mode: the control plane's overlay networks.

- ``create [--subnet CIDR] [--label K=V] NAME``: a network with the next free
  /24 of the cluster's pool, or the subnet asked for; prints its id.
- ``ls``: name, subnet, VNI, the stack that made it.
- ``inspect NAME...``: each network with the services on it (VIP, aliases)
  and its tasks that have not ended (node, address); JSON (or ``-o yaml``).
- ``rm NAME...``: refused for a network a service names or a task still uses.
"""

from __future__ import annotations

import argparse
from typing import Any

from orch.cli.client import CLIError, key_values
from orch.cli.common import ago, remove_each
from orch.cli.output import emit

__all__ = ["cmd_network", "network_document"]


def cmd_network(args: argparse.Namespace) -> int:
    command = {"list": "ls", "remove": "rm"}.get(args.network_command, args.network_command)
    handlers = {"create": _create, "ls": _ls, "inspect": _inspect, "rm": _rm}
    if command not in handlers:
        raise CLIError(f"unknown network command {args.network_command!r}: create, ls, inspect or rm")
    return handlers[command](args)


def _client(args: argparse.Namespace) -> Any:
    from orch.cli.clustercmd import client

    return client(args)


def _create(args: argparse.Namespace) -> int:
    from proto import cluster_pb2 as cpb

    labels = key_values(getattr(args, "label", None) or [], "label")
    net = _client(args).call("CreateNetwork", cpb.CreateNetworkRequest(
        name=args.name, subnet=getattr(args, "subnet", "") or "", labels=labels))
    print(net.id)
    return 0


def _networks(api: Any) -> list[Any]:
    from model.wire import network_from_pb
    from proto import cluster_pb2 as cpb

    return [network_from_pb(n) for n in api.call("ListNetworks", cpb.ListRequest()).networks]


def _ls(args: argparse.Namespace) -> int:
    networks = _networks(_client(args))
    if getattr(args, "quiet", False):
        for n in networks:
            print(n.id[:12])
        return 0
    rows = [[n.id[:12], n.name, "overlay", n.subnet, n.vni, n.stack, ago(n.created_at)] for n in networks]
    emit(getattr(args, "output", "table"), [_plain(n) for n in networks],
         ["NETWORK ID", "NAME", "DRIVER", "SUBNET", "VNI", "STACK", "CREATED"], rows)
    return 0


def _plain(obj: Any) -> dict[str, Any]:
    from model.objects import to_dict

    return {**to_dict(obj), "version": obj.version}


def network_document(network: Any, services: list[Any], tasks: list[Any],
                     nodes: dict[str, str]) -> dict[str, Any]:
    """A network as ``inspect`` shows it: its fields, the services naming it
    (VIP, aliases) and its tasks that have not ended (node, address)."""
    on: list[dict[str, Any]] = []
    for s in services:
        for attachment in s.spec.networks:
            if attachment.name == network.name:
                vip = next((v.address for v in s.vips if v.network_id == network.id), "")
                on.append({"id": s.id, "name": s.spec.name, "endpoint_mode": s.spec.endpoint_mode,
                           "vip": vip, "aliases": list(attachment.aliases)})
    members = []
    for t in sorted(tasks, key=lambda t: (t.service_name, t.slot, t.id)):
        if t.status.state.terminal:
            continue
        for n in t.networks:
            if n.network_id == network.id:
                members.append({"id": t.id, "name": t.name, "service": t.service_name, "slot": t.slot,
                                "node": nodes.get(t.node_id, t.node_id), "state": t.status.state.label(),
                                "address": n.address, "aliases": list(n.aliases)})
    return {**_plain(network), "services": on, "tasks": members}


def _inspect(args: argparse.Namespace) -> int:
    from model.wire import network_from_pb, node_from_pb, service_from_pb, task_from_pb
    from proto import cluster_pb2 as cpb

    api = _client(args)
    found = [network_from_pb(api.call("GetNetwork", cpb.NetworkRef(name=ref))) for ref in args.networks]
    services = [service_from_pb(s) for s in api.call("ListServices", cpb.ListRequest()).services]
    tasks = [task_from_pb(t) for t in api.call("ListTasks", cpb.ListTasksRequest()).tasks]
    nodes = {n.id: n.name for n in map(node_from_pb, api.call("ListNodes", cpb.ListRequest()).nodes)}
    docs = [network_document(n, services, tasks, nodes) for n in found]
    emit("yaml" if getattr(args, "output", "table") == "yaml" else "json", docs, [], [])
    return 0


def _rm(args: argparse.Namespace) -> int:
    from proto import cluster_pb2 as cpb

    api = _client(args)
    return remove_each(args.networks, lambda ref: api.call("RemoveNetwork", cpb.NetworkRef(name=ref)))
