"""The supervisor: the long-lived, one-loop process that owns containers.

It is to orch what containerd plus its shims are to Docker, in one small
process: it starts containers through the runtime and is their parent (so it
reaps their PID 1 and records exit codes and signals), pumps their stdout and
stderr into JSON-lines logs, applies restart policies, and runs stop grace
periods and exec. It has no gRPC, and one thread besides the loop's: the
one that deletes removed containers' files (``lifecycle._Trash``), which
shares nothing with the loop but its queue of paths.

The gRPC agent talks to it over a unix socket with JSON lines (``wire``).
Because the supervisor outlives the agent, a restarted agent simply reconnects
and finds every container as it was, exit codes included.

The containers do not outlive the supervisor: it holds their output pipes
and is the only process that can learn their exit, so they die with it
(their parent-death signal), and the supervisor the agent starts next records
them as killed, removes what is left of them and applies restart policies
(``recovery``). The agent carries on with the new one.

Events pushed to subscribers: ``created``, ``started``, ``exited`` and
``removed`` (the container's public record; ``removed``: id and name),
``health_status`` (a health check's status changed: ``{"id", "name",
"labels", "status", "failing_streak"}``, see ``health``), ``exec_exit`` (to
the exec's caller only), and ``dns_sockets``:

- **dns_sockets** hands over a running container's DNS sockets: a UDP
  socket and a listening TCP socket, both bound to ``127.0.0.11:53`` inside
  the container's network namespace (``nodeagent.runtime.netns``),
  non-blocking. Every container with a network of its own has them (bridge
  mode, a user-defined bridge, overlay networks; not ``none`` without
  networks, not ``host``); they exist before its process runs, so what it
  sends early waits in them. Sent right after the container's ``started``,
  and again, to that connection alone, for every running container right
  after the reply to a ``subscribe`` that names the event (or names none):
  an agent that connects again (to this supervisor or a new one) gets them
  all anew. Its fds, in this order: ``[udp, tcp]`` (the message's ``nfds``
  is 2); the client passes them to the taker named with
  ``SupervisorClient.take_fds("dns_sockets", taker)``, which owns those
  copies (closed unless taken). Its data::

      {"id": ..., "name": ..., "hostname": ..., "labels": {...},
       "network": "bridge" | "none",      # eth0's mode
       "bridge": "",                      # a user-defined bridge's name; "": the default
       "ip_address": "10.88.0.5",         # eth0's address ("" without eth0)
       "network_aliases": [...],          # its names on a user-defined bridge, besides its name
       "networks": [{"network_id": ..., "network_name": ...,
                     "address": "10.96.5.3/24", "aliases": [...], "ifname": "eth1"}, ...]}

  ``networks`` mirrors ``ContainerConfig.networks``, in its order. The
  supervisor closes its own copies as soon as the container's process has
  exited (or its start failed); whoever took copies closes them on the
  container's ``exited`` or ``removed`` (a socket keeps the container's
  dead namespace alive), or when a newer ``dns_sockets`` for the same id
  replaces them (a restart has a new namespace).

Invariants:
- a container's record is on disk (``records``) before its process exists,
  and is updated on every state change, so nothing is lost across restarts;
- every pid the supervisor reaps is either a container's PID 1 or an exec'd
  process (a health probe's among them); all are looked up in ``by_pid``;
- no container runs without the supervisor that started it, and no record
  says "running" once its supervisor is gone.

Modules:
- ``loop``: the selectors loop, its timers and its client connections;
- ``lifecycle``: a container's life (create, launch, exit, restart policies,
  removal) and the supervisor's shutdown;
- ``health``: the running containers' health checks (exec, http and tcp
  probes on the loop);
- ``ops``: the requests: dispatch, holding those about a container being
  launched until its launch ends, and the ``op_*`` handlers;
- ``stdio``: a process's stdio (pipes, or a pty with ``-t``), its input,
  and the clients attached to a container's output (``attach``, ``input``,
  ``resize``);
- ``server``: the process's start (a dead supervisor's containers, the
  socket, signals) and its end; ``Supervisor`` is the whole;
- ``records``, ``recovery``, ``wire``: the records on disk, the decisions
  about a dead supervisor's containers, the framing; ``client``: the agent's side.

``Supervisor`` is one object, its layers stacked classes in that order
(``Loop`` <- ``Lifecycle`` <- ``Health`` <- ``Operations`` <- ``Supervisor``), not small
objects composed: the layers share one state (the records, what runs, what
is being launched), and every change to it happens in a callback of the one
loop, which runs to its end before the next. As one object, that state is
plainly one thread's, and no layer holds a reference to another's. A layer
calls those below it; a lower one reaches a higher one only through the
methods it declares for it to override: ``Loop._dispatch`` (a request
arrived), ``Loop._between_steps`` (a step's replies are out),
``Lifecycle._launch_ended`` (a launch slot is free) and
``Lifecycle._container_running`` / ``_container_exited`` (a container's
process runs / has exited: its health checks start / stop).
"""

import os
from typing import TYPE_CHECKING

from common.lazy import lazy_exports

if TYPE_CHECKING:
    from nodeagent.supervisor.client import SupervisorClient, SupervisorUnavailable

# The client (threads, for the agent) loads on first use: the supervisor
# itself never needs it.
__getattr__ = lazy_exports(__name__, {"SupervisorClient": "client",
                                      "SupervisorUnavailable": "client"})
__all__ = ["ALREADY_RUNNING", "MAX_LAUNCHING", "SupervisorClient", "SupervisorUnavailable",
           "default_max_launching"]

# Exit code of a supervisor that found another one serving its run dir (it
# holds RUN/supervisor.lock): whoever started it connects to that one.
ALREADY_RUNNING = 3

# Containers a node sets up at once, by default: one per CPU, up to this. A
# container's PID 1 sets itself up on one CPU while the supervisor starts the
# next on another; more launches than CPUs only contend for them. The
# supervisor queues starts beyond its limit; the agent's worker keeps one more out.
MAX_LAUNCHING = 4


def default_max_launching() -> int:
    return max(1, min(MAX_LAUNCHING, len(os.sched_getaffinity(0))))
