"""The node's DNS server: latency of 1,000 lookups from a container.

A real server (``nodeagent.dns``, as the agent runs it) serving one
"container": a process in a network namespace of its own, with the sockets
bound to 127.0.0.11:53 made as the supervisor makes them; the node's state holds 50 services of 10
tasks each on the container's network. A client process inside the
namespace asks 1,000 times in turn for a service's VIP, its tasks and a
task's name, each time waiting for the answer (after 100 untimed).

    python bench/dns.py [N]     (root; default N=1000)

Prints ``dns_ms_p50``, ``dns_ms_p99`` (target p99 <= 2 ms) and ``dns_ms_max``.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import percentile

CLIENT = r"""
import json, socket, sys, time
from dnslib import DNSRecord
n = int(sys.argv[1])
names = ["svc7", "tasks.svc13", "svc21.4.t21-4", "svc42"]
queries = [DNSRecord.question(names[i % len(names)]).pack() for i in range(n + 100)]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect(("127.0.0.11", 53))
s.settimeout(5)
out = []
for i, q in enumerate(queries):
    t0 = time.perf_counter_ns()
    s.send(q)
    reply = s.recv(4096)
    t1 = time.perf_counter_ns()
    assert reply[:2] == q[:2] and reply[3] & 0x0F == 0, reply
    if i >= 100:
        out.append((t1 - t0) / 1e6)
print(json.dumps(out))
"""


def state() -> object:
    from nodeagent.network.state import Endpoint, NetworkStateHub, ServiceNetwork, ServiceRoute, StateUpdate

    hub = NetworkStateHub()
    services, endpoints = [], []
    for s in range(50):
        vip = ServiceNetwork("net", f"10.96.0.{s + 2}")
        services.append(ServiceRoute(f"s{s}", f"svc{s}", networks=(vip,)))
        for t in range(10):
            endpoints.append(Endpoint(f"t{s}-{t}", f"s{s}", "net", f"10.96.{s + 1}.{t + 10}", "node",
                                      f"svc{s}.{t}.t{s}-{t}", t))
    hub.apply(StateUpdate(full=True, services=services, endpoints=endpoints))
    return hub


def main() -> int:
    if os.geteuid() != 0:
        print("bench/dns.py needs root (network namespaces)", file=sys.stderr)
        return 1
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    from nodeagent.dns.node import NodeDns
    from nodeagent.dns.scope import Attachment, ContainerScope
    from nodeagent.runtime.netns import dns_sockets

    # The "container": a process in a network namespace of its own; its
    # sockets made as the supervisor makes them (before its lo is up).
    holder = subprocess.Popen(["unshare", "--net", "sleep", "600"])
    dns = NodeDns([], state())  # type: ignore[arg-type]
    try:
        own = os.readlink("/proc/self/ns/net")
        while os.readlink(f"/proc/{holder.pid}/ns/net") == own:
            pass  # unshare has not switched yet
        udp, tcp = dns_sockets(holder.pid)
        enter = ["nsenter", f"--net=/proc/{holder.pid}/ns/net"]
        subprocess.run([*enter, "ip", "link", "set", "lo", "up"], check=True)
        dns.add_container(secrets.token_hex(32), udp, tcp,
                          ContainerScope("bench", (Attachment("net", "front", "10.96.1.200"),)))
        out = subprocess.run([*enter, sys.executable, "-c", CLIENT, str(n)],
                             check=True, capture_output=True, text=True, timeout=300).stdout
        samples = json.loads(out)
    finally:
        dns.close()
        holder.kill()
        holder.wait()
    print(f"lookups={len(samples)}")
    print(f"dns_ms_p50={percentile(samples, 50):.3f}")
    print(f"dns_ms_p99={percentile(samples, 99):.3f}")
    print(f"dns_ms_max={max(samples):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
