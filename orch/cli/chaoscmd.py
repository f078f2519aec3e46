"""``orch chaos``: break the local cluster of ``orch up`` on purpose, then heal it.

    orch chaos kill NODE [--supervisor]      SIGKILL the node's agent (and its supervisor)
    orch chaos partition NODE [--for 30s]    cut the node's link (back by itself after --for)
    orch chaos slow NODE --delay 200ms [--loss 5%]
    orch chaos kill-leader                   SIGKILL the leading control-plane replica
    orch chaos kill-etcd N                   SIGKILL etcd member N
    orch chaos heal [NODE]                   undo all of it (no NODE: everything)

``orch down`` undoes it too. The logic is ``orch.cluster.chaos``.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from orch.cli.client import CLIError

DEFAULT_RUN = "/run/orch/cluster"


def register(sub: Any) -> None:
    p = sub.add_parser("chaos", help="break the local cluster on purpose (kill, partition, slow), "
                       "then heal it")
    verbs = p.add_subparsers(dest="chaos_command", metavar="VERB", parser_class=type(p))
    verbs.required = True

    def verb(name: str, help: str) -> argparse.ArgumentParser:
        q: argparse.ArgumentParser = verbs.add_parser(name, help=help, description=help)
        q.add_argument("--run-dir", default=None,
                       help=f"the cluster's run dir (default $ORCH_CLUSTER_RUN_DIR or {DEFAULT_RUN})")
        return q

    q = verb("kill", "SIGKILL a node's agent (its containers run on); --supervisor: its supervisor too, "
                     "and with it the node's containers")
    q.add_argument("node", metavar="NODE")
    q.add_argument("--supervisor", action="store_true", help="also kill the node's supervisor")
    q.set_defaults(func=cmd_kill)

    q = verb("partition", "cut a node's link to the cluster network")
    q.add_argument("node", metavar="NODE")
    q.add_argument("--for", dest="duration", default=None, metavar="DURATION",
                   help="restore it by itself after this long (30s, 500ms, 2m; default: at heal)")
    q.set_defaults(func=cmd_partition)

    q = verb("slow", "delay (and drop) what crosses a node's link, both ways")
    q.add_argument("node", metavar="NODE")
    q.add_argument("--delay", required=True, metavar="DURATION", help="added to each packet each way (200ms)")
    q.add_argument("--loss", default="0", metavar="PERCENT", help="packets dropped each way (5%%)")
    q.set_defaults(func=cmd_slow)

    q = verb("kill-leader", "SIGKILL the control-plane replica that is leader")
    q.set_defaults(func=cmd_kill_leader)

    q = verb("kill-etcd", "SIGKILL etcd member N")
    q.add_argument("member", metavar="N")
    q.set_defaults(func=cmd_kill_etcd)

    q = verb("heal", "undo what chaos did: links, delays, killed agents, control planes, etcd")
    q.add_argument("node", nargs="?", default=None, metavar="NODE",
                   help="only this node (default: everything)")
    q.set_defaults(func=cmd_heal)


def _run_dir(args: argparse.Namespace) -> str:
    if os.geteuid() != 0:
        raise CLIError("orch chaos needs root (namespaces, links, processes of the cluster)")
    return str(args.run_dir or os.environ.get("ORCH_CLUSTER_RUN_DIR") or DEFAULT_RUN)


def _do(fn: Any, *args: Any) -> Any:
    """Call into orch.cluster.chaos; its errors become one line and exit 1."""
    from orch.cluster.chaos import ChaosError
    from orch.cluster.record import UpError

    try:
        return fn(*args)
    except (ChaosError, UpError) as err:
        raise CLIError(str(err))


def cmd_kill(args: argparse.Namespace, _agent: Any) -> int:
    from orch.cluster import chaos

    for line in _do(chaos.kill, _run_dir(args), args.node, args.supervisor):
        print(line)
    return 0


def cmd_partition(args: argparse.Namespace, _agent: Any) -> int:
    from orch.cluster import chaos

    run_dir = _run_dir(args)
    duration = None
    if args.duration is not None:
        duration = _do(chaos.parse_duration, args.duration, "--for", chaos.MAX_OUTAGE)
    print(_do(chaos.partition, run_dir, args.node, duration))
    return 0


def cmd_slow(args: argparse.Namespace, _agent: Any) -> int:
    from orch.cluster import chaos

    run_dir = _run_dir(args)
    delay = _do(chaos.parse_duration, args.delay, "--delay", chaos.MAX_DELAY, True)
    loss = _do(chaos.parse_percent, args.loss, "--loss")
    print(_do(chaos.slow, run_dir, args.node, delay, loss))
    return 0


def cmd_kill_leader(args: argparse.Namespace, _agent: Any) -> int:
    from orch.cluster import chaos

    print(_do(chaos.kill_leader, _run_dir(args)))
    return 0


def cmd_kill_etcd(args: argparse.Namespace, _agent: Any) -> int:
    from orch.cluster import chaos

    run_dir = _run_dir(args)
    if not (args.member.isascii() and args.member.isdigit()) or len(args.member) > 3:
        raise CLIError(f"kill-etcd {args.member!r}: expected an etcd member number")
    print(_do(chaos.kill_etcd, run_dir, int(args.member)))
    return 0


def cmd_heal(args: argparse.Namespace, _agent: Any) -> int:
    from orch.cluster import chaos

    done, failed = _do(chaos.heal, _run_dir(args), args.node)
    for line in done or ["nothing to heal"]:
        print(line)
    if failed:
        raise CLIError("heal failed: " + "; ".join(failed))
    return 0
