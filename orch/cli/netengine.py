"""``orch network create|ls|inspect|rm`` against the local engine: its
user-defined bridge networks, as ``docker network``.

:func:`cmd_network` is the engine's branch of ``orch network``
(``netcmd`` registers the command and picks the cluster's branch in
cluster mode); it reads these arguments, which :func:`add_arguments`
declares for both::

    args.network_command   "create" | "ls" | "inspect" | "rm"
    args.name              create: the new network's name
    args.subnet            create: CIDR, or "" for the first free /24 of the node's pool
    args.label             create: ["K=V", ...]
    args.networks          inspect, rm: names, ids or unique id prefixes
    args.output            ls, inspect: "table" | "json" | "yaml" (inspect: JSON unless yaml)
    args.quiet             ls: ids only

"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from orch.cli.client import Agent, CLIError
from orch.cli.common import add_output, ago
from orch.cli.output import emit, message_plain

__all__ = ["add_arguments", "cmd_network"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``orch network``'s sub-commands and options, on parser ``p``."""
    sub = p.add_subparsers(dest="network_command", metavar="COMMAND")
    sub.required = True
    c = sub.add_parser("create", help="create a network")
    c.add_argument("name")
    c.add_argument("--subnet", default="", metavar="CIDR",
                   help="its subnet (default: the next free /24 of the cluster's pool, or on a "
                   "single engine of 10.90.0.0/16)")
    c.add_argument("-l", "--label", action="append", default=[], metavar="K=V")
    ls = sub.add_parser("ls", aliases=["list"], help="list networks")
    ls.add_argument("-q", "--quiet", action="store_true", help="ids only")
    add_output(ls)
    i = sub.add_parser("inspect", help="show networks in detail, with their containers")
    i.add_argument("networks", nargs="+", metavar="NETWORK")
    add_output(i)
    r = sub.add_parser("rm", aliases=["remove"], help="remove networks (none may have containers)")
    r.add_argument("networks", nargs="+", metavar="NETWORK")


def cmd_network(args: argparse.Namespace, agent: Agent) -> int:
    command = {"list": "ls", "remove": "rm"}.get(args.network_command, args.network_command)
    handler = {"create": _create, "ls": _ls, "inspect": _inspect, "rm": _rm}.get(command)
    if handler is None:
        raise CLIError(f"unknown network command {args.network_command!r}: create, ls, inspect or rm")
    return handler(args, agent)


def _create(args: argparse.Namespace, agent: Agent) -> int:
    from proto import agent_pb2 as pb

    labels = {}
    for item in getattr(args, "label", None) or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CLIError(f"invalid label {item!r}: expected KEY=VALUE")
        labels[key] = value
    net = agent.call("CreateNetwork", pb.CreateNetworkRequest(
        name=args.name, subnet=getattr(args, "subnet", "") or "", labels=labels))
    print(net.id)
    return 0


def _ls(args: argparse.Namespace, agent: Agent) -> int:
    from proto import agent_pb2 as pb

    nets = agent.call("ListNetworks", pb.ListNetworksRequest()).networks
    if getattr(args, "quiet", False):
        for n in nets:
            print(n.id[:12])
        return 0
    rows = [[n.id[:12], n.name, n.driver, n.subnet, n.bridge, ago(n.created_at)] for n in nets]
    emit(getattr(args, "output", "table"), [network_document(n) for n in nets],
         ["NETWORK ID", "NAME", "DRIVER", "SUBNET", "BRIDGE", "CREATED"], rows)
    return 0


def _inspect(args: argparse.Namespace, agent: Agent) -> int:
    from proto import agent_pb2 as pb

    docs = []
    for ref in args.networks:
        details = agent.call("InspectNetwork", pb.NetworkRef(id=ref))
        docs.append({**network_document(details.network),
                     "containers": [message_plain(c) for c in details.containers]})
    emit("yaml" if getattr(args, "output", "table") == "yaml" else "json", docs, [], [])
    return 0


def _rm(args: argparse.Namespace, agent: Agent) -> int:
    from proto import agent_pb2 as pb

    failed = None
    for ref in args.networks:
        try:
            agent.call("RemoveNetwork", pb.NetworkRef(id=ref))
        except CLIError as err:  # the others are still removed; the first failure is the answer
            print(f"orch: error: {err.message}", file=sys.stderr)
            failed = failed or err
            continue
        print(ref)
    return 1 if failed else 0


def network_document(net: Any) -> dict[str, Any]:
    doc = message_plain(net)
    if not doc.get("created_at"):
        doc.pop("created_at", None)
    return doc
