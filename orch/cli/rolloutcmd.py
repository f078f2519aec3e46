"""Rollout commands: ``orch rollback``, ``orch history`` and ``orch update --pause|--resume``.

``rollback`` follows the rollback as ``deploy`` follows a deploy (the same
exit codes: 0 once back and running, 2 unplaceable, 4 paused, 1 other
errors). ``history`` lists a service's stored revisions, oldest first, the
current one marked, each with what changed from the one before it.
"""

from __future__ import annotations

import argparse
from typing import Any

from orch.cli.clustercmd import client, follow_rollout
from orch.cli.common import add_output, ago
from orch.cli.output import emit


def register(sub: Any) -> None:
    p = sub.add_parser("rollback", help="return a service to an earlier revision and follow it")
    p.add_argument("service")
    p.add_argument("--to", type=int, default=0, metavar="N",
                   help="the revision to return to (default: the one before the current one)")
    p.add_argument("-d", "--detach", action="store_true", help="return at once")
    p.add_argument("--timeout", type=float, default=300)
    p.set_defaults(func=cmd_rollback)

    p = sub.add_parser("history", help="a service's revisions and what changed in each")
    p.add_argument("service")
    add_output(p)
    p.set_defaults(func=cmd_history)

    p = sub.add_parser("update", help="pause or resume a service's rollout")
    p.add_argument("service")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--pause", action="store_true", help="start no more tasks of its rollout")
    group.add_argument("--resume", action="store_true", help="go on with a paused rollout")
    p.set_defaults(func=cmd_update)


def cmd_rollback(args: argparse.Namespace, _agent: Any) -> int:
    from orch.cli.pbwire import decode_service
    from proto import cluster_pb2 as cpb

    if args.to < 0:
        from orch.cli.client import CLIError

        raise CLIError(f"invalid --to {args.to}: a revision is 1 or more")
    api = client(args)
    reply = api.call("Rollback", cpb.RollbackRequest(service=args.service, to=args.to))
    summary = decode_service(reply.SerializeToString())
    print(f"{summary.name}: {reply.note} (now revision {reply.revision})")
    if args.detach:
        return 0
    return follow_rollout(api, [summary], args.timeout, rollback=True)


def cmd_history(args: argparse.Namespace, _agent: Any) -> int:
    from proto import cluster_pb2 as cpb

    api = client(args)
    entries = api.call("History", cpb.ServiceRef(name=args.service)).revisions
    out, rows = [], []
    for e in entries:
        changes = [{"field": c.field, "old": c.old, "new": c.new} for c in e.changes]
        out.append({"revision": e.revision, "created_at": e.created_at, "note": e.note,
                    "current": e.current, "changes": changes})
        shown = "; ".join(f"{c.field}: {c.old} -> {c.new}" for c in e.changes) or \
            ("-" if e is entries[0] else "(no change to a task's spec)")
        rows.append([f"{e.revision}{' *' if e.current else ''}", ago(e.created_at), e.note, shown])
    emit(args.output, out, ["REVISION", "CREATED", "NOTE", "CHANGES"], rows)
    return 0


def cmd_update(args: argparse.Namespace, _agent: Any) -> int:
    from proto import cluster_pb2 as cpb

    api = client(args)
    reply = api.call("UpdateService", cpb.UpdateServiceRequest(service=args.service, pause=args.pause,
                                                                 resume=args.resume))
    status = reply.update_status
    print(f"{reply.spec.name}: rollout {status.state.replace('_', ' ')}")
    return 0
