"""`orch deploy --build`: each service's Compose ``build:`` built by an
engine, pushed to the cluster's registry as ``REGISTRY/STACK/SERVICE:build``,
and deployed pinned to the pushed digest, so every node runs the same bytes.

The engine: ``-H``/$ORCH_HOST when given; else, with a local cluster (`orch
up`), its first node's agent; else this machine's agent (as `orch build`).

The registry: ``--registry HOST:PORT``, else $ORCH_REGISTRY, else the one
`orch up --registry` started for the local cluster. ``build:`` is a context
directory, or ``{context, dockerfile, args, target}`` (paths relative to
the manifest, as Compose reads them); other keys are refused by the control
plane's parser with the reason.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Any

from orch.cli.client import Agent, CLIError


@dataclass
class Build:
    service: str
    context: str  # absolute
    containerfile: str = ""  # absolute; "": the context's Containerfile or Dockerfile
    args: dict[str, str] = field(default_factory=dict)
    target: str = ""


def builds(text: str, path: str) -> list[Build]:
    """The ``build:`` sections of manifest ``text``'s services (malformed
    ones are left for the control plane's parser to name)."""
    from orch.cli.secretcmd import services_of

    base = os.path.dirname(os.path.abspath(path))
    out = []
    for name, service in services_of(text).items():
        spec = service.get("build") if isinstance(service, dict) else None
        if isinstance(spec, str):
            spec = {"context": spec}
        if not isinstance(spec, dict):
            continue
        context = os.path.join(base, os.path.expanduser(str(spec.get("context", "."))))
        dockerfile = spec.get("dockerfile")
        args = spec.get("args") or {}
        if isinstance(args, list):
            args = dict(str(a).partition("=")[::2] for a in args)
        values = {str(k): os.environ.get(str(k), "") if v is None else str(v) for k, v in args.items()}
        out.append(Build(str(name), context, os.path.join(context, str(dockerfile)) if dockerfile else "",
                         values, str(spec.get("target") or "")))
    return out


def registry(given: str, record: dict[str, Any] | None) -> str:
    name = given or os.environ.get("ORCH_REGISTRY", "") or str((record or {}).get("registry") or "")
    if not name:
        raise CLIError("--build needs a registry the nodes pull from: --registry HOST:PORT, "
                       "$ORCH_REGISTRY, or a local cluster started with `orch up --registry`")
    return name


def engine(args: Any, agent: Agent, record: dict[str, Any] | None) -> Agent:
    if getattr(args, "host", None) or os.environ.get("ORCH_HOST") or not record or not record.get("nodes"):
        return agent
    return Agent(f"unix://{record['nodes'][0]['run_dir']}/agent.sock")


def build_and_push(agent: Agent, todo: list[Build], registry: str, stack: str) -> dict[str, str]:
    """Build and push each; the pinned reference of each service's image."""
    from proto import agent_pb2 as pb

    pinned: dict[str, str] = {}
    for b in todo:
        if not os.path.isdir(b.context):
            raise CLIError(f"service {b.service}: build context {b.context} is not a directory")
        repo = f"{registry}/{stack}/{b.service}"
        print(f"building {b.service} from {b.context}", flush=True)
        for event in agent.stream("Build", pb.BuildRequest(context=b.context, containerfile=b.containerfile,
                                                           tag=f"{repo}:build", build_args=b.args,
                                                           target=b.target)):
            kind = event.WhichOneof("event")
            if kind == "lines":
                sys.stdout.write(event.lines)
            elif kind == "line":
                print(event.line)
        digest = ""
        for event in agent.stream("Push", pb.PushRequest(ref=f"{repo}:build")):
            if event.kind == "done":
                digest = event.result
        if not digest:
            raise CLIError(f"service {b.service}: the push of {repo}:build gave no digest")
        pinned[b.service] = f"{repo}@{digest}"
        print(f"pushed {pinned[b.service]}", flush=True)
    return pinned
