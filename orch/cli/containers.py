"""Container commands: run, create, start, stop, kill, rm, ps, logs, exec,
attach, inspect, wait, stats; and info, about the engine that runs them.
Interactive sessions (exec -i/-t, attach) are ``orch.cli.interactive``'s."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from model.units import format_duration
from orch.cli import runcmd
from orch.cli.client import Agent, CLIError
from orch.cli.common import add_output, ago, write_exec_output
from orch.cli.output import emit, message_dict


def register(sub: Any) -> None:
    for name, help_text, func in (("run", "create and start a container", cmd_run),
                                  ("create", "create a container without starting it", cmd_create)):
        p = sub.add_parser(name, help=help_text)
        runcmd.register(p, run=name == "run")
        p.set_defaults(func=func)

    p = sub.add_parser("start", help="start created or stopped containers")
    p.add_argument("containers", nargs="+")
    p.set_defaults(func=lambda a, ag: _each(a, ag, "Start", "ContainerRef"))

    p = sub.add_parser("stop", help="stop running containers")
    p.add_argument("-t", "--time", default=None,
                   help="seconds to wait before SIGKILL (default: the container's, 10)")
    p.add_argument("containers", nargs="+")
    p.set_defaults(func=cmd_stop)

    p = sub.add_parser("kill", help="send a signal to containers")
    p.add_argument("-s", "--signal", default="SIGKILL")
    p.add_argument("containers", nargs="+")
    p.set_defaults(func=cmd_kill)

    p = sub.add_parser("rm", help="remove containers")
    p.add_argument("-f", "--force", action="store_true", help="kill running containers first")
    p.add_argument("-v", "--volumes", action="store_true",
                   help="remove their anonymous volumes too (named volumes stay)")
    p.add_argument("containers", nargs="+")
    p.set_defaults(func=cmd_rm)

    p = sub.add_parser("ps", help="list containers")
    p.add_argument("-a", "--all", action="store_true", help="include stopped containers")
    p.add_argument("-q", "--quiet", action="store_true", help="ids only")
    p.add_argument("service", nargs="?", help="cluster mode: the service whose tasks to list")
    add_output(p)
    p.set_defaults(func=cmd_ps)

    p = sub.add_parser("logs", help="show a container's output")
    p.add_argument("-f", "--follow", action="store_true")
    p.add_argument("--tail", type=int, default=None)
    p.add_argument("-t", "--timestamps", action="store_true")
    p.add_argument("--since", default="", metavar="T",
                   help="lines from T on: a duration before now (10m), Unix seconds or RFC 3339")
    p.add_argument("--until", default="", metavar="T", help="lines before T (as --since)")
    p.add_argument("container")
    p.set_defaults(func=cmd_logs)

    p = sub.add_parser("exec", help="run a command in a running container")
    p.add_argument("-i", "--interactive", action="store_true", help="keep stdin open, sent to the command")
    p.add_argument("-t", "--tty", action="store_true", help="a terminal (pty) as the command's stdio")
    p.add_argument("-e", "--env", action="append", default=[], metavar="K=V")
    p.add_argument("-u", "--user", default=None)
    p.add_argument("-w", "--workdir", default=None)
    p.add_argument("container")
    p.add_argument("cmd", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_exec)

    p = sub.add_parser("attach", help="attach to a running container's stdio (detach: Ctrl-P Ctrl-Q)")
    p.add_argument("--no-stdin", action="store_true", help="do not send stdin to it")
    p.add_argument("--detach-keys", default="", metavar="KEYS",
                   help="keys that detach (default ctrl-p,ctrl-q), e.g. ctrl-x,x")
    p.add_argument("container")
    p.set_defaults(func=cmd_attach)

    p = sub.add_parser("inspect", help="show containers in detail (JSON)")
    p.add_argument("containers", nargs="+")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("wait", help="wait for containers to exit; print their exit codes")
    p.add_argument("containers", nargs="+")
    p.set_defaults(func=cmd_wait)

    p = sub.add_parser("stats", help="live resource use of running containers (cluster mode: of "
                       "services' tasks), like `docker stats`")
    p.add_argument("--no-stream", action="store_true",
                   help="one table (two readings a second apart), then exit")
    p.add_argument("containers", nargs="*", metavar="NAME",
                   help="containers (cluster mode: services); none: every running one")
    add_output(p)  # json and yaml: one reading's objects, as with --no-stream
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("info", help="the engine: version, state dir, counts, limits it can enforce")
    add_output(p)
    p.set_defaults(func=cmd_info)


# ---- commands -------------------------------------------------------------

def cmd_create(args: argparse.Namespace, agent: Agent) -> int:
    print(agent.call("Create", runcmd.encode_config(runcmd.config_fields(vars(args)))).id)
    return 0


def cmd_run(args: argparse.Namespace, agent: Agent) -> int:
    return runcmd.run(vars(args), agent)


def _each(args: argparse.Namespace, agent: Agent, method: str, msg: str, **extra: Any) -> int:
    from proto import agent_pb2 as pb

    failed = 0
    for ref in args.containers:
        try:
            agent.call(method, getattr(pb, msg)(id=ref, **extra))
            print(ref)
        except CLIError as err:
            print(f"orch: error: {err.message}", file=sys.stderr)
            failed = 1
    return failed


def _checked(check: Any, *values: Any) -> Any:
    """``check(*values)``, its ``QuantityError`` as the CLI's one-line error."""
    from model.units import QuantityError

    try:
        return check(*values)
    except QuantityError as err:
        raise CLIError(str(err))


