"""The ``orch`` command line. Every command is a thin gRPC client.

Parsing uses argparse (fast to import); grpc and the generated stubs are
imported only once a command needs the agent, so a typo costs milliseconds.
Every failure a user can cause prints one line (``orch: error: ...``) and
exits non-zero; a traceback is a bug.
"""

from __future__ import annotations

import argparse
import sys

from orch.cli.client import Agent, CLIError, host_from

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise CLIError(f"{self.prog}: {message}", 2)


def build_parser() -> argparse.ArgumentParser:
    from orch.cli import agentcmd, containers, images

    parser = _Parser(prog="orch", description="orch: a container engine and orchestrator")
    parser.add_argument("-H", "--host", help="agent address (default: $ORCH_HOST or "
                        "unix:///run/orch/agent.sock)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    agentcmd.register(sub)
    containers.register(sub)
    images.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    agent: Agent | None = None
    try:
        args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
        agent = Agent(host_from(args.host))
        return int(args.func(args, agent) or 0)
    except CLIError as err:
        sys.stdout.flush()
        print(f"orch: error: {err.message}", file=sys.stderr)
        return err.code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 141
    finally:
        if agent is not None:
            agent.close()


if __name__ == "__main__":
    sys.exit(main())
