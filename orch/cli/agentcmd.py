"""``orch agent``: run the node agent, in the foreground or detached; stop it."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time
from typing import Any

from orch.cli.client import Agent, CLIError, key_values
from orch.pids import alive, wait_exit

DETACH_TIMEOUT = 30.0


def register(sub: Any) -> None:
    p = sub.add_parser("agent", help="run the node agent (root)")
    p.add_argument("action", nargs="?", choices=("run", "stop", "restart"), default="run",
                   help="run (default) or stop a running agent; restart a node's agent of the "
                   "local cluster (--node)")
    p.add_argument("--node", default="", metavar="NAME",
                   help="with restart: the node of `orch up`'s cluster; --run-dir is then the "
                   "cluster's (default /run/orch/cluster)")
    p.add_argument("--state-dir", default=None, help="state directory (default /var/lib/orch)")
    p.add_argument("--run-dir", default=None, help="socket directory (default /run/orch)")
    p.add_argument("--bridge", default="orch0", help="node bridge name")
    p.add_argument("--subnet", default="10.88.0.0/16", help="container subnet")
    p.add_argument("-d", "--detach", action="store_true",
                   help="start in the background and return once ready")
    p.add_argument("--join", default="", help="control plane API address(es) (HOST:PORT[,...]) to join; "
                   "a node without a certificate joins on each one's port + 50")
    p.add_argument("--token-file", default="", metavar="FILE",
                   help="file holding the join token (0600; or $ORCH_JOIN_TOKEN)")
    p.add_argument("--token", default=None, help=argparse.SUPPRESS)  # refused: see _token
    p.add_argument("--listen", default="", help="also serve the node API on HOST:PORT (cluster)")
    p.add_argument("--metrics-listen", default=None, metavar="HOST:PORT|none",
                   help="serve Prometheus metrics at http://HOST:PORT/metrics (default: none; with "
                   "--listen HOST:PORT, HOST:PORT+1); none: no metrics")
    p.add_argument("--name", default="", help="node name (default: the hostname)")
    p.add_argument("--label", action="append", default=[], metavar="K=V", help="node label")
    p.add_argument("--max-starting", type=int, default=0, metavar="N",
                   help="containers set up at once (default: one per CPU, up to 4)")
    p.add_argument("--default-pids-limit", default=None, metavar="N",
                   help="pids limit of containers that set none (default 4096; 0: none)")
    p.add_argument("--registry-ca", default="", metavar="FILE",
                   help="a PEM CA to trust for every registry (pulls for cluster tasks too), besides "
                   "the system's and /etc/orch/certs.d/HOST:PORT/ca.crt")
    p.add_argument("--dns-upstream", default="", metavar="ADDR[,ADDR]|none",
                   help="where the node's DNS server sends the names it does not know (IP[:PORT], "
                   "comma-separated); none: nowhere (SERVFAIL); default: the host's non-loopback "
                   "resolvers in /etc/resolv.conf")
    p.add_argument("--all", action="store_true",
                   help="with stop: also stop and remove every container and the node network")
    p.set_defaults(func=cmd_agent)


def _options(args: argparse.Namespace) -> Any:
    from nodeagent.agent.daemon import DEFAULT_RUN_DIR, DEFAULT_STATE_DIR, AgentOptions

    run_dir = args.run_dir
    if run_dir is None and args.host:
        from orch.cli.client import socket_path

        run_dir = os.path.dirname(socket_path(args.host)) or None
    labels = key_values(args.label, "label")
    if args.max_starting < 0:
        raise CLIError(f"--max-starting must be 0 (one per CPU) or more, not {args.max_starting}")
    if args.join and not args.listen:
        raise CLIError("--join needs --listen HOST:PORT, where the control plane reaches this node")
    if args.listen:
        _check_address(args.listen, "--listen")
    for addr in filter(None, args.join.split(",")):
        _check_address(addr, "--join")
    metrics_listen, metrics_default = _metrics_listen(args)
    opts = AgentOptions(state_dir=args.state_dir or DEFAULT_STATE_DIR,
                        run_dir=run_dir or DEFAULT_RUN_DIR,
                        bridge=args.bridge, subnet=args.subnet, join=args.join,
                        token=_token(args) if args.join else "",
                        listen=args.listen, name=args.name, labels=labels,
                        max_starting=args.max_starting, registry_ca=_registry_ca(args),
                        dns_upstream=_dns_upstream(args), metrics_listen=metrics_listen,
                        **_default_pids_limit(args))
    opts.metrics_default = metrics_default
    return opts


def _metrics_listen(args: argparse.Namespace) -> tuple[str, bool]:
    """``--metrics-listen`` checked, and whether it is the default: absent,
    the port after --listen's (a node of a cluster), or none."""
    given = args.metrics_listen
    if given is None:
        from nodeagent.metrics import default_address

        derived = default_address(args.listen) if args.listen else ""
        return derived, bool(derived)
    if given == "none":
        return "", False
    _check_address(given, "--metrics-listen")
    if args.listen and given.rpartition(":")[2] == args.listen.rpartition(":")[2] and \
            given.rpartition(":")[0] in (args.listen.rpartition(":")[0], "0.0.0.0", "[::]"):
        raise CLIError(f"--metrics-listen {given}: that is the node API's address (--listen)")
    return given, False


