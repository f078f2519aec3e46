"""``python -m nodeagent.supervisor --state-dir D --run-dir R [--bridge NAME]
[--subnet CIDR] [--warm-network] [--max-launching N]``

Started by the agent (through exec, never a fork of the gRPC process) in its
own session, so it outlives the agent. The options are read by hand, not by
argparse, which is a third of a MiB more for a few flags.
"""

from __future__ import annotations

import os
import sys

from nodeagent.supervisor import ALREADY_RUNNING

USAGE = ("usage: python -m nodeagent.supervisor --state-dir D --run-dir R "
         "[--bridge NAME] [--subnet CIDR] [--warm-network] [--max-launching N]")
_VALUED = {"--state-dir": "state_dir", "--run-dir": "run_dir", "--bridge": "bridge",
           "--subnet": "subnet", "--max-launching": "max_launching"}


def parse_args(argv: list[str]) -> dict[str, str | bool]:
    """The options as a dict; SystemExit(2) with the usage on a bad one."""
    opts: dict[str, str | bool] = {"bridge": "orch0", "subnet": "10.88.0.0/16",
                                   "warm_network": False}
    args = iter(argv)
    for arg in args:
        name, eq, value = arg.partition("=")
        if arg == "--warm-network":
            opts["warm_network"] = True  # create the bridge and load the network code at start
        elif name in _VALUED:
            value = value if eq else next(args, "")
            if not value:
                _usage_error(f"{name} needs a value")
            opts[_VALUED[name]] = value
        else:
            _usage_error(f"unknown argument {arg!r}")
    for required in ("--state-dir", "--run-dir"):
        if _VALUED[required] not in opts:
            _usage_error(f"{required} is required")
    limit = str(opts.get("max_launching", "0"))
    if not limit.isdigit():
        _usage_error(f"--max-launching needs a whole number, not {limit!r}")
    return opts


def _usage_error(message: str) -> None:
    print(f"{USAGE}\norch-supervisor: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _lock(run_dir: str) -> bool:
    """Hold ``RUN/supervisor.lock`` for this process's life; False if another
    supervisor holds it. One supervisor per run dir: a second one's start-up
    would treat the first one's live containers as left by a dead supervisor
    and kill them (an agent restarting while it replaces a dead supervisor
    can start two)."""
    import fcntl

    os.makedirs(run_dir, mode=0o711, exist_ok=True)
    fd = os.open(os.path.join(run_dir, "supervisor.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False
    return True  # the fd stays open: the lock lasts as long as this process


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(sys.argv[1:] if argv is None else argv)
    state_dir, run_dir = str(opts["state_dir"]), str(opts["run_dir"])

    if not _lock(run_dir):
        print(f"orch-supervisor: another supervisor already serves {run_dir}", file=sys.stderr,
              flush=True)
        return ALREADY_RUNNING

    from common.errors import AgentError
    from nodeagent.network.bridges import BridgeNetworks
    from nodeagent.runtime import LinuxRuntime
    from nodeagent.supervisor.server import Supervisor, log

    os.umask(0o022)
    try:
        network = BridgeNetworks(os.path.join(state_dir, "network"), str(opts["bridge"]),
                                 str(opts["subnet"]))
        runtime = LinuxRuntime(network=network)
        if opts["warm_network"]:
            try:
                network.ensure()
            except Exception as exc:  # the first container's start reports it again
                log.warning("network setup failed", error=str(exc))
        Supervisor(state_dir, run_dir, runtime, network,
                   max_launching=int(str(opts.get("max_launching", "0")))).serve()
    except (OSError, AgentError) as err:
        # One line, the last of its log: the agent reports it as the reason.
        print(f"orch-supervisor: cannot start: {err}", file=sys.stderr, flush=True)
        return 1
    return 0

if __name__ == "__main__":
    sys.exit(main())
