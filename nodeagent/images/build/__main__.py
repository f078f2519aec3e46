"""``python -m nodeagent.images.build``: one build in this (single-threaded) process.

Prints progress lines on stdout; exits 1 with "error: <Containerfile:line>:
message" on stderr when the build fails.
"""

from __future__ import annotations

import argparse
import os
import sys

from common.errors import AgentError
from nodeagent.images.build.builder import build
from nodeagent.images.store import ImageStore


def _build_arg(text: str) -> tuple[str, str]:
    key, eq, value = text.partition("=")
    if not key:
        raise argparse.ArgumentTypeError(f"--build-arg {text!r}: expected KEY=VALUE")
    if not eq:  # Docker: "--build-arg KEY" takes the value from the environment
        value = os.environ.get(key, "")
    return key, value


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="orch build", description="Build an image from a Containerfile.")
    p.add_argument("--state-dir", required=True, help="node state dir holding the image store")
    p.add_argument("-f", "--file", dest="file", default=None,
                   help="Containerfile (default CONTEXT/Containerfile)")
    p.add_argument("-t", "--tag", default=None, help="name:tag for the result")
    p.add_argument("--build-arg", action="append", type=_build_arg, default=[], metavar="K=V")
    p.add_argument("--target", default=None, help="stop at this stage (name or index)")
    p.add_argument("--no-cache", action="store_true", help="ignore the build cache")
    p.add_argument("--sequential", action="store_true",
                   help="build stages one after another (no concurrent stage processes)")
    p.add_argument("context")
    args = p.parse_args(argv)
    containerfile = args.file
    if containerfile is None:
        containerfile = os.path.join(args.context, "Containerfile")
        if not os.path.exists(containerfile):
            containerfile = os.path.join(args.context, "Dockerfile")
    from nodeagent.runtime.linux import LinuxRuntime

    def out(line: str) -> None:
        print(line, flush=True)

    from nodeagent.images.build.runner import CGROUP_PARENT
    from nodeagent.runtime.cgroups import remove_parent_if_empty

    runtime = LinuxRuntime()
    try:
        store = ImageStore(args.state_dir)
        image = build(store, args.context, containerfile, args.tag, dict(args.build_arg), args.target,
                      args.no_cache, runtime, out, parallel=not args.sequential)
    except AgentError as e:
        print(f"error: {e.message}", file=sys.stderr)
        return 1
    finally:
        remove_parent_if_empty(runtime.cgroups, CGROUP_PARENT)  # each RUN's own group is already gone
    print(image.id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
