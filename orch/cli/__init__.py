"""The ``orch`` command line. Every command is a thin gRPC client.

Parsing uses argparse (fast to import); grpc and the generated stubs are
imported only once a command needs the agent, so a typo costs milliseconds.
Every failure a user can cause prints one line (``orch: error: ...``) and
exits non-zero; a traceback is a bug.
"""

from __future__ import annotations

import posix
import sys

from orch.cli.client import Agent, CLIError, host_from

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

__all__ = ["main"]


# Which module registers each command. Building every subparser costs ~20 ms,
# so a command line that names its command only builds that module's.
_MODULES = {"agent": "agentcmd", "images": "images", "image": "images", "build": "images",
            "push": "images", "pull": "images", "login": "images", "system": "images",
            "network": "netcmd", "plan": "plancmd", "rollback": "rolloutcmd", "history": "rolloutcmd",
            "update": "rolloutcmd", "events": "eventscmd", "chaos": "chaoscmd", "secret": "secretcmd",
            "config": "secretcmd", "cert": "certcmd", "token": "certcmd", "volume": "volumecmd",
            "commit": "commitcmd", "cp": "commitcmd", "sim": "simcmd",
            **dict.fromkeys(("up", "down", "controlplane", "deploy", "scale", "services", "nodes",
                             "node"), "clustercmd")}
_CONTAINER_COMMANDS = ("run", "create", "start", "stop", "kill", "rm", "ps", "logs", "exec",
                       "attach", "inspect", "wait", "stats", "info")


def _module_for(argv: list[str]) -> str | None:
    words = iter(argv)
    for word in words:
        if word in ("-H", "--host", "-C", "--cluster", "--tlscacert", "--tlscert", "--tlskey"):
            next(words, None)
        elif not word.startswith("-"):
            return "containers" if word in _CONTAINER_COMMANDS else _MODULES.get(word)
    return None


def ensure_site() -> None:
    """Put the installed packages on ``sys.path`` if the interpreter started
    without them: ``.venv/bin/orch`` runs ``python -S``, because ``orch run``
    needs only the standard library and this package (see scripts/setup)."""
    if "site" not in sys.modules:
        import site

        site.main()


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    import argparse
    import importlib

    class _Parser(argparse.ArgumentParser):
        def error(self, message: str) -> None:  # type: ignore[override]
            raise CLIError(f"{message} (see '{self.prog} --help')", 2)

    parser = _Parser(prog="orch", description="orch: a container engine and orchestrator")
    parser.add_argument("-H", "--host", help="agent address (default: $ORCH_HOST or "
                        "unix:///run/orch/agent.sock)")
    parser.add_argument("-C", "--cluster", help="control plane HOST:PORT (default: $ORCH_CLUSTER, "
                        "or the local cluster of `orch up`)")
    parser.add_argument("--tlscacert", metavar="FILE", help="over TCP: the cluster's CA (default: "
                        "$ORCH_TLS_CACERT, or ca.pem in $ORCH_CERT_PATH)")
    parser.add_argument("--tlscert", metavar="FILE", help="over TCP: this user's certificate, from "
                        "`orch cert issue --user` (default: $ORCH_TLS_CERT, or cert.pem in $ORCH_CERT_PATH)")
    parser.add_argument("--tlskey", metavar="FILE", help="over TCP: its key (default: $ORCH_TLS_KEY, or "
                        "key.pem in $ORCH_CERT_PATH)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    only = _module_for(argv) if argv is not None else None
    for name in [only] if only else ["agentcmd", "containers", "images", "clustercmd", "netcmd", "plancmd",
                                     "rolloutcmd", "eventscmd", "chaoscmd", "secretcmd", "certcmd",
                                     "volumecmd", "commitcmd", "simcmd"]:
        importlib.import_module(f"orch.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    agent: Agent | None = None
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv[:1] == ["run"]:  # the quick path: see orch.cli.runcmd
            from orch.cli import runcmd

            values = runcmd.parse_quick(argv[1:])
            if values is not None:
                agent = Agent(host_from(None))
                return runcmd.run(values, agent)
        ensure_site()
        args = build_parser(argv).parse_args(argv)
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


def run() -> None:
    """The ``orch`` command: :func:`main`, then exit without the interpreter's
    teardown (~15 ms of freeing modules the process will never use again).
    Every command has finished its work when main returns; stdio is flushed
    here, and files are closed by the ``with`` blocks that wrote them."""
    code = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        code = code or 141
    posix._exit(code)  # os._exit; os itself is not loaded on the quick path


if __name__ == "__main__":
    run()