def _dns_upstream(args: argparse.Namespace) -> str:
    """``--dns-upstream`` checked (the agent parses it again); "" for the host's."""
    if not args.dns_upstream:
        return ""
    from common.errors import InvalidArgument
    from nodeagent.dns.upstreams import parse_upstreams

    try:
        parse_upstreams(args.dns_upstream)
    except InvalidArgument as err:
        raise CLIError(err.message)
    return str(args.dns_upstream)


def _registry_ca(args: argparse.Namespace) -> str:
    if not args.registry_ca:
        return ""
    from common.errors import InvalidArgument
    from registry.transport import check_ca_file

    try:
        return check_ca_file(args.registry_ca)
    except InvalidArgument as err:
        raise CLIError(err.message)


def _default_pids_limit(args: argparse.Namespace) -> dict[str, int]:
    """``--default-pids-limit``: 0 (no default) to the kernel's maximum; absent, the agent's default."""
    if args.default_pids_limit is None:
        return {}
    from model.units import MAX_PIDS

    text = args.default_pids_limit
    if not (text.isascii() and text.isdigit()) or len(text) > 8 or int(text) > MAX_PIDS:
        raise CLIError(f"invalid --default-pids-limit {text!r}: expected 1 to {MAX_PIDS} (the kernel's "
                       "maximum), or 0 for none; a container asks for unlimited with --pids-limit -1")
    return {"default_pids_limit": int(text)}


def _token(args: argparse.Namespace) -> str:
    """The join token: from --token-file or $ORCH_JOIN_TOKEN, never argv
    (every user can read any process's command line)."""
    if args.token is not None:
        raise CLIError("--token would show the join token to every user in the process list; "
                       "pass it with --token-file FILE (mode 0600) or $ORCH_JOIN_TOKEN")
    from common.auth import TokenError, join_token

    try:
        return join_token(args.token_file, "node")
    except TokenError as err:
        raise CLIError(str(err))


def _check_address(addr: str, flag: str) -> None:
    host, sep, port = addr.rpartition(":")
    if not sep or not host or not port.isascii() or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise CLIError(f"{flag}: invalid address {addr!r}: expected HOST:PORT with a port from 1 "
                       "to 65535")


def cmd_agent(args: argparse.Namespace, agent: Agent) -> int:
    if os.geteuid() != 0:
        raise CLIError("the agent needs root (namespaces, cgroups, mounts)")
    if args.action == "restart":
        return _restart(args)
    _enter_host_mounts()  # before any thread exists
    opts = _options(args)
    agent = Agent(f"unix://{opts.socket}")
    if args.action == "stop":
        return _stop(agent, opts, args.all)
    if args.detach:
        return _detach(agent, opts, args)
    from common.errors import AgentError
    from nodeagent.agent import daemon
    try:
        return daemon.run(opts)
    except AgentError as err:
        raise CLIError(err.message)