def cmd_stop(args: argparse.Namespace, agent: Agent) -> int:
    from model.units import MAX_STOP_GRACE_PERIOD, parse_seconds

    extra = {} if args.time is None else {
        "timeout": _checked(parse_seconds, args.time, MAX_STOP_GRACE_PERIOD, "--time")}
    return _each(args, agent, "Stop", "StopRequest", **extra)


def cmd_kill(args: argparse.Namespace, agent: Agent) -> int:
    return _each(args, agent, "Kill", "KillRequest", signal=args.signal)


def cmd_rm(args: argparse.Namespace, agent: Agent) -> int:
    if (cluster := _cluster(args)) is not None:
        return int(cluster.cmd_cluster_rm(args))
    return _each(args, agent, "Remove", "RemoveRequest", force=args.force,
                 volumes=bool(getattr(args, "volumes", False)))


# What `docker ps` adds to a running container's status, by health.
HEALTH_SUFFIX = {"starting": " (health: starting)", "healthy": " (healthy)", "unhealthy": " (unhealthy)"}


def status_text(c: Any) -> str:
    if c.state == "running":
        up = "Up " + format_duration(max(0.0, __import__("time").time() - c.started_at))
        return up + HEALTH_SUFFIX.get(c.health.status, "")
    if c.state == "exited":
        text = f"Exited ({c.exit_code}) {ago(c.finished_at)}" if c.finished_at else "Exited"
        return text + (" (OOMKilled)" if c.oom_killed else "")
    if c.state == "restarting":
        return f"Restarting ({c.exit_code}) {ago(c.finished_at)}"
    return c.state.capitalize()


def ports_text(c: Any) -> str:
    return ", ".join(f"{p.host_ip or '0.0.0.0'}:{p.host_port}->{p.container_port}/{p.protocol}"
                     for p in c.ports)


def _cluster(args: argparse.Namespace) -> Any:
    """The cluster commands module when the CLI is in cluster mode, else None."""
    from orch.cli import clustercmd

    return clustercmd if clustercmd.cluster_address(args) else None


