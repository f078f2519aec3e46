"""Image commands: images, image import|ls|rm|inspect."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from orch.cli.client import Agent, CLIError
from orch.cli.common import add_output
from orch.cli.output import emit, message_dict
from orch.units import format_bytes


def register(sub: Any) -> None:
    p = sub.add_parser("images", help="list images")
    add_output(p)
    p.set_defaults(func=cmd_images)

    img = sub.add_parser("image", help="manage images")
    isub = img.add_subparsers(dest="image_command", metavar="COMMAND",
                              parser_class=type(img))
    isub.required = True
    p = isub.add_parser("import", help="make a one-layer image from a directory or tarball")
    p.add_argument("source")
    p.add_argument("ref", metavar="NAME[:TAG]")
    p.set_defaults(func=cmd_import)
    p = isub.add_parser("ls", help="list images")
    add_output(p)
    p.set_defaults(func=cmd_images)
    p = isub.add_parser("rm", help="remove images")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("refs", nargs="+")
    p.set_defaults(func=cmd_rm)
    p = isub.add_parser("inspect", help="show an image in detail (JSON)")
    p.add_argument("refs", nargs="+")
    p.set_defaults(func=cmd_inspect)


def cmd_images(args: argparse.Namespace, agent: Agent) -> int:
    from proto import agent_pb2 as pb

    images = agent.call("ListImages", pb.ListImagesRequest()).images
    rows = []
    for im in images:
        for tag in im.repo_tags or ["<none>:<none>"]:
            repo, _, t = tag.rpartition(":")
            rows.append([repo, t, im.id.removeprefix("sha256:")[:12], im.created[:19],
                         format_bytes(im.size)])
    emit(args.output, [message_dict(i) for i in images],
         ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"], rows)
    return 0


def cmd_import(args: argparse.Namespace, agent: Agent) -> int:
    from proto import agent_pb2 as pb

    source = os.path.abspath(args.source)
    if not os.path.exists(source):
        raise CLIError(f"{args.source}: no such file or directory")
    image = agent.call("ImportImage", pb.ImportImageRequest(source=source, ref=args.ref))
    print(image.id)
    return 0


def cmd_rm(args: argparse.Namespace, agent: Agent) -> int:
    from proto import agent_pb2 as pb

    failed = 0
    for ref in args.refs:
        try:
            res = agent.call("RemoveImage", pb.RemoveImageRequest(ref=ref, force=args.force))
            for item in res.removed:
                print(item)
        except CLIError as err:
            print(f"orch: error: {err.message}", file=sys.stderr)
            failed = 1
    return failed


def cmd_inspect(args: argparse.Namespace, agent: Agent) -> int:
    from proto import agent_pb2 as pb

    docs = [json.loads(agent.call("InspectImage", pb.ImageRef(ref=r)).json) for r in args.refs]
    json.dump(docs, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0
