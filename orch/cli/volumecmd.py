"""``orch volume create|ls|inspect|rm|prune``: the engine's local volumes,
as ``docker volume``.

A volume is a directory the agent keeps under its state dir
(``nodeagent.volumes``); containers mount one with ``-v NAME:/path`` or
``--mount source=NAME,target=/path`` (made on first use). Removal follows
Docker: a volume that any container uses, running or not, is never
removed (``rm -f`` only makes a missing name no error); ``prune`` removes
the anonymous volumes no container uses, with ``-a`` the named ones too,
after asking unless ``-f``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from orch.cli.client import Agent, CLIError, key_values
from orch.cli.common import add_output, ago
from orch.cli.output import emit, message_plain

__all__ = ["cmd_volume", "register"]

FILTERS = ("dangling",)


def register(sub: Any) -> None:
    p = sub.add_parser("volume", help="manage local volumes")
    vsub = p.add_subparsers(dest="volume_command", metavar="COMMAND")
    vsub.required = True
    c = vsub.add_parser("create", help="create a volume")
    c.add_argument("name", nargs="?", default="", help="its name (default: a random one)")
    c.add_argument("-l", "--label", action="append", default=[], metavar="K=V")
    c.add_argument("-d", "--driver", default="local", help="local, the only one")
    ls = vsub.add_parser("ls", aliases=["list"], help="list volumes")
    ls.add_argument("-q", "--quiet", action="store_true", help="names only")
    ls.add_argument("-f", "--filter", action="append", default=[], metavar="dangling=true|false",
                    help="dangling=true: only those no container uses")
    add_output(ls)
    i = vsub.add_parser("inspect", help="show volumes in detail")
    i.add_argument("volumes", nargs="+", metavar="VOLUME")
    add_output(i)
    r = vsub.add_parser("rm", aliases=["remove"], help="remove volumes (none may be in use)")
    r.add_argument("-f", "--force", action="store_true",
                   help="a missing volume is no error (a volume in use is never removed)")
    r.add_argument("volumes", nargs="+", metavar="VOLUME")
    pr = vsub.add_parser("prune", help="remove the anonymous volumes no container uses")
    pr.add_argument("-a", "--all", action="store_true", help="the unused named volumes too")
    pr.add_argument("-f", "--force", action="store_true", help="do not ask first")
    p.set_defaults(func=cmd_volume)


def cmd_volume(args: argparse.Namespace, agent: Agent) -> int:
    command = {"list": "ls", "remove": "rm"}.get(args.volume_command, args.volume_command)
    handler = {"create": _create, "ls": _ls, "inspect": _inspect, "rm": _rm, "prune": _prune}[command]
    return handler(args, agent)


def _create(args: argparse.Namespace, agent: Agent) -> int:
    from proto import agent_pb2 as pb

    vol = agent.call("CreateVolume", pb.CreateVolumeRequest(
        name=args.name, labels=key_values(args.label, "label"), driver=args.driver))
    print(vol.name)
    return 0


def _dangling(filters: list[str]) -> bool:
    wanted = False
    for item in filters:
        key, sep, value = item.partition("=")
        if key not in FILTERS or not sep or value.lower() not in ("true", "false", "1", "0"):
            raise CLIError(f"invalid --filter {item!r}: expected dangling=true or dangling=false")
        wanted = value.lower() in ("true", "1")
    return wanted


def _ls(args: argparse.Namespace, agent: Agent) -> int:
    from proto import agent_pb2 as pb

    vols = agent.call("ListVolumes", pb.ListVolumesRequest(dangling=_dangling(args.filter))).volumes
    if any(f.partition("=")[2].lower() in ("false", "0") for f in args.filter):
        vols = [v for v in vols if v.containers]  # dangling=false: only those in use
    if args.quiet:
        for v in vols:
            print(v.name)
        return 0
    rows = [[v.driver, v.name, str(len(v.containers)), ago(v.created_at)] for v in vols]
    emit(args.output, [volume_document(v) for v in vols], ["DRIVER", "VOLUME NAME", "CONTAINERS", "CREATED"],
         rows)
    return 0


def _inspect(args: argparse.Namespace, agent: Agent) -> int:
    from proto import agent_pb2 as pb

    docs = [volume_document(agent.call("InspectVolume", pb.VolumeRef(name=name))) for name in args.volumes]
    emit("yaml" if args.output == "yaml" else "json", docs, [], [])
    return 0


def _rm(args: argparse.Namespace, agent: Agent) -> int:
    from proto import agent_pb2 as pb

    failed = False
    for name in args.volumes:
        try:
            agent.call("RemoveVolume", pb.RemoveVolumeRequest(name=name, force=args.force))
        except CLIError as err:  # the others are still removed; any failure makes the exit status 1
            print(f"orch: error: {err.message}", file=sys.stderr)
            failed = True
            continue
        print(name)
    return 1 if failed else 0


def _prune(args: argparse.Namespace, agent: Agent) -> int:
    from proto import agent_pb2 as pb

    if not args.force:
        what = "all local volumes" if args.all else "anonymous local volumes"
        print(f"WARNING! This will remove {what} not used by at least one container.\n"
              "Are you sure you want to continue? [y/N] ", end="", flush=True)
        answer = sys.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            print("orch: nothing removed", file=sys.stderr)
            return 1
    removed = agent.call("PruneVolumes", pb.PruneVolumesRequest(all=args.all)).removed
    if removed:
        print("Deleted Volumes:")
        for name in removed:
            print(name)
    print(f"Total: {len(removed)} volume(s) removed")
    return 0


def volume_document(vol: Any) -> dict[str, Any]:
    doc = message_plain(vol)
    doc.setdefault("containers", [])
    doc.setdefault("labels", {})
    return doc
