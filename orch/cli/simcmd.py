"""``orch sim``: a local cluster of simulated nodes, and control of its nodes.

    orch sim --nodes N [--cpus C] [--memory M] [--start-delay S] [--fail F] [--flap F]
             [--prefix sim-] [--label K=V]... [--zones Z] [--controlplanes R] [--beacons]
    orch sim --kill NODE[,NODE...] [--keep-tasks]    end nodes' sessions (a machine lost)
    orch sim --revive NODE[,NODE...]                 register them again
    orch sim --status                                nodes and tasks as the simulation sees them

The cluster is ``orch up``'s, with simulated nodes (``orch.cluster.simup``,
``nodeagent.sim``); ``orch deploy``, ``orch ps``, ``orch nodes`` work on it,
and ``orch down`` stops it.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

from orch.cli.client import CLIError, key_values

DEFAULT_RUN = "/run/orch/cluster"
DEFAULT_STATE = "/var/lib/orch/cluster"


def register(sub: Any) -> None:
    p = sub.add_parser("sim", help="start a local cluster of simulated nodes (nothing runs: "
                       "placement, failover and rollouts at scale), or kill and revive its nodes")
    p.add_argument("--nodes", type=int, default=None, help="simulated nodes, 1 to 65535")
    p.add_argument("--cpus", default="4", help="CPUs of each node (default 4)")
    p.add_argument("--memory", default="8Gi", help="memory of each node (default 8Gi)")
    p.add_argument("--start-delay", type=float, default=0.0, metavar="SECONDS",
                   help="from a task's assignment to its running (default 0)")
    p.add_argument("--fail", type=float, default=0.0, metavar="SHARE",
                   help="the share of task starts that fail, 0 to 1 (default 0)")
    p.add_argument("--flap", type=float, default=0.0, metavar="SHARE",
                   help="the share of nodes that come and go on their own, 0 to 1 (default 0)")
    p.add_argument("--prefix", default="sim-", help="node names: PREFIX1 .. PREFIXN (default sim-)")
    p.add_argument("--label", action="append", default=[], metavar="KEY=VALUE",
                   help="a label of every node (each also has node=NAME)")
    p.add_argument("--zones", type=int, default=0, metavar="Z",
                   help="label node i zone=zone-(i mod Z), for constraints and spread (default: none)")
    p.add_argument("--controlplanes", type=int, default=1, metavar="R",
                   help="control-plane replicas (default 1)")
    p.add_argument("--beacons", action="store_true",
                   help="also send liveness beacons (10 datagrams a second a node)")
    p.add_argument("--seed", type=int, default=None, help="seed of the simulation's random choices")
    p.add_argument("--port", type=int, default=7700, help="control plane port (replica i: +i)")
    p.add_argument("--state-dir", default=DEFAULT_STATE)
    p.add_argument("--run-dir", default=None,
                   help=f"default {DEFAULT_RUN} (with --kill, --revive or --status: $ORCH_CLUSTER_RUN_DIR "
                        "first)")
    control = p.add_mutually_exclusive_group()
    control.add_argument("--kill", default=None, metavar="NODE[,NODE...]",
                         help="end these simulated nodes' sessions and silence them")
    control.add_argument("--revive", default=None, metavar="NODE[,NODE...]",
                         help="bring killed nodes back, with the same identity")
    control.add_argument("--status", action="store_true", help="the simulation's nodes and tasks (JSON)")
    p.add_argument("--keep-tasks", action="store_true",
                   help="with --kill: the nodes keep their tasks (a lost link, not a lost machine)")
    p.set_defaults(func=cmd_sim)


def cmd_sim(args: argparse.Namespace, _agent: Any) -> int:
    if args.kill is not None or args.revive is not None or args.status:
        return _control(args)
    if args.keep_tasks:
        raise CLIError("--keep-tasks: only with --kill")
    if args.nodes is None:
        raise CLIError("--nodes: how many simulated nodes (or --kill, --revive, --status for a running "
                       "simulation)")
    if os.geteuid() != 0:
        raise CLIError("orch sim needs root (as orch up and orch down: the cluster's dirs and sockets)")
    from model.units import QuantityError, parse_cpus, parse_memory
    from orch.cluster.record import UpError
    from orch.cluster.simup import SimFlags, sim_up

    try:
        cpus = parse_cpus(args.cpus)
    except QuantityError as err:
        raise CLIError(f"--cpus: {err}")
    try:
        memory = parse_memory(args.memory)
    except QuantityError as err:
        raise CLIError(f"--memory: {err}")
    labels = key_values(args.label, "--label")
    flags = SimFlags(nodes=args.nodes, state_dir=args.state_dir, run_dir=args.run_dir or DEFAULT_RUN,
                     port=args.port, controlplanes=args.controlplanes, cpus=cpus, memory_bytes=memory,
                     start_delay=args.start_delay, fail=args.fail, flap=args.flap, prefix=args.prefix,
                     labels=labels, zones=args.zones, beacons=args.beacons, seed=args.seed)
    t0 = time.monotonic()
    try:
        rec = sim_up(flags)
    except UpError as err:
        raise CLIError(str(err))
    print(f"simulated cluster up: {args.nodes} node(s) ready in {time.monotonic() - t0:.1f} s "
          f"({len(rec.listens)} control-plane replica(s), nodes {args.prefix}1 to {args.prefix}{args.nodes})")
    print(f"control plane: {rec.controlplane} (the CLI finds it: orch deploy -f FILE, orch ps, orch nodes)")
    print(f"simulation log: {rec.state_dir}/sim.log; kill nodes: orch sim --kill {args.prefix}1; "
          "stop it all: orch down")
    return 0


def _control(args: argparse.Namespace) -> int:
    from nodeagent.sim.control import ControlError, request
    from orch.cluster.simup import control_socket

    if args.nodes is not None:
        raise CLIError("--nodes: not with --kill, --revive or --status (those act on the running simulation)")
    if args.keep_tasks and args.kill is None:
        raise CLIError("--keep-tasks: only with --kill")
    run_dir = args.run_dir or os.environ.get("ORCH_CLUSTER_RUN_DIR") or DEFAULT_RUN
    path = control_socket(run_dir)
    if args.status:
        req: dict[str, Any] = {"op": "status"}
    else:
        names = [n.strip() for n in (args.kill if args.kill is not None else args.revive).split(",")]
        if not all(names):
            flag = "--kill" if args.kill is not None else "--revive"
            raise CLIError(f"{flag}: expected NODE[,NODE...]")
        req = {"op": "kill" if args.kill is not None else "revive", "nodes": names}
        if args.keep_tasks:
            req["keep_tasks"] = True
    if not os.path.exists(path):
        raise CLIError(f"no simulation is running for the cluster of {run_dir} ({path} does not exist); "
                       "start one with orch sim --nodes N")
    try:
        reply = request(path, req)
    except ControlError as err:
        raise CLIError(str(err))
    if args.status:
        print(json.dumps(reply, indent=2))
    elif "killed" in reply:
        print(f"killed: {', '.join(reply['killed'])}")
    else:
        print(f"revived: {', '.join(reply['revived'])}")
    return 0