def cmd_ps(args: argparse.Namespace, agent: Agent) -> int:
    from proto import agent_pb2 as pb

    if (cluster := _cluster(args)) is not None:
        return int(cluster.cmd_cluster_ps(args))
    if args.service:
        raise CLIError("ps takes no service on a single engine (no cluster is up)")

    containers = agent.call("List", pb.ListRequest(all=args.all)).containers
    if args.quiet:
        for c in containers:
            print(c.id[:12])
        return 0
    rows = [[c.id[:12], c.image, _short(" ".join(c.command), 24), ago(c.created_at),
             status_text(c), ports_text(c), c.name] for c in containers]
    emit(args.output, [message_dict(c) for c in containers],
         ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"], rows)
    return 0


def _short(text: str, width: int) -> str:
    quoted = json.dumps(text)
    return quoted if len(quoted) <= width else quoted[: width - 4] + '..."'


def log_window(args: argparse.Namespace) -> tuple[str, str]:
    """``--since`` and ``--until`` as the agent compares them."""
    from model.logtime import parse_log_time

    try:
        return parse_log_time(args.since, "--since"), parse_log_time(args.until, "--until")
    except ValueError as err:
        raise CLIError(str(err)) from None


def cmd_logs(args: argparse.Namespace, agent: Agent) -> int:
    from proto import agent_pb2 as pb

    if (cluster := _cluster(args)) is not None:
        return int(cluster.cmd_cluster_logs(args))
    since, until = log_window(args)
    request = pb.LogsRequest(id=args.container, follow=args.follow, since=since, until=until)
    if args.tail is not None:
        request.tail = args.tail
    stamp = args.timestamps
    for batch in agent.stream("LogBatches", request):
        write_lines(batch.lines, "", stamp, args.follow)
    return 0


def write_lines(lines: Any, head: str, stamp: bool, flush: bool) -> None:
    """Log lines to stdout and stderr by their stream, one write a run of
    lines; each after ``head`` and, with ``stamp``, its time."""
    runs: dict[str, list[str]] = {"stdout": [], "stderr": []}
    for line in lines:
        runs["stderr" if line.stream == "stderr" else "stdout"].append(
            f"{head}{line.time} {line.line}\n" if stamp else f"{head}{line.line}\n")
    for name, out in (("stdout", sys.stdout), ("stderr", sys.stderr)):
        if runs[name]:
            out.write("".join(runs[name]))
            if flush:
                out.flush()


def cmd_exec(args: argparse.Namespace, agent: Agent) -> int:
    from proto import agent_pb2 as pb

    if args.user is not None:
        from model.units import check_user

        _checked(check_user, args.user)
    if (cluster := _cluster(args)) is not None:
        return int(cluster.cmd_cluster_exec(args))
    if not args.cmd:
        raise CLIError("exec needs a command: orch exec CONTAINER CMD [ARG...]")
    request = pb.ExecRequest(id=args.container, command=args.cmd, env=args.env)
    if args.user is not None:
        request.user = args.user
    if args.workdir is not None:
        request.workdir = args.workdir
    if args.interactive or args.tty:
        from orch.cli import interactive

        request.tty, request.stdin = args.tty, args.interactive
        return interactive.exec_engine(agent, request)
    return write_exec_output(agent.stream("Exec", request))


def cmd_attach(args: argparse.Namespace, agent: Agent) -> int:
    from orch.cli import interactive

    return interactive.attach(agent, args.container, no_stdin=args.no_stdin, detach_keys=args.detach_keys)


def cmd_inspect(args: argparse.Namespace, agent: Agent) -> int:
    from proto import agent_pb2 as pb

    docs = [inspect_document(agent.call("Inspect", pb.ContainerRef(id=ref))) for ref in args.containers]
    json.dump(docs, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def inspect_document(details: Any) -> dict[str, Any]:
    """A ``ContainerDetails`` as `orch inspect` prints it: the container's
    fields, then the request (``config``), the runtime ``spec`` and the rest."""
    from orch.cli.output import message_plain

    doc = message_plain(details)
    return {**doc.pop("container"), **doc}


def cmd_wait(args: argparse.Namespace, agent: Agent) -> int:
    from proto import agent_pb2 as pb

    for ref in args.containers:
        print(agent.call("Wait", pb.ContainerRef(id=ref)).exit_code)
    return 0


def cmd_stats(args: argparse.Namespace, agent: Agent) -> int:
    from orch.cli import statscmd

    if (cluster := _cluster(args)) is not None:
        return statscmd.cmd_cluster_stats(args, cluster.client(args))
    return statscmd.cmd_engine_stats(args, agent)


def cmd_info(args: argparse.Namespace, agent: Agent) -> int:
    from proto import agent_pb2 as pb

    info = agent.call("Info", pb.InfoRequest())
    if args.output != "table":
        emit(args.output, message_dict(info), [], [])
        return 0
    rows = [("Version", info.version), ("State dir", info.state_dir),
            ("Cgroup version", info.cgroup_version),
            ("Containers", f"{info.containers} (running: {info.running})"),
            ("Images", info.images),
            ("Storage limit", info.storage_limit or "unknown (the agent does not say)"),
            ("Default pids limit", info.default_pids_limit or "none"),
            ("Network", f"{info.bridge} {info.subnet}".strip() or "none"),
            ("Agent pid", f"{info.agent_pid} (supervisor {info.supervisor_pid})")]
    width = max(len(name) for name, _ in rows) + 2
    for name, value in rows:
        print(f"{name + ':':<{width}}{value}")
    return 0
