"""The simulation process ``orch sim`` starts: ``python -m nodeagent.sim``.

Runs a ``Simulator`` until SIGTERM or SIGINT, with its control socket in
``--run-dir`` and its nodes' identities in ``--state-dir``. Its flags are
checked by ``orch sim`` first; here a bad one still ends in one line.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import signal
import sys

from common.auth import TokenError, join_token
from common.logging import configure_logging, get_logger
from nodeagent.sim.control import SOCKET, serve
from nodeagent.sim.simulator import SimError, SimOptions, Simulator
from nodeagent.sim.tasks import Behaviour


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m nodeagent.sim", description="simulated orch nodes")
    p.add_argument("--state-dir", required=True, help="the nodes' identities, one directory each")
    p.add_argument("--run-dir", required=True, help="the control socket's directory")
    p.add_argument("--join", required=True, help="control-plane API addresses, HOST:PORT[,...]")
    p.add_argument("--token-file", default="", help="the node join token (or $ORCH_JOIN_TOKEN)")
    p.add_argument("--nodes", type=int, required=True)
    p.add_argument("--prefix", default="sim-")
    p.add_argument("--cpus", type=float, default=4.0)
    p.add_argument("--memory", type=int, default=8 << 30, help="bytes per node")
    p.add_argument("--start-delay", type=float, default=0.0)
    p.add_argument("--fail", type=float, default=0.0)
    p.add_argument("--flap", type=float, default=0.0)
    p.add_argument("--label", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--zones", type=int, default=0)
    p.add_argument("--beacons", action="store_true")
    p.add_argument("--seed", type=int, default=None)
    return p.parse_args(argv)


async def run(opts: SimOptions, run_dir: str) -> None:
    log = get_logger("orch.sim")
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    sim = Simulator(opts, log)
    server = await serve(sim, os.path.join(run_dir, SOCKET))
    await sim.start()
    log.info("simulation started", nodes=opts.nodes, join=opts.join, pid=os.getpid())
    waiting = loop.create_task(sim.wait_registered())
    waiting.add_done_callback(lambda _: log.info("every simulated node registered", nodes=opts.nodes))
    await stop.wait()
    waiting.cancel()
    server.close()
    await sim.stop()
    log.info("simulation stopped")


def raise_file_limit() -> None:
    """Each node holds a connection (a descriptor) per control plane it reached:
    the soft limit goes up to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    configure_logging()
    raise_file_limit()
    try:
        token = join_token(args.token_file, "node")
        labels = {}
        for item in args.label:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise SimError(f"--label {item!r}: expected KEY=VALUE")
            labels[key] = value
        opts = SimOptions(join=[a for a in args.join.split(",") if a], token=token, nodes=args.nodes,
                          state_dir=args.state_dir, prefix=args.prefix, cpus=args.cpus,
                          memory_bytes=args.memory, labels=labels, zones=args.zones,
                          behaviour=Behaviour(args.start_delay, args.fail), flap=args.flap,
                          beacons=args.beacons, seed=args.seed)
        asyncio.run(run(opts, args.run_dir))
    except (SimError, TokenError) as err:
        print(f"orch sim: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
