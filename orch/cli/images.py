"""Image commands: images, image import|ls|rm|inspect."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from model.units import format_bytes
from orch.cli.client import Agent, CLIError
from orch.cli.common import add_output
from orch.cli.output import emit, message_dict, message_plain


def register(sub: Any) -> None:
    p = sub.add_parser("images", help="list images")
    add_output(p)
    _add_digests(p)
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
    _add_digests(p)
    p.set_defaults(func=cmd_images)
    p = isub.add_parser("rm", help="remove images")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("refs", nargs="+")
    p.set_defaults(func=cmd_rm)
    p = isub.add_parser("inspect", help="show an image in detail (JSON)")
    p.add_argument("refs", nargs="+")
    p.set_defaults(func=cmd_inspect)
    p = isub.add_parser("prune", help="remove untagged images and unused layers")
    p.set_defaults(func=cmd_prune)

    p = sub.add_parser("build", help="build an image from a Containerfile")
    p.add_argument("-f", "--file", default="", help="Containerfile (default: CONTEXT/Containerfile)")
    p.add_argument("-t", "--tag", default="")
    p.add_argument("--build-arg", action="append", default=[], metavar="K=V")
    p.add_argument("--target", default="")
    p.add_argument("--no-cache", action="store_true")
    p.add_argument("context")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("push", help="push an image to a registry")
    p.add_argument("ref", metavar="NAME[:TAG]")
    p.add_argument("remote", nargs="?", default="", metavar="REGISTRY/NAME[:TAG]")
    _add_registry_ca(p)
    p.set_defaults(func=cmd_push)

    p = sub.add_parser("pull", help="pull an image from a registry")
    p.add_argument("remote", metavar="REGISTRY/NAME[:TAG|@DIGEST]")
    _add_registry_ca(p)
    p.set_defaults(func=cmd_pull)

    p = sub.add_parser("login", help="store credentials for a registry")
    p.add_argument("registry")
    p.add_argument("-u", "--username", required=True)
    p.add_argument("-p", "--password", default=None, help="default: read from stdin")
    _add_registry_ca(p)
    p.set_defaults(func=cmd_login)

    p = sub.add_parser("system", help="system information")
    ssub = p.add_subparsers(dest="system_command", metavar="COMMAND", parser_class=type(p))
    ssub.required = True
    q = ssub.add_parser("df", help="image disk use, shared layers counted once")
    add_output(q)
    q.set_defaults(func=cmd_df)


def _add_digests(p: argparse.ArgumentParser) -> None:
    p.add_argument("--digests", action="store_true", help="show each name's manifest digest")


def _add_registry_ca(p: argparse.ArgumentParser) -> None:
    p.add_argument("--registry-ca", default="", metavar="FILE",
                   help="a PEM CA to trust for the registry, besides the system's and "
                        "/etc/orch/certs.d/HOST:PORT/ca.crt")


def _registry_ca(args: argparse.Namespace) -> str:
    if not args.registry_ca:
        return ""
    if not os.path.isfile(args.registry_ca):
        raise CLIError(f"--registry-ca {args.registry_ca}: no such file")
    return os.path.abspath(args.registry_ca)


def cmd_images(args: argparse.Namespace, agent: Agent) -> int:
    from proto import agent_pb2 as pb

    images = agent.call("ListImages", pb.ListImagesRequest()).images
    rows = []
    for im in images:
        digests = [d.partition("@")[::2] for d in im.repo_digests]
        tagged = {t.rpartition(":")[0] for t in im.repo_tags}
        # Docker's rows: one per tag, one "<none>" tag per name known only by a digest.
        names = [*im.repo_tags, *dict.fromkeys(f"{n}:<none>" for n, _ in digests if n not in tagged)]
        for name in names or ["<none>:<none>"]:
            repo, _, tag = name.rpartition(":")
            digest = next((d for n, d in digests if n == repo and d == im.manifest_digest),
                          next((d for n, d in digests if n == repo), "<none>"))
            rows.append([repo, tag, *([digest] if args.digests else []),
                         im.id.removeprefix("sha256:")[:12], im.created[:19], format_bytes(im.size)])
    headers = ["REPOSITORY", "TAG", *(["DIGEST"] if args.digests else []), "IMAGE ID", "CREATED", "SIZE"]
    emit(args.output, [message_dict(i) for i in images], headers, rows)
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

    docs = [message_plain(agent.call("InspectImage", pb.ImageRef(ref=r))) for r in args.refs]
    json.dump(docs, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def cmd_prune(args: argparse.Namespace, agent: Agent) -> int:
    from proto import agent_pb2 as pb

    for item in agent.call("PruneImages", pb.PruneImagesRequest()).removed:
        print(item)
    return 0


def cmd_build(args: argparse.Namespace, agent: Agent) -> int:
    from proto import agent_pb2 as pb

    context = os.path.abspath(args.context)
    if not os.path.isdir(context):
        raise CLIError(f"{args.context}: not a directory")
    build_args = {}
    for item in args.build_arg:
        key, sep, value = item.partition("=")
        if not sep:
            value = os.environ.get(key, "")
        build_args[key] = value
    request = pb.BuildRequest(context=context, tag=args.tag, build_args=build_args,
                              target=args.target, no_cache=args.no_cache,
                              containerfile=os.path.abspath(args.file) if args.file else "")
    for event in agent.stream("Build", request):
        kind = event.WhichOneof("event")
        if kind == "lines":
            sys.stdout.write(event.lines)
            sys.stdout.flush()
        elif kind == "line":
            print(event.line, flush=True)
        else:
            print(f"built {event.image.id}" + (f" {args.tag}" if args.tag else ""))
    return 0


class _Bars:
    """One line per blob, redrawn in place on a terminal."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.seen: dict[str, tuple[int, int]] = {}

    def update(self, kind: str, digest: str, done: int, total: int) -> None:
        self.seen[digest] = (done, total)
        if not self.tty:
            return
        pct = 100 * done // total if total else 100
        bar = "#" * (pct // 5)
        sys.stderr.write(f"\r{kind:8} {digest[7:19]} [{bar:<20}] {format_bytes(done)}/"
                         f"{format_bytes(total)}")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def _transfer(agent: Agent, method: str, request: object) -> str:
    bars = _Bars()
    result = ""
    for event in agent.stream(method, request):
        if event.kind == "done":
            result = event.result
        else:
            bars.update(event.kind, event.digest, event.done, event.total)
    return result


def cmd_push(args: argparse.Namespace, agent: Agent) -> int:
    from proto import agent_pb2 as pb

    digest = _transfer(agent, "Push", pb.PushRequest(ref=args.ref, remote=args.remote,
                                                     registry_ca=_registry_ca(args)))
    print(f"pushed {args.remote or args.ref}@{digest}")
    return 0


def cmd_pull(args: argparse.Namespace, agent: Agent) -> int:
    from proto import agent_pb2 as pb

    image_id = _transfer(agent, "Pull", pb.PullRequest(remote=args.remote, registry_ca=_registry_ca(args)))
    print(f"pulled {args.remote}: {image_id}")
    return 0


def cmd_login(args: argparse.Namespace, agent: Agent) -> int:
    from proto import agent_pb2 as pb

    password = args.password if args.password is not None else sys.stdin.readline().rstrip("\n")
    agent.call("Login", pb.LoginRequest(registry=args.registry, username=args.username,
                                        password=password, registry_ca=_registry_ca(args)))
    print(f"login saved for {args.registry}")
    return 0


def cmd_df(args: argparse.Namespace, agent: Agent) -> int:
    from proto import agent_pb2 as pb

    reply = agent.call("DiskUsage", pb.DiskUsageRequest())
    # One row per image, then the total with what the store holds on disk.
    usage = [*map(message_plain, reply.images), {**message_plain(reply.total), "disk": reply.disk}]
    rows = [[u["ref"], u["id"][7:19], format_bytes(u["logical_size"]), format_bytes(u["unique"]),
             format_bytes(u["shared"])] for u in usage]
    emit(args.output, usage, ["IMAGE", "ID", "SIZE", "UNIQUE", "SHARED"], rows)
    return 0
