"""``orch agent``: run the node agent, in the foreground or detached; stop it."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time
from typing import Any

from orch.cli.client import Agent, CLIError
from orch.pids import alive, wait_exit

DETACH_TIMEOUT = 30.0


def register(sub: Any) -> None:
    p = sub.add_parser("agent", help="run the node agent (root)")
    p.add_argument("action", nargs="?", choices=("run", "stop"), default="run",
                   help="run (default) or stop a running agent")
    p.add_argument("--state-dir", default=None, help="state directory (default /var/lib/orch)")
    p.add_argument("--run-dir", default=None, help="socket directory (default /run/orch)")
    p.add_argument("--bridge", default="orch0", help="node bridge name")
    p.add_argument("--subnet", default="10.88.0.0/16", help="container subnet")
    p.add_argument("-d", "--detach", action="store_true",
                   help="start in the background and return once ready")
    p.add_argument("--join", default="", help="control plane address (HOST:PORT) to join")
    p.add_argument("--token", default="", help="join token (orch up prints it)")
    p.add_argument("--listen", default="", help="also serve the node API on HOST:PORT (cluster)")
    p.add_argument("--name", default="", help="node name (default: the hostname)")
    p.add_argument("--label", action="append", default=[], metavar="K=V", help="node label")
    p.add_argument("--max-starting", type=int, default=0, metavar="N",
                   help="containers set up at once (default: one per CPU, up to 4)")
    p.add_argument("--all", action="store_true",
                   help="with stop: also stop and remove every container and the node network")
    p.set_defaults(func=cmd_agent)


def _options(args: argparse.Namespace) -> Any:
    from nodeagent.agent.daemon import DEFAULT_RUN_DIR, DEFAULT_STATE_DIR, AgentOptions

    run_dir = args.run_dir
    if run_dir is None and args.host:
        from orch.cli.client import socket_path

        run_dir = os.path.dirname(socket_path(args.host)) or None
    labels = {}
    for item in args.label:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CLIError(f"invalid label {item!r}: expected KEY=VALUE")
        labels[key] = value
    if args.max_starting < 0:
        raise CLIError(f"--max-starting must be 0 (one per CPU) or more, not {args.max_starting}")
    if args.join and not args.listen:
        raise CLIError("--join needs --listen HOST:PORT, where the control plane reaches this node")
    return AgentOptions(state_dir=args.state_dir or DEFAULT_STATE_DIR,
                        run_dir=run_dir or DEFAULT_RUN_DIR,
                        bridge=args.bridge, subnet=args.subnet, join=args.join, token=args.token,
                        listen=args.listen, name=args.name, labels=labels,
                        max_starting=args.max_starting)


def cmd_agent(args: argparse.Namespace, agent: Agent) -> int:
    if os.geteuid() != 0:
        raise CLIError("the agent needs root (namespaces, cgroups, mounts)")
    opts = _options(args)
    agent = Agent(f"unix://{opts.socket}")
    if args.action == "stop":
        return _stop(agent, opts, args.all)
    if args.detach:
        return _detach(agent, opts, args)
    from nodeagent.agent import daemon
    from nodeagent.errors import AgentError
    try:
        return daemon.run(opts)
    except AgentError as err:
        raise CLIError(err.message)


def _detach(agent: Agent, opts: Any, args: argparse.Namespace) -> int:
    from proto import agent_pb2 as pb

    os.makedirs(opts.state_dir, exist_ok=True)
    import subprocess

    log_path = os.path.join(opts.state_dir, "agent.log")
    cmd = [sys.executable, "-m", "orch", "agent", "--state-dir", opts.state_dir,
           "--run-dir", opts.run_dir, "--bridge", opts.bridge, "--subnet", opts.subnet]
    if opts.join:
        cmd += ["--join", opts.join, "--token", opts.token, "--listen", opts.listen]
    if opts.name:
        cmd += ["--name", opts.name]
    if opts.max_starting:
        cmd += ["--max-starting", str(opts.max_starting)]
    for key, value in (opts.labels or {}).items():
        cmd += ["--label", f"{key}={value}"]
    with open(log_path, "ab") as logf:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                start_new_session=True, close_fds=True)
    deadline = time.monotonic() + DETACH_TIMEOUT
    while time.monotonic() < deadline:
        code = proc.poll()
        if code is not None:
            raise CLIError(f"the agent exited with code {code} while starting; see {log_path}")
        if os.path.exists(opts.socket):
            try:
                info = agent.call("Info", pb.InfoRequest(), timeout=2)
            except CLIError:
                time.sleep(0.05)
                continue
            print(f"agent ready: pid {info.agent_pid}, socket {opts.socket}, "
                  f"state {opts.state_dir}")
            return 0
        time.sleep(0.05)
    raise CLIError(f"the agent did not become ready within {DETACH_TIMEOUT:.0f} s; see {log_path}")


def _stop(agent: Agent, opts: Any, everything: bool) -> int:
    from proto import agent_pb2 as pb

    pid = _read_pid(os.path.join(opts.run_dir, "agent.lock"))
    try:
        agent.call("Shutdown", pb.ShutdownRequest(stop_containers=everything), timeout=120)
    except CLIError:
        if not everything:
            raise
        # The agent is gone but its supervisor may still hold containers:
        # SIGTERM makes the supervisor stop them all and clean up.
        sup = _read_pid(os.path.join(opts.run_dir, "supervisor.pid"))
        if not sup or not alive(sup):
            raise
        os.kill(sup, signal.SIGTERM)
        wait_exit(sup, 120)
        print("agent was not running; stopped its supervisor, every container and the network")
        return 0
    if pid:
        wait_exit(pid, 15)
    if everything:
        with contextlib.suppress(OSError):  # kept while anything else lives there
            os.rmdir(opts.run_dir)
    print("agent stopped" + (" with every container and the node network" if everything else ""))
    return 0


def _read_pid(path: str) -> int:
    try:
        with open(path) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


