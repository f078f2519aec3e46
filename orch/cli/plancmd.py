"""``orch plan``: what a deploy would do, without doing it, and whether the
loss of a node could be absorbed. The control plane decides
(``controlplane.plan``: its own reconciler and scheduler, on copies).

Exit codes follow ``kubectl diff``: 0 nothing would change, 1 something
would (or, with ``--without`` alone, something could not be placed), and 2
for an error (a bad manifest, an unknown node, no cluster).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from orch.cli.client import CLIError
from orch.cli.common import add_output, add_profile, profiles, read_manifest

EXIT_SAME, EXIT_CHANGES, EXIT_ERROR = 0, 1, 2


def register(sub: Any) -> None:
    p = sub.add_parser("plan", help="show what a deploy would do, without doing it",
                       description="Show what `orch deploy -f FILE` would do: each service created, updated "
                                   "(field by field) or unchanged, and where its new tasks would go, or why "
                                   "they would not fit. With --without NODE: as if those nodes were down. "
                                   "Exit 0: no change; 1: changes (--without alone: something would not "
                                   "fit); 2: error.")
    p.add_argument("-f", "--file", help="the manifest")
    p.add_argument("--without", action="append", default=[], metavar="NODE",
                   help="take this node as down (repeatable)")
    add_profile(p)
    add_output(p)
    p.set_defaults(func=cmd_plan)


def cmd_plan(args: argparse.Namespace, _agent: Any) -> int:
    try:
        return _plan(args)
    except CLIError as err:
        raise CLIError(err.message, EXIT_ERROR) from None


def _plan(args: argparse.Namespace) -> int:
    from orch.cli.clustercmd import client
    from orch.cli.output import message_dict
    from proto import cluster_pb2 as cpb

    if not args.file and not args.without:
        raise CLIError("nothing to plan: give -f FILE, --without NODE, or both")
    request = cpb.PlanRequest(without=args.without)
    if args.file:
        from orch.cli.secretcmd import manifest_env_files, manifest_files

        text = _read(args.file)
        request.deploy.CopyFrom(cpb.DeployRequest(manifest=text, manifest_path=args.file,
                                                  stack=os.path.basename(os.path.dirname(
                                                      os.path.abspath(args.file)))))
        # Its secrets' values, so the plan tells a changed one (a new version) from the same.
        request.deploy.files.extend(cpb.ManifestFile(kind=f"SECRET_KIND_{kind.upper()}", key=key, data=data)
                                    for kind, key, data in manifest_files(text, args.file))
        request.deploy.files.extend(cpb.ManifestFile(env_file=path, data=data)
                                    for path, data in manifest_env_files(text, args.file))
        request.deploy.profiles.extend(profiles(args.profile))
    reply = client(args).call("Plan", request)
    if args.output != "table":
        from orch.cli.output import emit

        emit(args.output, [message_dict(s) for s in reply.services], [], [])
    else:
        _print(reply.services)
    unplaced = any(not t.node for s in reply.services for t in s.tasks)
    if args.file:
        changed = any(s.action != "unchanged" for s in reply.services)
        return EXIT_CHANGES if changed or unplaced else EXIT_SAME
    return EXIT_CHANGES if unplaced else EXIT_SAME


def _read(path: str) -> str:
    return read_manifest(path)


def _print(services: Any) -> None:
    out = sys.stdout
    if not services:
        out.write("nothing would change\n")
    for s in services:
        out.write(f"{s.name}: {s.action}\n")
        for c in s.changes:
            out.write(f"  {c.field}: {c.old} -> {c.new}\n")
        placed = [t for t in s.tasks if t.node]
        if placed:
            where = ", ".join(f"{s.name}.{t.slot or t.node} -> {t.node}" for t in placed)
            out.write(f"  starts {len(placed)}: {where}\n")
        for t in s.tasks:
            if not t.node:
                out.write(f"  cannot place {s.name}.{t.slot}: {t.reason}\n")
