"""Container commands: run, create, start, stop, kill, rm, ps, logs, exec,
inspect, wait, stats."""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any

from orch.cli.client import Agent, CLIError
from orch.cli.common import add_output, ago, write_exec_output
from orch.cli.output import emit, message_dict
from orch.units import QuantityError, format_bytes, format_duration, parse_cpus, parse_memory

_PORT_RE = re.compile(r"^(?:(?P<ip>[0-9.]+):)?(?P<host>\d+):(?P<ctr>\d+)(?:/(?P<proto>tcp|udp))?$")


def register(sub: Any) -> None:
    for name, help_text in (("run", "create and start a container"),
                            ("create", "create a container without starting it")):
        p = sub.add_parser(name, help=help_text)
        if name == "run":
            p.add_argument("--rm", action="store_true", help="remove the container when it exits")
            p.add_argument("-d", "--detach", action="store_true", help="run in the background")
        p.add_argument("--name", default="")
        p.add_argument("-e", "--env", action="append", default=[], metavar="K=V")
        p.add_argument("-p", "--publish", action="append", default=[],
                       metavar="[IP:]HOST:CONTAINER[/tcp|/udp]")
        p.add_argument("--memory", "-m", default=None, help="memory limit, e.g. 64Mi")
        p.add_argument("--cpus", default=None, help="CPU quota, e.g. 0.5 or 500m")
        p.add_argument("--pids-limit", type=int, default=0)
        p.add_argument("--restart", default="no",
                       help="no | on-failure[:N] | always | unless-stopped")
        p.add_argument("--network", default="bridge", choices=("bridge", "none", "host"))
        p.add_argument("--entrypoint", default=None)
        p.add_argument("-w", "--workdir", default=None)
        p.add_argument("-u", "--user", default=None)
        p.add_argument("--hostname", default="")
        p.add_argument("--stop-timeout", type=float, default=None)
        p.add_argument("--stop-signal", default="")
        p.add_argument("--read-only", action="store_true")
        p.add_argument("-l", "--label", action="append", default=[], metavar="K=V")
        p.add_argument("image")
        p.add_argument("cmd", nargs=argparse.REMAINDER)
        p.set_defaults(func=cmd_run if name == "run" else cmd_create)

    p = sub.add_parser("start", help="start created or stopped containers")
    p.add_argument("containers", nargs="+")
    p.set_defaults(func=lambda a, ag: _each(a, ag, "Start", "ContainerRef"))

    p = sub.add_parser("stop", help="stop running containers")
    p.add_argument("-t", "--time", type=float, default=None,
                   help="seconds to wait before SIGKILL (default: the container's, 10)")
    p.add_argument("containers", nargs="+")
    p.set_defaults(func=cmd_stop)

    p = sub.add_parser("kill", help="send a signal to containers")
    p.add_argument("-s", "--signal", default="SIGKILL")
    p.add_argument("containers", nargs="+")
    p.set_defaults(func=cmd_kill)

    p = sub.add_parser("rm", help="remove containers")
    p.add_argument("-f", "--force", action="store_true", help="kill running containers first")
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
    p.add_argument("container")
    p.set_defaults(func=cmd_logs)

    p = sub.add_parser("exec", help="run a command in a running container")
    p.add_argument("-e", "--env", action="append", default=[], metavar="K=V")
    p.add_argument("-u", "--user", default=None)
    p.add_argument("-w", "--workdir", default=None)
    p.add_argument("container")
    p.add_argument("cmd", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_exec)

    p = sub.add_parser("inspect", help="show containers in detail (JSON)")
    p.add_argument("containers", nargs="+")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("wait", help="wait for containers to exit; print their exit codes")
    p.add_argument("containers", nargs="+")
    p.set_defaults(func=cmd_wait)

    p = sub.add_parser("stats", help="resource use of running containers")
    p.add_argument("containers", nargs="+")
    add_output(p)
    p.set_defaults(func=cmd_stats)


# ---- building requests ---------------------------------------------------

def parse_port(text: str) -> dict[str, Any]:
    m = _PORT_RE.match(text)
    if not m:
        raise CLIError(f"invalid port mapping {text!r}: expected [IP:]HOST:CONTAINER[/tcp|/udp]")
    host, ctr = int(m["host"]), int(m["ctr"])
    for port in (host, ctr):
        if not 0 < port < 65536:
            raise CLIError(f"invalid port mapping {text!r}: ports are 1-65535")
    return {"host_port": host, "container_port": ctr, "protocol": m["proto"] or "tcp",
            "host_ip": m["ip"] or ""}


