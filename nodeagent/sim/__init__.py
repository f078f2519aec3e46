"""Simulated nodes: the real agent protocol without containers (``orch sim``).

Like kwok for Kubernetes or nomad-nodesim: many nodes in one process, each
speaking the real session protocol to the real control plane over real
gRPC (mutual TLS with a certificate of its own, got with the join token
from the join port; register, heartbeats, optional liveness beacons,
assignments, batched task status), so placement, failover and rollouts are
the control plane's own, at a size no machine could run containers for.
Nothing runs: a task "starts" after a delay, and can be told to fail.

Modules: ``tasks`` (what a node does with its assignments: the reconciler's
and the status reporter's rules, on timers), ``node`` (one node: identity
and session, on grpc.aio), ``simulator`` (N nodes on one event loop, kill,
revive, flapping), ``beacons`` (every node's beacons from one socket),
``control`` (the control socket), ``__main__`` (the process ``orch sim``
starts).

What one process holds, measured on a 2-core machine against a stand-in
dispatcher that answers every session (a control-plane replica holds about
64 sessions at once, see ``orch.cluster.simup``), identities kept from an
earlier run:

- memory: ~145 KB a node (5,000 nodes: 750 MB RSS). ~120 KB of it is the
  node's own mutual-TLS connection and stream; streams sharing one channel
  would cost ~30 KB each, but the control plane takes a node's identity
  from its client certificate, so each node needs a connection of its own;
- CPU at rest (2 heartbeats a second a node; grpc.aio's write is most of
  it, ~80-100 us a message): ~0.16 of a core per 1,000 nodes. 3,000 nodes:
  0.5 core, the loop on time (under 2 ms late); 5,000: 0.9 core, and with
  the dispatcher on the machine's other core the loop ran up to 0.4 s late
  and heartbeats went out 14% under rate. One process tops out near 5,000
  nodes (its loop has one core); ``status()['loop_lag_ms']`` says when it
  cannot keep up;
- start: 5,000 nodes with kept identities register in 8 s; joining first
  costs ~8 ms of CPU a node (a key, a CSR, a channel, three files): 2,000
  nodes joined and registered in 17.5 s.
"""

from nodeagent.sim.node import SimNode
from nodeagent.sim.simulator import SimError, SimOptions, Simulator
from nodeagent.sim.tasks import Behaviour

__all__ = ["Behaviour", "SimError", "SimNode", "SimOptions", "Simulator"]
