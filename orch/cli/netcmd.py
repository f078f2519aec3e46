"""``orch network create|ls|inspect|rm``: the cluster's overlay networks in
cluster mode (``netcluster``), the engine's bridge networks otherwise
(``netengine``), as ``orch ps`` chooses between the cluster and the engine.

Both read the same arguments (``netengine``'s docstring lists them).
"""

from __future__ import annotations

import argparse
from typing import Any

from orch.cli.client import Agent, CLIError
from orch.cli.common import add_output

__all__ = ["cmd_network", "register"]


def register(sub: Any) -> None:
    p = sub.add_parser("network", help="manage networks (cluster: overlay networks; engine: bridges)")
    try:
        from orch.cli.netengine import add_arguments
    except ImportError:
        add_arguments = _add_arguments
    add_arguments(p)
    p.set_defaults(func=cmd_network)


def _add_arguments(p: argparse.ArgumentParser) -> None:
    """The sub-commands and options, when the engine's module does not give them."""
    sub = p.add_subparsers(dest="network_command", metavar="COMMAND")
    sub.required = True
    c = sub.add_parser("create", help="create a network")
    c.add_argument("name")
    c.add_argument("--subnet", default="", metavar="CIDR", help="its subnet (default: the next free /24)")
    c.add_argument("-l", "--label", action="append", default=[], metavar="K=V")
    ls = sub.add_parser("ls", aliases=["list"], help="list networks")
    ls.add_argument("-q", "--quiet", action="store_true", help="ids only")
    add_output(ls)
    i = sub.add_parser("inspect", help="show networks in detail")
    i.add_argument("networks", nargs="+", metavar="NETWORK")
    add_output(i)
    r = sub.add_parser("rm", aliases=["remove"], help="remove networks")
    r.add_argument("networks", nargs="+", metavar="NETWORK")


def cmd_network(args: argparse.Namespace, agent: Agent) -> int:
    from orch.cli import clustercmd

    if clustercmd.cluster_address(args):
        from orch.cli import netcluster

        return netcluster.cmd_network(args)
    try:
        from orch.cli import netengine
    except ImportError:
        raise CLIError("engine networks are not available yet; in a cluster (orch up, or --cluster) "
                       "orch network manages its overlay networks") from None
    return int(netengine.cmd_network(args, agent))