def _enter_host_mounts() -> None:
    """Started by `ip netns exec NODE orch agent ...`: see nodeagent.hostns."""
    from nodeagent.hostns import HostNamespaceError, enter_host_mounts

    try:
        enter_host_mounts()
    except HostNamespaceError as err:
        print(f"orch agent: warning: {err}", file=sys.stderr)


def _restart(args: argparse.Namespace) -> int:
    """Stop a local-cluster node's agent if it runs, start it again in the
    node's namespace as `orch up` did; its containers are adopted."""
    from orch.cluster.local import DEFAULT_RUN, UpError, restart_agent

    if not args.node:
        raise CLIError("restart needs --node NAME, a node of the local cluster (see orch nodes)")
    run_dir = args.run_dir or os.environ.get("ORCH_CLUSTER_RUN_DIR") or DEFAULT_RUN
    try:
        node = restart_agent(run_dir, args.node)
    except UpError as err:
        raise CLIError(str(err))
    where = f" in network namespace {node.netns}" if node.netns else ""
    print(f"agent {node.name} restarted{where}")
    return 0


def _detach(agent: Agent, opts: Any, args: argparse.Namespace) -> int:
    from proto import agent_pb2 as pb

    os.makedirs(opts.state_dir, exist_ok=True)
    import subprocess

    log_path = os.path.join(opts.state_dir, "agent.log")
    cmd = [sys.executable, "-m", "orch", "agent", "--state-dir", opts.state_dir,
           "--run-dir", opts.run_dir, "--bridge", opts.bridge, "--subnet", opts.subnet]
    env = dict(os.environ)
    if opts.join:
        # The token goes in the environment (readable by root only), not argv.
        cmd += ["--join", opts.join, "--listen", opts.listen]
        from common.auth import JOIN_TOKEN_ENV

        env[JOIN_TOKEN_ENV] = opts.token
    if opts.name:
        cmd += ["--name", opts.name]
    if args.metrics_listen is not None:  # else the agent derives it as this one did
        cmd += ["--metrics-listen", args.metrics_listen]
    if opts.max_starting:
        cmd += ["--max-starting", str(opts.max_starting)]
    cmd += ["--default-pids-limit", str(opts.default_pids_limit)]
    if opts.registry_ca:
        cmd += ["--registry-ca", opts.registry_ca]
    if opts.dns_upstream:
        cmd += ["--dns-upstream", opts.dns_upstream]
    for key, value in (opts.labels or {}).items():
        cmd += ["--label", f"{key}={value}"]
    with open(log_path, "ab") as logf:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                start_new_session=True, close_fds=True, env=env)
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
        if not sup or not alive(sup) or not _is_supervisor(sup, opts.run_dir):
            raise  # none, or the pid file is stale (and its pid maybe reused)
        os.kill(sup, signal.SIGTERM)
        if not wait_exit(sup, 120):
            raise CLIError(f"the agent was not running, and its supervisor (pid {sup}) did not stop "
                           "within 120 s; see its log in the state dir")
        print("agent was not running; stopped its supervisor, every container and the network")
        return 0
    if pid and not wait_exit(pid, 15):
        raise CLIError(f"the agent (pid {pid}) accepted the shutdown but did not exit within 15 s")
    if everything:
        with contextlib.suppress(OSError):  # kept while anything else lives there
            os.rmdir(opts.run_dir)
    print("agent stopped" + (" with every container and the node network" if everything else ""))
    return 0


def _is_supervisor(pid: int, run_dir: str) -> bool:
    """``pid`` is the supervisor of ``run_dir`` (by its command line)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return False
    return b"nodeagent.supervisor" in argv and os.fsencode(run_dir) in argv


def _read_pid(path: str) -> int:
    try:
        with open(path) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