def _kv(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        k, sep, v = item.partition("=")
        if not sep or not k:
            raise CLIError(f"invalid {what} {item!r}: expected KEY=VALUE")
        out[k] = v
    return out


def build_config(args: argparse.Namespace) -> Any:
    from proto import agent_pb2 as pb

    try:
        memory = parse_memory(args.memory) if args.memory else 0
        cpus = parse_cpus(args.cpus) if args.cpus else 0.0
    except QuantityError as err:
        raise CLIError(str(err))
    if args.pids_limit < 0:
        raise CLIError("invalid --pids-limit: must be positive")
    _kv(args.env, "environment variable")
    cfg = pb.ContainerConfig(
        image=args.image, name=args.name, env=args.env,
        ports=[pb.PortMapping(**parse_port(p)) for p in args.publish],
        memory_bytes=memory, cpus=cpus, pids_limit=args.pids_limit,
        restart_policy=args.restart, network=args.network, hostname=args.hostname,
        stop_signal=args.stop_signal, read_only=args.read_only, labels=_kv(args.label, "label"),
        auto_remove=getattr(args, "rm", False),
    )
    if args.cmd:
        cfg.command.values.extend(args.cmd)
    if args.entrypoint is not None:
        cfg.entrypoint.values.extend([args.entrypoint] if args.entrypoint else [])
    if args.workdir is not None:
        cfg.workdir = args.workdir
    if args.user is not None:
        cfg.user = args.user
    if args.stop_timeout is not None:
        cfg.stop_timeout = args.stop_timeout
    return cfg


# ---- commands -------------------------------------------------------------

def cmd_create(args: argparse.Namespace, agent: Agent) -> int:
    print(agent.call("Create", build_config(args)).id)
    return 0


def cmd_run(args: argparse.Namespace, agent: Agent) -> int:
    from proto import agent_pb2 as pb

    if args.rm and args.restart not in ("no", ""):
        raise CLIError("--rm and --restart cannot be used together")
    request = pb.RunRequest(config=build_config(args), attach=not args.detach)
    try:
        events = agent.stream("Run", request)
        for event in events:
            kind = event.WhichOneof("event")
            if kind == "started" and args.detach:
                print(event.started.id)
                return 0
            if kind == "log":
                out = sys.stdout if event.log.stream == "stdout" else sys.stderr
                out.write(event.log.line + "\n")
            elif kind == "exited":
                sys.stdout.flush()
                if event.exited.oom_killed:
                    print("orch: container was OOM-killed (memory limit reached)",
                          file=sys.stderr)
                return int(event.exited.exit_code)
    except CLIError as err:
        # Docker's convention: 127 when the command cannot be found.
        if "not found" in err.message and "setup failed" in err.message:
            raise CLIError(err.message, 127)
        raise CLIError(err.message, 125)
    raise CLIError("lost the connection to the agent before the container exited", 125)


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


def cmd_stop(args: argparse.Namespace, agent: Agent) -> int:
    extra = {} if args.time is None else {"timeout": args.time}
    return _each(args, agent, "Stop", "StopRequest", **extra)


def cmd_kill(args: argparse.Namespace, agent: Agent) -> int:
    return _each(args, agent, "Kill", "KillRequest", signal=args.signal)


def cmd_rm(args: argparse.Namespace, agent: Agent) -> int:
    if (cluster := _cluster(args)) is not None:
        return int(cluster.cmd_cluster_rm(args))
    return _each(args, agent, "Remove", "RemoveRequest", force=args.force)


def status_text(c: Any) -> str:
    if c.state == "running":
        return "Up " + format_duration(max(0.0, __import__("time").time() - c.started_at))
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


def cmd_logs(args: argparse.Namespace, agent: Agent) -> int:
    from proto import agent_pb2 as pb

    if (cluster := _cluster(args)) is not None:
        return int(cluster.cmd_cluster_logs(args))
    request = pb.LogsRequest(id=args.container, follow=args.follow)
    if args.tail is not None:
        request.tail = args.tail
    for line in agent.stream("Logs", request):
        out = sys.stdout if line.stream == "stdout" else sys.stderr
        out.write((line.time + " " if args.timestamps else "") + line.line + "\n")
        if args.follow:
            out.flush()
    return 0


def cmd_exec(args: argparse.Namespace, agent: Agent) -> int:
    from proto import agent_pb2 as pb

    if (cluster := _cluster(args)) is not None:
        return int(cluster.cmd_cluster_exec(args))
    if not args.cmd:
        raise CLIError("exec needs a command: orch exec CONTAINER CMD [ARG...]")
    request = pb.ExecRequest(id=args.container, command=args.cmd, env=args.env)
    if args.user is not None:
        request.user = args.user
    if args.workdir is not None:
        request.workdir = args.workdir
    return write_exec_output(agent.stream("Exec", request))


def cmd_inspect(args: argparse.Namespace, agent: Agent) -> int:
    from proto import agent_pb2 as pb

    docs = [json.loads(agent.call("Inspect", pb.ContainerRef(id=ref)).json)
            for ref in args.containers]
    json.dump(docs, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def cmd_wait(args: argparse.Namespace, agent: Agent) -> int:
    from proto import agent_pb2 as pb

    for ref in args.containers:
        print(agent.call("Wait", pb.ContainerRef(id=ref)).exit_code)
    return 0


def cmd_stats(args: argparse.Namespace, agent: Agent) -> int:
    from proto import agent_pb2 as pb

    stats = [agent.call("Stats", pb.ContainerRef(id=ref)) for ref in args.containers]
    rows = [[s.id[:12], f"{s.cpu_usage_ns / 1e9:.2f}s",
             f"{s.cpu_nr_throttled}/{s.cpu_nr_periods}",
             format_bytes(s.memory_usage_bytes) + " / " +
             (format_bytes(s.memory_limit_bytes) if s.memory_limit_bytes else "unlimited"),
             f"{s.pids_current}" + (f"/{s.pids_limit}" if s.pids_limit else "")] for s in stats]
    emit(args.output, [message_dict(s) for s in stats],
         ["CONTAINER", "CPU TIME", "THROTTLED", "MEMORY", "PIDS"], rows)
    return 0
