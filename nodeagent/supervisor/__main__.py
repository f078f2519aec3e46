"""``python -m nodeagent.supervisor --state-dir D --run-dir R``

Started by the agent (through exec, never a fork of the gRPC process) in its
own session, so it outlives the agent.
"""

from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="orch-supervisor")
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--bridge", default="orch0")
    parser.add_argument("--subnet", default="10.88.0.0/16")
    parser.add_argument("--warm-network", action="store_true",
                        help="create the bridge and load the network code at start")
    args = parser.parse_args(argv)

    from nodeagent.network import BridgeNetwork
    from nodeagent.runtime import LinuxRuntime
    from nodeagent.supervisor.server import Supervisor, log

    os.umask(0o022)
    network = BridgeNetwork(os.path.join(args.state_dir, "network"), args.bridge, args.subnet)
    runtime = LinuxRuntime(network=network)
    if args.warm_network:
        try:
            network.ensure()
        except Exception as exc:  # the first container's start reports it again
            log.warning("network setup failed", error=str(exc))
    Supervisor(args.state_dir, args.run_dir, runtime, network).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
